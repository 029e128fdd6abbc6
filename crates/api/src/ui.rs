//! The operator console at `/ui`: one HTML page, one script and one stylesheet, embedded
//! in the binary (no build step). The page holds no data: its script asks the operator
//! for an API key and calls the `/v1` API with it (docs/console.md).
//!
//! - `GET /ui` (and `/ui/`): the page, `Cache-Control: no-cache` with an `ETag`.
//! - `GET /ui/app.js`, `GET /ui/app.css`: the assets. The page names them with `?v=` and
//!   a hash of their content; asked for with that hash they may be kept for a year
//!   (`immutable`), otherwise they are revalidated by `ETag`.
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles and requests
//! from this origin only, no inline script or style, no framing.

use crate::AppState;
use axum::extract::Query;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use std::sync::{Arc, OnceLock};

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// A year: assets asked for by their content hash never change under that name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The console routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/app.css", get(app_css))
}

/// FNV-1a, 64 bits, as 16 hex digits: a stable name for a version of an asset.
fn fnv(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

struct Assets {
    index: String,
    index_tag: String,
    js_tag: String,
    css_tag: String,
    js_v: String,
    css_v: String,
}

fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let js_v = fnv(APP_JS);
        let css_v = fnv(APP_CSS);
        let index = INDEX_HTML
            .replace("{{js_v}}", &js_v)
            .replace("{{css_v}}", &css_v);
        Assets {
            index_tag: format!("\"{}\"", fnv(&index)),
            js_tag: format!("\"{js_v}\""),
            css_tag: format!("\"{css_v}\""),
            index,
            js_v,
            css_v,
        }
    })
}

#[derive(Deserialize)]
struct Version {
    v: Option<String>,
}

/// An asset with its type, its tag and its caching; 304 when the client has it.
fn serve(
    h: &HeaderMap,
    body: &'static str,
    content_type: &'static str,
    etag: &str,
    cache: &'static str,
) -> Response {
    let fresh = h
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let etag = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"0\""));
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::ETAG, etag),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ];
    if fresh {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, body).into_response()
    }
}

async fn index(h: HeaderMap) -> Response {
    let a = assets();
    serve(
        &h,
        a.index.as_str(),
        "text/html; charset=utf-8",
        &a.index_tag,
        "no-cache",
    )
}

async fn app_js(h: HeaderMap, Query(q): Query<Version>) -> Response {
    let a = assets();
    let cache = if q.v.as_deref() == Some(a.js_v.as_str()) {
        IMMUTABLE
    } else {
        "no-cache"
    };
    serve(
        &h,
        APP_JS,
        "text/javascript; charset=utf-8",
        &a.js_tag,
        cache,
    )
}

async fn app_css(h: HeaderMap, Query(q): Query<Version>) -> Response {
    let a = assets();
    let cache = if q.v.as_deref() == Some(a.css_v.as_str()) {
        IMMUTABLE
    } else {
        "no-cache"
    };
    serve(&h, APP_CSS, "text/css; charset=utf-8", &a.css_tag, cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_or_style_and_names_its_assets_by_hash() {
        let a = assets();
        assert!(!a.index.contains("{{"), "every placeholder replaced");
        assert!(a.index.contains(&format!("/ui/app.js?v={}", a.js_v)));
        assert!(a.index.contains(&format!("/ui/app.css?v={}", a.css_v)));
        // every <script> has a src and nothing else; no inline handlers or styles
        for part in a.index.split("<script").skip(1) {
            let (tag, rest) = part.split_once('>').unwrap_or((part, ""));
            assert!(tag.contains("src="), "inline script: {part}");
            assert!(rest.starts_with("</script>"), "inline script: {part}");
        }
        assert!(!a.index.contains("<style"));
        assert!(!a.index.contains(" style="));
        assert!(!a.index.contains(" onclick="));
    }
}
