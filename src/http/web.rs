//! The web app: the single-page app Vite builds into the web directory (`web/dist` by default).
//!
//! - The app routes (`/`, `/s/{id}`, `/history`, `/live`, `/status`) answer with its
//!   `index.html`, so deep links and reloads work; the app routes itself in the browser. The
//!   file is read on every request: it is small, and a developer can rebuild the app while the
//!   server runs. A result page carries link-preview tags for its submission (see `share`).
//! - `/status` (live charts of `/metrics`) is an app route unless the status page is turned off
//!   (`--status-page false`): then it is the 404 like any unknown path, and every page of the
//!   app carries `<meta name="tb-status-page" content="off">`, from which the app hides its link
//!   and shows its not-found view at `/status`.
//! - `/assets/…` are Vite's content-hashed files: cached for a year, immutable.
//! - Other files in the directory (favicon, robots.txt) are served with a short cache.
//! - Anything else is 404. Outside `/assets` the 404 carries the app's page, whose router shows
//!   its not-found view in the app's frame (header, navigation); the status stays 404, so a
//!   mistyped URL never looks like a page to a crawler or a monitor. A missing asset is a bare
//!   404: a script tag gets nothing to misread as JavaScript.
//!
//! When the directory has no `index.html`, the app routes answer with a page that says how to
//! build the app — or, in a binary built with the `embed-web` feature, with the app embedded at
//! build time (assets and files then come from the embedded copy too).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Path as UrlPath;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower::ServiceExt;
use tower_http::services::ServeDir;

use super::share::{self, escape_html, SharedResults};

/// What the app and its bundled GraphiQL need and nothing more: their own scripts and styles
/// (Chart.js and GraphiQL's editor set inline style attributes, hence `'unsafe-inline'` for
/// styles only), the editor's fonts inlined as data URLs, the API over HTTP and WebSocket on
/// this origin, and no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// The paths the app answers itself. `/index.html` is one too, so the page is never served by
/// the file service with a cache that would outlive a rebuild. `/s/{id}` is one as well, with
/// its own handler (link previews).
const APP_ROUTES: [&str; 5] = ["/", "/index.html", "/history", "/live", "/trends"];
/// The status page: an app route while it is on.
const STATUS_ROUTE: &str = "/status";
/// Tells the app that the status page is off; put in the head of every app page then.
const STATUS_PAGE_OFF: &str = "<meta name=\"tb-status-page\" content=\"off\" />";
/// Where Vite puts the hashed assets: a miss there is a bare 404, never the app's page.
const ASSETS_PREFIX: &str = "/assets";

const INDEX: &str = "index.html";
/// The build's second page: GraphiQL, bundled from npm.
const GRAPHIQL: &str = "graphiql.html";

/// HTML names the hashed assets of one build; the browser must ask again every time.
const CACHE_HTML: &str = "no-cache";
/// Vite puts a content hash in every asset name: a name never changes its content.
const CACHE_ASSET: &str = "public, max-age=31536000, immutable";
/// Unhashed files such as the favicon: short, so a rebuild shows within the hour.
const CACHE_FILE: &str = "public, max-age=3600";

/// Where the web app comes from. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WebApp(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Serves both `/assets/…` and the top-level files: it refuses `..`, backslashes and
    /// absolute segments, so no request reaches outside `dir`.
    files: ServeDir,
    /// The page for app routes while the app is not built; it names `dir`, which is fixed.
    not_built: String,
    /// Where result pages find their submission for link previews; none: default tags.
    previews: Option<SharedResults>,
    /// Whether `/status` is an app route.
    status_page: bool,
}

/// An HTML page of the build, as bytes (to edit) and as a body (to send as it is).
struct Page {
    bytes: Bytes,
    body: Body,
}

