//! The web client, embedded in the binary (no CDN, no files on disk at run time).

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const INDEX_HTML: &str = include_str!("../../../web/index.html");
const APP_JS: &str = include_str!("../../../web/app.js");
const APP_CSS: &str = include_str!("../../../web/app.css");

/// Registers `/`, `/app.js` and `/app.css`.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/",
        web::get().to(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
    )
    .route(
        "/app.js",
        web::get().to(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
    )
    .route(
        "/app.css",
        web::get().to(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
    );
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        // The page's own policy is in its <meta> tag; framing can only be refused by header.
        .insert_header(("content-security-policy", "frame-ancestors 'none'"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("referrer-policy", "no-referrer"))
        .body(body)
}
