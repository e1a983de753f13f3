//! The web app over HTTP: its page at every app route, its assets and files, 404 for the rest
//! (with the app's page outside `/assets`),
//! no way out of its directory, and the page that says how to build it when it is not built.

use std::path::{Path, PathBuf};

use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::harness::gql::{CategoriesData, CATEGORIES};
use crate::harness::{spawn_app_with, Backend, Options, TestApp};

const MARKER: &str = "fake-spa-index-7f3a";
const SCRIPT: &str = "console.log('fake app bundle');\n";
const FAVICON: &str = r#"<svg xmlns="http://www.w3.org/2000/svg"/>"#;
/// Lives next to the web directory, never inside it: no request may read it.
const SECRET: &str = "outside-the-web-dir-c41d";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const APP_PATHS: [&str; 5] = [
    "/",
    "/s/0b8e5c1e-6f5a-4c1a-9d59-1d2f3c4b5a69",
    "/history",
    "/live",
    "/status",
];
/// What the server puts in the app's head when the status page is off.
const STATUS_PAGE_OFF: &str = r#"<meta name="tb-status-page" content="off" />"#;

/// A temporary directory holding `web/` (the web dir) and `secret.txt` beside it.
struct Site {
    root: PathBuf,
}

impl Site {
    fn new(with_index: bool) -> Site {
        let root = std::env::temp_dir().join(format!("tax-budget-web-{}", Uuid::new_v4()));
        let web = root.join("web");
        std::fs::create_dir_all(web.join("assets")).expect("web dir");
        if with_index {
            std::fs::write(web.join("index.html"), index_html(MARKER)).expect("index.html");
        }
        std::fs::write(web.join("assets/app.js"), SCRIPT).expect("app.js");
        std::fs::write(web.join("favicon.svg"), FAVICON).expect("favicon");
        std::fs::write(root.join("secret.txt"), SECRET).expect("secret");
        Site { root }
    }