impl Page {
    fn new(data: Vec<u8>) -> Self {
        let bytes = Bytes::from(data);
        Page {
            body: Body::from(bytes.clone()),
            bytes,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        // The path and the OS error are for the log, not for the browser.
        tracing::error!(error = %self, "web app");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
    }
}

impl WebApp {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let files = ServeDir::new(&dir)
            .append_index_html_on_directories(false)
            .redirect_to_trailing_slash(false);
        // An absolute path says more in the page than `web/dist` when the working directory
        // is not the one the reader thinks.
        let shown = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
        let not_built = not_built_page(&shown);
        WebApp(Arc::new(Inner {
            dir,
            files,
            not_built,
            previews: None,
            status_page: true,
        }))
    }

    /// Result pages get link-preview tags naming their submission's largest shares.
    pub fn with_previews(self, previews: SharedResults) -> Self {
        let inner = &self.0;
        WebApp(Arc::new(Inner {
            dir: inner.dir.clone(),
            files: inner.files.clone(),
            not_built: inner.not_built.clone(),
            previews: Some(previews),
            status_page: inner.status_page,
        }))
    }

    /// `false`: `/status` is a 404 and the app's pages say so (see the module's notes).
    pub fn with_status_page(self, on: bool) -> Self {
        let inner = &self.0;
        WebApp(Arc::new(Inner {
            dir: inner.dir.clone(),
            files: inner.files.clone(),
            not_built: inner.not_built.clone(),
            previews: inner.previews.clone(),
            status_page: on,
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    fn index_path(&self) -> PathBuf {
        self.0.dir.join(INDEX)
    }

    /// One of the build's HTML pages, read per request, from the same copy (disk or embedded)
    /// that serves the assets it names; `None` when that copy has no such page.
    async fn page(&self, name: &str) -> Result<Option<Page>, WebError> {
        if self.use_embedded().await {
            return Ok(embedded::page(name).map(|data| Page::new(data.to_vec())));
        }
        let path = self.0.dir.join(name);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Page::new(bytes))),
            Err(source) if means_absent(&source) => Ok(None),
            Err(source) => Err(WebError::Read { path, source }),
        }
    }

    /// The app's own page (`index.html`), telling the app when the status page is off.
    async fn app_index(&self) -> Result<Option<Page>, WebError> {
        let page = self.page(INDEX).await?;
        Ok(match page {
            Some(page) if !self.0.status_page => {
                let text = String::from_utf8_lossy(&page.bytes);
                Some(Page::new(in_head(&text, STATUS_PAGE_OFF).into_bytes()))
            }
            page => page,
        })
    }

    /// Says once, at start, where the app will come from (the routes decide per request).
    pub fn log_status(&self) {
        let dir = self.0.dir.display();
        if self.index_path().is_file() {
            tracing::info!(web_dir = %dir, "serving the web app from disk");
        } else if embedded::available() {
            tracing::info!(web_dir = %dir, "no index.html in the web directory; serving the web app embedded at build time");
        } else {
            tracing::warn!(
                web_dir = %dir,
                "no index.html in the web directory: the web app is not built \
                 (npm --prefix web ci && npm --prefix web run build); / shows how to build it"
            );
        }
    }

    /// The embedded copy answers only while the directory on disk has no app, so a build on
    /// disk always wins and the two are never mixed.
    async fn use_embedded(&self) -> bool {
        embedded::available()
            && !tokio::fs::metadata(self.index_path())
                .await
                .is_ok_and(|m| m.is_file())
    }

    /// The routes of the web app, to merge into the server's router. Unknown paths fall back
    /// to the file service, which answers 404 for anything that is not a file.
    pub fn routes(self) -> Router {
        let mut router = Router::new();
        for route in APP_ROUTES {
            router = router.route(route, get(app_page));
        }
        // Off, `/status` is left to the fallback: the 404 any unknown path gets.
        if self.0.status_page {
            router = router.route(STATUS_ROUTE, get(app_page));
        }
        router
            .route("/s/{id}", get(result_page))
            .route("/graphiql", get(graphiql_page))
            .route("/assets/{*path}", get(asset))
            .fallback(top_level_file)
            .with_state(self)
    }
}

async fn app_page(State(web): State<WebApp>) -> Result<Response, WebError> {
    let body = match web.app_index().await? {
        Some(page) => page.body,
        None => Body::from(web.0.not_built.clone()),
    };
    Ok(html_page(body))
}

/// The app's page with link-preview tags for the submission, when the id names one.
async fn result_page(
    State(web): State<WebApp>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, WebError> {
    let Some(page) = web.app_index().await? else {
        return Ok(html_page(Body::from(web.0.not_built.clone())));
    };
    let preview = match &web.0.previews {
        Some(previews) => previews.preview(&id).await,
        None => None,
    };
    let Some(preview) = preview else {
        return Ok(html_page(page.body));
    };
    let text = String::from_utf8_lossy(&page.bytes);
    let body = share::inject(&text, &share::meta_tags(&preview));
    Ok(html_page(Body::from(body)))
}

/// GraphiQL as the app's build bundles it (no CDN); from an older build without it, the page
/// async-graphql ships, which loads GraphiQL from a CDN.
async fn graphiql_page(State(web): State<WebApp>) -> Result<Response, WebError> {
    Ok(match web.page(GRAPHIQL).await? {
        Some(page) => html_page(page.body),
        None => super::pages::graphiql().await.into_response(),
    })
}

/// The app's page with status 404: its router shows the not-found view in the app's frame.
/// Without a built app (or when it cannot be read), a bare 404.
async fn not_found_page(web: &WebApp) -> Response {
    match web.app_index().await {
        Ok(Some(page)) => {
            let mut response = Response::new(page.body);
            *response.status_mut() = StatusCode::NOT_FOUND;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            with_web_headers(response, CACHE_HTML)
        }
        Ok(None) => with_web_headers(StatusCode::NOT_FOUND.into_response(), CACHE_HTML),
        Err(error) => error.into_response(),
    }
}

fn html_page(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    with_web_headers(response, CACHE_HTML)
}

/// A missing directory or file, or one in the place of the other: the app is not built there.
fn means_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory
    )
}

