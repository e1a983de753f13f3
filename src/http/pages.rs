//! The small HTML pages the server serves itself.

use async_graphql::http::GraphiQLSource;
use axum::response::Html;

pub async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql")
            .title("tax-budget · GraphiQL")
            .finish(),
    )
}

pub async fn index() -> Html<&'static str> {
    Html(INDEX)
}

const INDEX: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tax Budget Allocator</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #1a1a1a; }
  code { background: #f2f2f2; padding: .1rem .3rem; border-radius: 3px; }
  a { color: #0b57d0; }
</style>
</head>
<body>
<h1>Tax Budget Allocator</h1>
<p>Split your (hypothetical) taxes across the budget categories and see the live average of all citizens.</p>
<ul>
  <li><a href="/graphiql">GraphiQL</a>: explore the API, run queries, mutations and the live subscription.</li>
  <li>GraphQL endpoint: <code>POST /graphql</code> (queries also by <code>GET</code>; subscriptions by WebSocket on the same URL).</li>
  <li>Health: <a href="/healthz"><code>/healthz</code></a>, readiness: <a href="/readyz"><code>/readyz</code></a>.</li>
</ul>
</body>
</html>
"#;