    fn web(&self) -> PathBuf {
        self.root.join("web")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn index_html(marker: &str) -> String {
    format!(
        "<!doctype html><html><head><script type=\"module\" src=\"/assets/app.js\"></script>\
         </head><body><div id=\"app\">{marker}</div></body></html>"
    )
}

async fn serve(web_dir: &Path) -> TestApp {
    spawn_app_with(
        Backend::Sqlite,
        Options {
            web_dir: Some(web_dir.to_owned()),
            ..Options::default()
        },
    )
    .await
    .expect("sqlite app")
}

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .unwrap_or_else(|| panic!("{name} missing on {}", response.url()))
        .to_str()
        .expect("ascii header")
}

/// GETs an app route and checks what every app page carries: HTML that is never cached and the
/// security headers.
async fn get_app_page(app: &TestApp, path: &str) -> reqwest::Response {
    let response = reqwest::get(app.url(path)).await.expect("request");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    assert_eq!(header(&response, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&response, CACHE_CONTROL), "no-cache");
    assert_eq!(
        header(&response, CONTENT_SECURITY_POLICY),
        tax_budget::http::CONTENT_SECURITY_POLICY
    );
    assert_eq!(header(&response, X_CONTENT_TYPE_OPTIONS), "nosniff");
    response
}

/// Sends `GET <target>` exactly as written: HTTP clients remove `..` segments before sending.
async fn raw_get(app: &TestApp, target: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(app.addr())
        .await
        .expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_route_answers_with_the_apps_page() {
    let site = Site::new(true);
    let app = serve(&site.web()).await;
    for path in APP_PATHS {
        let response = get_app_page(&app, path).await;
        let body = response.text().await.expect("body");
        assert!(body.contains(MARKER), "{path}: {body}");
    }

    let head = reqwest::Client::new()
        .head(app.url("/live"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, CONTENT_TYPE), "text/html; charset=utf-8");
    assert!(head.text().await.expect("body").is_empty());

    // Read per request: a rebuild shows without a restart.
    std::fs::write(site.web().join("index.html"), index_html("rebuilt-9c2e")).expect("rebuild");
    let body = reqwest::get(app.url("/history"))
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(body.contains("rebuilt-9c2e"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_is_an_app_route_unless_turned_off() {
    let site = Site::new(true);
    let app = serve(&site.web()).await;
    let body = get_app_page(&app, "/status")
        .await
        .text()
        .await
        .expect("body");
    assert!(body.contains(MARKER), "{body}");
    assert!(!body.contains("tb-status-page"), "{body}");

    let off = spawn_app_with(
        Backend::Sqlite,
        Options {
            web_dir: Some(site.web()),
            tweak: |config| config.status_page = false,
            ..Options::default()
        },
    )
    .await
    .expect("sqlite app");
    // The app's 404, as for any unknown path, and every page tells the app to hide its link.
    let response = reqwest::get(off.url("/status")).await.expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&response, CONTENT_TYPE), "text/html; charset=utf-8");
    assert!(response.headers().get(CACHE_CONTROL).is_none());
    let body = response.text().await.expect("body");
    assert!(body.contains(MARKER), "{body}");
    assert!(
        body.contains(&format!("{STATUS_PAGE_OFF}</head>")),
        "{body}"
    );
    for path in ["/", "/live", "/s/0b8e5c1e-6f5a-4c1a-9d59-1d2f3c4b5a69"] {
        let body = get_app_page(&off, path).await.text().await.expect("body");
        assert!(body.contains(MARKER), "{path}: {body}");
        assert!(body.contains(STATUS_PAGE_OFF), "{path}: {body}");
    }
    // The metrics the page would read are another matter: still served.
    let metrics = reqwest::get(off.url("/metrics")).await.expect("metrics");
    assert_eq!(metrics.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_immutable_and_files_are_served() {
    let site = Site::new(true);
    let app = serve(&site.web()).await;

    let script = reqwest::get(app.url("/assets/app.js")).await.expect("js");
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        header(&script, CONTENT_TYPE).contains("javascript"),
        "{:?}",
        script.headers()
    );
    assert_eq!(header(&script, CACHE_CONTROL), IMMUTABLE);
    assert_eq!(header(&script, X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(script.text().await.expect("body"), SCRIPT);

    let icon = reqwest::get(app.url("/favicon.svg"))
        .await
        .expect("favicon");
    assert_eq!(icon.status(), StatusCode::OK);
    assert_eq!(header(&icon, CONTENT_TYPE), "image/svg+xml");
    let cache = header(&icon, CACHE_CONTROL);
    assert!(
        cache.starts_with("public, max-age=") && !cache.contains("immutable"),
        "{cache}"
    );
    assert_eq!(icon.text().await.expect("body"), FAVICON);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_and_the_api_is_untouched() {
    let site = Site::new(true);
    let app = serve(&site.web()).await;
    let client = reqwest::Client::new();

    // Outside /assets: status 404 with the app's page, whose router shows its not-found view.
    for path in [
        "/no-such-page",
        "/s/",
        "/s/a/b",
        "/history/more",
        "/live/",
        "/History",
        "/graphiql/",
    ] {
        let response = client.get(app.url(path)).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(header(&response, CONTENT_TYPE), "text/html; charset=utf-8");
        assert_eq!(
            header(&response, CONTENT_SECURITY_POLICY),
            tax_budget::http::CONTENT_SECURITY_POLICY
        );
        // A 404 must not be cached for a year.
        assert!(
            response.headers().get(CACHE_CONTROL).is_none(),
            "{path}: {:?}",
            response.headers()
        );
        let body = response.text().await.expect("body");
        assert!(body.contains(MARKER), "{path} without the app: {body}");
    }
    // Under /assets a miss is a bare 404: a script tag gets nothing to run.
    for path in ["/assets/missing.js", "/assets", "/assets/"] {
        let response = client.get(app.url(path)).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            response.headers().get(CACHE_CONTROL).is_none(),
            "{path}: {:?}",
            response.headers()
        );
        let body = response.text().await.expect("body");
        assert!(
            !body.contains(MARKER),
            "{path} answered with the app: {body}"
        );
    }
    let post = client.post(app.url("/")).send().await.expect("POST /");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    let post = client
        .post(app.url("/favicon.svg"))
        .send()
        .await
        .expect("POST file");
    assert_eq!(post.status(), StatusCode::NOT_FOUND);

    // The API and its pages, unchanged. This build has no graphiql.html, so GraphiQL is
    // async-graphql's page, without the app's CSP (it loads GraphiQL from a CDN).
    let graphiql = client
        .get(app.url("/graphiql"))
        .send()
        .await
        .expect("graphiql");
    assert_eq!(graphiql.status(), StatusCode::OK);
    assert!(graphiql.headers().get(CONTENT_SECURITY_POLICY).is_none());
    assert!(graphiql.text().await.expect("body").contains("graphiql"));
    for path in ["/healthz", "/readyz"] {
        let response = client.get(app.url(path)).send().await.expect("health");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let categories = app
        .request::<CategoriesData>(CATEGORIES, serde_json::json!({}), None)
        .await;
    assert_eq!(categories.expect_data().categories.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_leaves_the_web_dir() {
    let site = Site::new(true);
    let app = serve(&site.web()).await;
    // Sanity: the raw client reads what is there.
    let (status, text) = raw_get(&app, "/assets/app.js").await;
    assert_eq!(status, 200);
    assert!(text.contains("fake app bundle"));

    for target in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/assets/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/assets/..%5c..%5csecret.txt",
        "/%2f..%2fsecret.txt",
        "/../../../../../../etc/passwd",
        "/%2fetc%2fpasswd",
    ] {
        let (status, text) = raw_get(&app, target).await;
        assert!(
            (400..500).contains(&status),
            "{target} answered {status}: {text}"
        );
        assert!(!text.contains(SECRET), "{target} leaked: {text}");
        assert!(!text.contains("root:"), "{target} leaked: {text}");
    }
}

/// Without `index.html` the app routes explain how to build the app. (A binary built with
/// `embed-web` serves its embedded copy instead; the page is the same as long as nothing was
/// embedded, which `http` does not assume either.)
#[cfg(not(feature = "embed-web"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_built_app_the_app_routes_say_how_to_build_it() {
    let site = Site::new(false);
    let app = serve(&site.web()).await;
    for path in ["/", "/live", "/s/42"] {
        let response = get_app_page(&app, path).await;
        let body = response.text().await.expect("body");
        assert!(body.contains("not built"), "{body}");
        assert!(body.contains("npm --prefix web"), "{body}");
        assert!(body.contains("scripts/run"), "{body}");
        assert!(body.contains("href=\"/graphiql\""), "{body}");
        assert!(body.contains("href=\"/healthz\""), "{body}");
        assert!(body.contains("href=\"/readyz\""), "{body}");
        let shown = std::path::absolute(site.web()).expect("absolute");
        assert!(body.contains(&*shown.to_string_lossy()), "{body}");
    }
    // The rest of the directory is still served, and unknown paths are still 404.
    let icon = reqwest::get(app.url("/favicon.svg"))
        .await
        .expect("favicon");
    assert_eq!(icon.status(), StatusCode::OK);
    let missing = reqwest::get(app.url("/nope")).await.expect("missing");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Building the app while the server runs: the next request gets it.
    std::fs::write(site.web().join("index.html"), index_html(MARKER)).expect("build");
    let body = reqwest::get(app.url("/"))
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(body.contains(MARKER), "{body}");
}

/// With `embed-web`, a web dir without `index.html` serves the copy embedded at build time,
/// with the same headers.
#[cfg(feature = "embed-web")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_built_app_on_disk_the_embedded_app_answers() {
    let site = Site::new(false);
    std::fs::remove_dir_all(site.web()).expect("no web dir at all");
    let app = serve(&site.web()).await;
    let embedded =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/web/dist/index.html"))
            .expect("embed-web builds need web/dist/index.html");
    for path in APP_PATHS {
        let response = get_app_page(&app, path).await;
        assert_eq!(response.text().await.expect("body"), embedded, "{path}");
    }
    // Every asset the embedded page names is served, immutable, with an ETag.
    let assets: Vec<&str> = embedded
        .split('"')
        .filter(|part| part.starts_with("/assets/"))
        .collect();
    assert!(!assets.is_empty(), "no assets in {embedded}");
    let client = reqwest::Client::new();
    for asset in assets {
        let response = client.get(app.url(asset)).send().await.expect("asset");
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert_eq!(header(&response, CACHE_CONTROL), IMMUTABLE);
        if asset.ends_with(".js") {
            assert!(header(&response, CONTENT_TYPE).contains("javascript"));
        }
        let etag = header(&response, reqwest::header::ETAG).to_owned();
        let again = client
            .get(app.url(asset))
            .header(reqwest::header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .expect("conditional request");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{asset}");
    }
    let missing = reqwest::get(app.url("/assets/missing.js"))
        .await
        .expect("missing");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    for target in [
        "/../Cargo.toml",
        "/assets/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
    ] {
        let (status, text) = raw_get(&app, target).await;
        assert!((400..500).contains(&status), "{target}: {text}");
        assert!(!text.contains("[package]"), "{target} leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_comes_from_the_build_when_it_has_it() {
    const BUNDLED: &str = "bundled-graphiql-5e1b";
    let site = Site::new(true);
    std::fs::write(
        site.web().join("graphiql.html"),
        format!("<!doctype html><title>{BUNDLED}</title>"),
    )
    .expect("graphiql.html");
    let app = serve(&site.web()).await;
    let response = get_app_page(&app, "/graphiql").await;
    assert!(response.text().await.expect("body").contains(BUNDLED));

    std::fs::remove_file(site.web().join("graphiql.html")).expect("remove graphiql.html");
    let fallback = reqwest::get(app.url("/graphiql")).await.expect("graphiql");
    assert_eq!(fallback.status(), StatusCode::OK);
    assert!(fallback.headers().get(CONTENT_SECURITY_POLICY).is_none());
    assert!(!fallback.text().await.expect("body").contains(BUNDLED));
}
