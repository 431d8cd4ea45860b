//! The web client, embedded in the binary (no CDN, no files on disk at run time): every file
//! under `web/` is compiled in by `include_dir!` and served at its path (`web/js/main.js` at
//! `/js/main.js`), the page at `/` too. Paths are routes of their own, registered after the
//! API, socket and health routes, so nothing here can shadow them; any other path falls through
//! to the JSON 404.

use crate::endpoint::endpoint;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use include_dir::{Dir, File, include_dir};

/// `web/` as it was at build time (`build.rs` makes a change there rebuild the crate).
static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../web");

/// Registers `/` (the page) and one route per embedded file.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    if let Some(index) = WEB.get_file("index.html") {
        cfg.service(
            endpoint("/")
                .get(move || async move { asset(index) })
                .done(),
        );
    }
    for (path, file) in files() {
        cfg.service(
            endpoint(&path)
                .get(move || async move { asset(file) })
                .done(),
        );
    }
}

/// Every embedded file with the URL path it is served at. Dot files (an editor's swap file,
/// `.DS_Store`) are left out.
fn files() -> Vec<(String, &'static File<'static>)> {
    fn walk(dir: &'static Dir<'static>, out: &mut Vec<(String, &'static File<'static>)>) {
        for file in dir.files() {
            let segments: Option<Vec<&str>> =
                file.path().iter().map(|segment| segment.to_str()).collect();
            let Some(segments) = segments else { continue };
            if segments.iter().any(|s| s.starts_with('.')) {
                continue;
            }
            out.push((format!("/{}", segments.join("/")), file));
        }
        for sub in dir.dirs() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&WEB, &mut out);
    out
}

/// The `Content-Type` of a file by its extension; `None` for kinds not served yet.
fn content_type(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.').map(|(_, e)| e)?;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

fn asset(file: &'static File<'static>) -> HttpResponse {
    let path = file.path().to_string_lossy();
    HttpResponse::Ok()
        // An unknown kind goes out as bytes (nosniff keeps the browser from guessing); the
        // tests make sure every file in `web/` has a known one.
        .insert_header((
            header::CONTENT_TYPE,
            content_type(&path).unwrap_or("application/octet-stream"),
        ))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        // The page's own policy is in its <meta> tag; framing can only be refused by header.
        .insert_header(("content-security-policy", "frame-ancestors 'none'"))
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("referrer-policy", "no-referrer"))
        .body(Bytes::from_static(file.contents()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_plain_route_of_a_known_kind() {
        let files = files();
        assert!(files.iter().any(|(p, _)| p == "/index.html"));
        assert!(files.iter().any(|(p, _)| p == "/js/main.js"));
        for (path, _) in &files {
            assert!(content_type(path).is_some(), "{path}: add its content type");
            // `{`, `}` or `*` would make the route a pattern.
            assert!(
                path.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)),
                "{path}: use plain file names"
            );
            for taken in ["/api", "/ws", "/healthz", "/readyz"] {
                assert!(
                    path != taken && !path.starts_with(&format!("{taken}/")),
                    "{path} would sit under {taken}"
                );
            }
        }
    }
}
