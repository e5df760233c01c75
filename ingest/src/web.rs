//! The web client, served by the edge from files built into the binary
//! (`ingest/web/`: plain HTML, CSS and JavaScript modules, no build step):
//! `parley up`, then open `http://127.0.0.1:8080/`. No CDN, no second
//! server, works with no internet.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page may load only its own files and talk only to this origin;
/// images may come from blob URLs (media fetched with the token).
const CSP: &str = "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' ws: wss:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn file(body: &'static str, mime: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The page's files: path, contents, type.
const FILES: [(&str, &str, &str); 11] = [
    ("/", include_str!("../web/index.html"), HTML),
    ("/style.css", include_str!("../web/style.css"), CSS),
    ("/sw.js", include_str!("../web/sw.js"), JS),
    ("/app.js", include_str!("../web/app.js"), JS),
    ("/state.js", include_str!("../web/state.js"), JS),
    ("/http.js", include_str!("../web/http.js"), JS),
    ("/accounts.js", include_str!("../web/accounts.js"), JS),
    ("/chats.js", include_str!("../web/chats.js"), JS),
    ("/actions.js", include_str!("../web/actions.js"), JS),
    ("/socket.js", include_str!("../web/socket.js"), JS),
    ("/push.js", include_str!("../web/push.js"), JS),
];
const JS: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    FILES.iter().fold(Router::new(), |r, &(path, body, mime)| {
        r.route(path, get(move || async move { file(body, mime) }))
    })
}
