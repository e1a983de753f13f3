//! GraphiQL, the one page the server renders itself (the web app lives in `web.rs`).

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
