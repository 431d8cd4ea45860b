//! The OpenAPI document against the real server: it is served at `/api/openapi.json` as
//! `parley_actix::openapi()` makes it, and every operation it describes exists — asked with
//! real names, each is answered by its handler (not the router's 404 or 405) with a status
//! the document lists, every described `GET` answers `HEAD`, and every described handshake
//! opens a WebSocket (the reference server takes upgrades over before actix's router, so
//! this also holds its socket paths to the document). That every mounted route is described
//! is checked where the route table is mounted (parley-actix's `openapi` tests).

use parley_e2e::{Backend, TestServer, WsClient, http, unique};
use serde_json::{Value, json};

crate::on_both!(openapi_document_describes_the_real_server);

async fn openapi_document_describes_the_real_server(backend: Backend) {
    let server = TestServer::start(backend).await;
    let addr = server.addr;

    // Served without a token, as the library makes it, and cacheable.
    let res = http::get(addr, "/api/openapi.json", None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(
        res.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        res.headers
    );
    assert!(
        res.header("cache-control")
            .is_some_and(|c| c.contains("max-age"))
    );
    let doc = res.json();
    assert_eq!(doc, serde_json::to_value(parley_actix::openapi()).unwrap());
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    let etag = res.header("etag").expect("an ETag").to_owned();
    let again = http::request(
        addr,
        "GET",
        "/api/openapi.json",
        None,
        None,
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(again.status, 304, "{}", again.body);
    assert!(again.body.is_empty());

    // Real names for the path parameters: a room owned by `owner`, with `member` in it.
    let owner_name = format!("o{}", unique());
    let member_name = format!("m{}", unique());
    let room = format!("r{}", unique());
    let owner = server.user(&owner_name).await;
    server.user(&member_name).await;
    server.create_room(&owner, &room).await;
    let added = http::post(
        addr,
        &format!("/api/rooms/{room}/members"),
        Some(&owner),
        &json!({"username": member_name}),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let concrete = |template: &str| {
        template
            .split('/')
            .map(|segment| match segment {
                "{room}" => room.as_str(),
                "{user}" | "{username}" => member_name.as_str(),
                "{provider}" => "google",
                // A message id: none exists by it (answered 404 by the handler).
                "{id}" => "999999",
                other => {
                    assert!(
                        !other.starts_with('{'),
                        "no value for {other} in {template}"
                    );
                    other
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    };

    let mut asked = 0;
    let paths = doc["paths"].as_object().expect("paths");
    // Deletions last, so that the other operations find the room and its member.
    let mut operations: Vec<(&String, &str, &Value)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .map(move |(method, op)| (path, method.as_str(), op))
        })
        .collect();
    operations
        .sort_by_key(|(path, method, _)| (*method == "delete", std::cmp::Reverse(path.len())));
    for (template, method, op) in operations {
        let path = concrete(template);
        let method = method.to_ascii_uppercase();
        let described: Vec<&str> = op["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .map(String::as_str)
            .collect();
        let what = format!("{method} {path}");

        // A body where one is described: `{}` is refused before anything happens (400).
        let body = op.get("requestBody").map(|_| json!({}));
        let res = http::request(addr, &method, &path, Some(&owner), body.as_ref(), &[]).await;
        assert_answered(&what, &res, &described);
        asked += 1;
        if method == "GET" {
            let head = http::request(addr, "HEAD", &path, Some(&owner), None, &[]).await;
            if described.contains(&"101") {
                // A handshake does not answer HEAD: 405, naming GET.
                assert_eq!(head.status, 405, "HEAD {path}");
                assert_eq!(head.header("allow"), Some("GET"), "HEAD {path}");
            } else {
                assert_eq!(head.status, res.status, "HEAD {path} vs GET: {}", head.body);
                assert!(head.body.is_empty(), "HEAD {path}: a body");
            }
        }
        if described.contains(&"101") {
            let client = WsClient::try_connect(
                addr,
                &path,
                &[("authorization", &format!("Bearer {owner}"))],
            )
            .await
            .unwrap_or_else(|status| panic!("{what}: the WebSocket was refused with {status}"));
            client.close().await;
        }
    }
    assert!(asked >= 20, "only {asked} operations described");
    server.stop().await;
}

/// `res` came from the operation's handler (not the router's fallback or 405) with a status
/// the document lists for it.
fn assert_answered(what: &str, res: &http::Response, described: &[&str]) {
    assert_ne!(res.status, 405, "{what}: {}", res.body);
    assert!(
        !(res.status == 404 && res.body.contains("no route for")),
        "{what}: not routed: {}",
        res.body
    );
    let status = res.status.to_string();
    assert!(
        described.contains(&status.as_str()),
        "{what}: answered {status} ({}), the document lists {described:?}",
        res.body
    );
}