async fn asset(State(web): State<WebApp>, request: Request) -> Response {
    let response = serve_file(&web, request).await;
    with_web_headers(response, CACHE_ASSET)
}

async fn top_level_file(State(web): State<WebApp>, request: Request) -> Response {
    // Only reading methods reach files; anything else at an unknown path is unknown.
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return StatusCode::NOT_FOUND.into_response();
    }
    let in_assets = request.uri().path().starts_with(ASSETS_PREFIX);
    let response = serve_file(&web, request).await;
    if response.status() == StatusCode::NOT_FOUND && !in_assets {
        return not_found_page(&web).await;
    }
    // An HTML file reached another way (`/./index.html`) must not be cached like a favicon.
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    with_web_headers(response, if is_html { CACHE_HTML } else { CACHE_FILE })
}

/// The file the request's path names, from disk or (when the disk has no app) the embedded copy.
async fn serve_file(web: &WebApp, request: Request) -> Response {
    if web.use_embedded().await {
        return embedded::file(&request);
    }
    match web.0.files.clone().oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// The headers every web app response carries; the cache policy only on what may be cached.
fn with_web_headers(mut response: Response, cache: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Result links carry a submission's id in the path: no other site learns it.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A 404 cached for a year would outlive the deploy that fixes it.
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    response
}

/// The page with `tag` at the end of its head; a page without `</head>` is left as it is.
fn in_head(page: &str, tag: &str) -> String {
    match page.find("</head>") {
        Some(head) => format!("{}{tag}{}", &page[..head], &page[head..]),
        None => page.to_owned(),
    }
}

/// A self-contained page (no script, one inline style, which the CSP allows): the web app is
/// not built, how to build it, and what works meanwhile.
fn not_built_page(dir: &Path) -> String {
    NOT_BUILT.replace("{web_dir}", &escape_html(&dir.display().to_string()))
}

/// What the app routes answer when the web app is not built; `{web_dir}` is filled in.
const NOT_BUILT: &str = include_str!("not_built.html");

/// The app as it was in `web/dist` when this binary was built (feature `embed-web`).
#[cfg(feature = "embed-web")]
mod embedded {
    use std::borrow::Cow;

    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::{IntoResponse, Response};

    /// A relative folder is taken from the crate's root (`$CARGO_MANIFEST_DIR/web/dist`). No
    /// `allow_missing`: asking for the embedded app without building it first is a compile
    /// error ("folder … does not exist"), not a binary that silently lacks its app. The
    /// `debug-embed` feature embeds in debug builds too, instead of reading this folder at run
    /// time, so debug and release binaries behave alike.
    #[derive(rust_embed::Embed)]
    #[folder = "web/dist/"]
    struct Dist;

    pub fn available() -> bool {
        Dist::get("index.html").is_some()
    }

    pub fn page(name: &str) -> Option<Cow<'static, [u8]>> {
        Dist::get(name).map(|file| file.data)
    }

    /// The embedded file the request's path names. A lookup by name in a fixed table: no path
    /// can reach anything that was not embedded.
    pub fn file(request: &Request) -> Response {
        let name = request.uri().path().trim_start_matches('/');
        let Some(file) = Dist::get(name) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        // The content's hash is an ETag that only changes with the content.
        let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
        let Ok(etag) = HeaderValue::from_str(&etag) else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let unchanged = request
            .headers()
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v == etag);
        let mut response = if unchanged {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut response = Response::new(Body::from(file.data));
            if let Ok(mime) = HeaderValue::from_str(file.metadata.mimetype()) {
                response.headers_mut().insert(header::CONTENT_TYPE, mime);
            }
            response
        };
        response.headers_mut().insert(header::ETAG, etag);
        response
    }
}

