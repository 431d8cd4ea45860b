//! A socket's authorization ends with its access token: an `expiring` warning, a `renew` on
//! the open socket with a fresh token of the same user, or a close (4003); logging out
//! closes the sockets of that login (4004), on every process sharing the layer.

use parley_e2e::{Backend, TestServer, WsClient, WsEvent, http, login, redis_url, unique};
use parley_server::LayerKind;
use serde_json::{Value, json};
use std::sync::Arc;

crate::on_both!(
    a_socket_expires_with_its_token_unless_renewed,
    logout_closes_the_sockets_of_that_login_on_every_process
);

/// The next frame of `kind`, or the close, whichever comes first.
async fn next_of_or_close(ws: &mut WsClient, kind: &str) -> Result<Value, u16> {
    loop {
        match ws.next_event().await {
            WsEvent::Json(v) if v["type"] == kind => return Ok(v),
            WsEvent::Json(_) => continue,
            WsEvent::Closed(code, _) => return Err(code),
        }
    }
}

async fn a_socket_expires_with_its_token_unless_renewed(backend: Backend) {
    // Tokens of 3 s, warned 1 s before: every step below is seconds apart.
    let server = TestServer::start_with(backend, |s| {
        s.access_token_ttl_secs = 3;
        s.expiry_warning_secs = 1;
    })
    .await;
    let alice = format!("alice{}", unique());
    server.user(&alice).await;
    let bob = server.user("bob").await;
    let first = login(server.addr, &alice).await;
    let token = first["access"].as_str().unwrap().to_owned();
    let mut idle = WsClient::connect(server.addr, &token).await;
    let mut renewing = WsClient::connect(server.addr, &token).await;

    // Both are warned, a second before the token's expiry.
    let expiring = next_of_or_close(&mut renewing, "expiring").await.unwrap();
    let expires_at = expiring["expires_at"].as_i64().unwrap();
    assert!(expires_at > 0, "{expiring}");
    // Another user's token does not renew this socket.
    let refused = renewing
        .ask(json!({"type": "renew", "token": bob}), "n0")
        .await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{refused}"
    );
    // A refresh token is not an access token.
    let refresh = first["refresh"].as_str().unwrap();
    let refused = renewing
        .ask(json!({"type": "renew", "token": refresh}), "n1")
        .await;
    assert_eq!(refused["code"], "wrong_token_type", "{refused}");
    // A fresh access token of the same user renews it.
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": refresh}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh = r.json()["access"].as_str().unwrap().to_owned();
    let renewed = renewing
        .ask(json!({"type": "renew", "token": fresh}), "n2")
        .await;
    assert_eq!(renewed["type"], "renewed", "{renewed}");
    assert!(
        renewed["expires_at"].as_i64().unwrap() >= expires_at,
        "{renewed}"
    );

    // The socket that did not renew closes when its token expires ...
    assert_eq!(next_of_or_close(&mut idle, "never").await, Err(4003));
    // ... the renewed one lives on past the first token's expiry (its next event is the
    // warning for the new token, not a close at the old deadline), warned again before the
    // new one's.
    assert_eq!(
        renewing.ask(json!({"type": "ping"}), "p").await["type"],
        "pong"
    );
    assert!(next_of_or_close(&mut renewing, "expiring").await.is_ok());
    assert_eq!(next_of_or_close(&mut renewing, "never").await, Err(4003));
    server.stop().await;
}

async fn logout_closes_the_sockets_of_that_login_on_every_process(backend: Backend) {
    let db = Arc::new(backend.database().await);
    let prefix = format!("parley-e2e-{}:", unique());
    let redis = |s: &mut parley_server::Settings| {
        s.layer = Some(LayerKind::Redis);
        s.redis_url = Some(redis_url());
        s.redis_prefix = prefix.clone();
    };
    let one = TestServer::start_on(db.clone(), redis).await;
    let two = TestServer::start_on(db.clone(), redis).await;
    let alice = format!("alice{}", unique());
    one.user(&alice).await;
    // Two logins (two devices): one signs out.
    let phone = login(one.addr, &alice).await;
    let laptop = login(one.addr, &alice).await;
    let token = |l: &Value| l["access"].as_str().unwrap().to_owned();
    let mut phone_here = WsClient::connect(one.addr, &token(&phone)).await;
    let mut phone_there = WsClient::connect(two.addr, &token(&phone)).await;
    let mut laptop_ws = WsClient::connect(two.addr, &token(&laptop)).await;
    for ws in [&mut phone_here, &mut phone_there, &mut laptop_ws] {
        assert_eq!(ws.ask(json!({"type": "ping"}), "p").await["type"], "pong");
    }
    let r = http::post(
        one.addr,
        "/api/auth/logout",
        None,
        &json!({"refresh": phone["refresh"]}),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    // The phone's sockets close, on this process and the other.
    assert_eq!(phone_here.closed().await.0, 4004);
    assert_eq!(phone_there.closed().await.0, 4004);
    // The laptop's login is another: its socket stays.
    assert_eq!(
        laptop_ws.ask(json!({"type": "ping"}), "p2").await["type"],
        "pong"
    );
    one.stop().await;
    two.stop().await;
}
