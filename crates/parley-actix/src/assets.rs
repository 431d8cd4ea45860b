//! The web client, embedded in the binary (no CDN, no files on disk at run time): every file
//! under `web/` is compiled in by `include_dir!` and served at its path (`web/js/main.js` at
//! `/js/main.js`), the page at `/` too. The JavaScript client library the web client is built
//! on (`clients/js/src`, its `.js` modules) is served under `/js/parley/`
//! (`clients/js/src/index.js` at `/js/parley/index.js`). Paths are routes of their own, registered after the
//! API, socket and health routes, so nothing here can shadow them; any other path falls through
//! to the JSON 404.

use crate::endpoint::Routes;
use crate::openapi::{Doc, Tag};
use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use actix_web::web::Bytes;
use include_dir::{Dir, File, include_dir};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{Content, RefOr, ResponseBuilder};

/// `web/` as it was at build time (`build.rs` makes a change there rebuild the crate).
static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../web");

/// `clients/js/src` as it was at build time: the client library's modules (and declarations,
/// which are not served).
static CLIENT_LIBRARY: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../clients/js/src");

/// Where the client library's modules are served (the web client imports `./parley/...`).
const CLIENT_LIBRARY_PATH: &str = "/js/parley";

/// `/` (the page) and one route per embedded file, each described.
pub(crate) fn routes(r: &mut Routes<'_>) {
    if let Some(index) = WEB.get_file("index.html") {
        r.at("/")
            .get(
                move || async move { asset(index) },
                doc(index, "web_client", "The web client"),
            )
            .done();
    }
    for (path, file) in files() {
        let id: String = format!("web{path}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let summary = format!("The web client's `{}`", path.trim_start_matches('/'));
        r.at(&path)
            .get(move || async move { asset(file) }, doc(file, &id, &summary))
            .done();
    }
}

/// The description of the route serving `file`.
fn doc(file: &File<'_>, id: &str, summary: &str) -> Doc {
    let kind = content_type(&file.path().to_string_lossy()).unwrap_or("application/octet-stream");
    Doc::new(Tag::WebClient, id, summary).reply_with(
        StatusCode::OK,
        ResponseBuilder::new()
            .description("The file, as it was when the server was built.")
            .content(kind, Content::new(None::<RefOr<Schema>>))
            .build(),
    )
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
    // The library's modules only: its `.d.ts` declarations are for TypeScript users.
    out.extend(CLIENT_LIBRARY.files().filter_map(|file| {
        let name = file.path().to_str()?;
        (name.ends_with(".js") && !name.starts_with('.'))
            .then(|| (format!("{CLIENT_LIBRARY_PATH}/{name}"), file))
    }));
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
        assert!(files.iter().any(|(p, _)| p == "/js/parley/index.js"));
        assert!(files.iter().any(|(p, _)| p == "/js/parley/protocol.js"));
        assert!(!files.iter().any(|(p, _)| p.ends_with(".d.ts")));
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