/// Without the `embed-web` feature nothing is embedded, and the build reads nothing of
/// `web/dist`.
#[cfg(not(feature = "embed-web"))]
mod embedded {
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};

    pub fn available() -> bool {
        false
    }

    pub fn page(_name: &str) -> Option<Vec<u8>> {
        None
    }

    pub fn file(_request: &Request) -> Response {
        StatusCode::NOT_FOUND.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_not_built_page_says_where_it_looked_and_how_to_build() {
        let page = not_built_page(Path::new("/srv/<web>/dist"));
        assert!(page.contains("<code>/srv/&lt;web&gt;/dist</code>"));
        assert!(page.contains("npm --prefix web ci &amp;&amp; npm --prefix web run build"));
        assert!(page.contains("scripts/run"));
        for link in ["/graphiql", "/healthz", "/readyz"] {
            assert!(page.contains(&format!("href=\"{link}\"")), "{link}");
        }
        assert!(!page.contains("<script"), "the CSP allows no inline script");
    }

    #[test]
    fn the_status_page_flag_goes_at_the_end_of_the_head() {
        assert_eq!(
            in_head(
                "<html><head><title>t</title></head><body></body></html>",
                STATUS_PAGE_OFF
            ),
            "<html><head><title>t</title><meta name=\"tb-status-page\" content=\"off\" /></head>\
             <body></body></html>"
        );
        assert_eq!(in_head("no head", STATUS_PAGE_OFF), "no head");
    }

    #[test]
    fn caches_only_what_succeeded() {
        let ok = with_web_headers(StatusCode::OK.into_response(), CACHE_ASSET);
        assert_eq!(ok.headers()[header::CACHE_CONTROL], CACHE_ASSET);
        assert_eq!(ok.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let missing = with_web_headers(StatusCode::NOT_FOUND.into_response(), CACHE_ASSET);
        assert!(missing.headers().get(header::CACHE_CONTROL).is_none());
        assert_eq!(
            missing.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
    }
}
