//! OpenID Connect sign-in (issue 15) against a real provider on loopback
//! ([`parley_e2e::oidc_issuer`]): the ID-token route of native apps, the browser flow
//! (start, provider, callback, one-time code) over real HTTP, every refusal with its typed
//! code, key rotation and the refetch limit, a provider that is down, the email-linking rule;
//! and refresh without rotation (simplejwt's `ROTATE_REFRESH_TOKENS = False`).

use parley_e2e::oidc_issuer::{
    CLIENT_ID, CLIENT_SECRET, IssuerUser, KEY1, KEY1_PUBLIC_PEM, KEY2, KEY3, TestIssuer, sign_rs256,
};
use parley_e2e::{Backend, TestServer, http};
use parley_server::{OidcProviderSettings, Settings};
use serde_json::{Value, json};

crate::on_both!(
    an_id_token_signs_in_and_finds_the_same_account_again,
    the_browser_flow_signs_in_through_the_provider_once,
    a_verified_email_links_only_when_allowed,
    refresh_without_rotation_keeps_the_refresh_token
);

mod one_backend {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_id_tokens_are_refused_with_their_codes() {
        super::bad_id_tokens_are_refused_with_their_codes().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_key_refetches_the_keys_once_per_interval() {
        super::an_unknown_key_refetches_the_keys_once_per_interval().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provider_that_is_down_is_a_503_and_nothing_is_cached() {
        super::a_provider_that_is_down_is_a_503_and_nothing_is_cached().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn browser_flow_refusals_come_back_as_typed_codes() {
        super::browser_flow_refusals_come_back_as_typed_codes().await;
    }
}

/// Adds provider `name` at `issuer` (the test client), linking by email when `link`.
fn add_provider(s: &mut Settings, name: &str, issuer: &str, link: bool) {
    s.oidc_providers.insert(
        name.to_owned(),
        OidcProviderSettings {
            issuer: Some(issuer.to_owned()),
            client_id: CLIENT_ID.to_owned(),
            link_verified_email: link,
            ..OidcProviderSettings::default()
        },
    );
    s.oidc_client_secrets
        .insert(name.to_owned(), CLIENT_SECRET.to_owned());
}

async fn server_for(backend: Backend, issuer: &TestIssuer) -> TestServer {
    let url = issuer.issuer();
    TestServer::start_with(backend, |s| add_provider(s, "test", &url, false)).await
}

fn user(sub: &str, email: Option<&str>, verified: bool, handle: Option<&str>) -> IssuerUser {
    IssuerUser {
        sub: sub.to_owned(),
        email: email.map(str::to_owned),
        email_verified: verified,
        preferred_username: handle.map(str::to_owned),
    }
}

async fn post_id_token(server: &TestServer, provider: &str, body: &Value) -> http::Response {
    http::post(
        server.addr,
        &format!("/api/auth/oidc/{provider}"),
        None,
        body,
    )
    .await
}

async fn an_id_token_signs_in_and_finds_the_same_account_again(backend: Backend) {
    let issuer = TestIssuer::start().await;
    let server = server_for(backend, &issuer).await;

    let r = http::get(server.addr, "/api/auth/oidc", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"providers": [{"name": "test", "display_name": "Test"}]})
    );

    let ana = user(
        "sub-ana",
        Some("ana@example.com"),
        true,
        Some("Ana Banana!"),
    );
    let r = post_id_token(&server, "test", &json!({"id_token": issuer.id_token(&ana)})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = r.json();
    // Answered like `login`: the two tokens and the account, its name derived from the claims.
    assert_eq!(first["user"]["username"], "anabanana");
    assert_eq!(first["user"]["email"], "ana@example.com");
    assert!(first["user"]["last_login"].is_number());
    let me = http::get(server.addr, "/api/me", first["access"].as_str()).await;
    assert_eq!(me.status, 200, "{}", me.body);
    // The sign-in it came from is listed, by issuer (no subject, no secret).
    let identities = me.json()["identities"].clone();
    assert_eq!(identities.as_array().map(Vec::len), Some(1), "{identities}");
    assert_eq!(identities[0]["issuer"], issuer.issuer());
    assert!(identities[0]["linked_at"].is_number(), "{identities}");
    let refreshed = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": first["refresh"]}),
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);

    // The name native apps post it under; the same subject is the same account.
    let r = post_id_token(
        &server,
        "test",
        &json!({"auth_token": issuer.id_token(&ana)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"]["id"], first["user"]["id"]);

    // Another subject with a clashing handle gets a free name.
    let other = user("sub-ana-2", None, false, Some("anabanana"));
    let r = post_id_token(
        &server,
        "test",
        &json!({"id_token": issuer.id_token(&other)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"]["username"], "anabanana-2");
    assert!(r.json()["user"]["email"].is_null());
    // An account with no password is deleted on a fresh sign-in alone (no password to give).
    let fresh = r.json()["access"].as_str().map(str::to_owned);
    let deleted = http::request(
        server.addr,
        "DELETE",
        "/api/me",
        fresh.as_deref(),
        Some(&json!({})),
        &[],
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let gone = http::get(server.addr, "/api/me", fresh.as_deref()).await;
    assert_eq!(gone.status / 100, 4, "{}", gone.body);

    // An unknown provider, a missing token, an unknown field.
    let r = post_id_token(&server, "nope", &json!({"id_token": issuer.id_token(&ana)})).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let r = post_id_token(&server, "test", &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "missing_field"));
    let r = post_id_token(&server, "test", &json!({"id_token": "x", "extra": 1})).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "unknown_field"));
    server.stop().await;
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn bad_id_tokens_are_refused_with_their_codes() {
    let issuer = TestIssuer::start().await;
    let server = server_for(Backend::Sqlite, &issuer).await;
    let someone = user("sub-x", Some("x@example.com"), true, Some("xavier"));
    let good = issuer.claims(&someone, None);

    let with = |patch: Value| {
        let mut claims = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired an hour ago",
            sign_rs256(
                &with(json!({"exp": now() - 3600, "iat": now() - 7200})),
                KEY1,
            ),
            "token_expired",
        ),
        (
            "another issuer",
            sign_rs256(&with(json!({"iss": "https://evil.example.com"})), KEY1),
            "token_invalid",
        ),
        (
            "another audience",
            sign_rs256(&with(json!({"aud": "someone-elses-client"})), KEY1),
            "token_invalid",
        ),
        (
            "a key the provider never published",
            sign_rs256(&good, KEY3),
            "token_invalid",
        ),
        (
            "no subject",
            sign_rs256(
                &{
                    let mut c = good.clone();
                    c.as_object_mut().unwrap().remove("sub");
                    c
                },
                KEY1,
            ),
            "token_invalid",
        ),
    ];
    for (what, token, code) in cases {
        let r = post_id_token(&server, "test", &json!({"id_token": token})).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (401, code),
            "{what}: {}",
            r.body
        );
    }

    // `alg: none`, and HS256 keyed with the provider's public key (an algorithm swap).
    let payload = b64(good.to_string().as_bytes());
    let none = format!(
        "{}.{payload}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": KEY1})
            .to_string()
            .as_bytes())
    );
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(KEY1.to_owned());
    let swapped = jsonwebtoken::encode(
        &header,
        &good,
        &jsonwebtoken::EncodingKey::from_secret(KEY1_PUBLIC_PEM),
    )
    .unwrap();
    let tampered = {
        let real = sign_rs256(&good, KEY1);
        let parts: Vec<&str> = real.split('.').collect();
        let evil = b64(with(json!({"sub": "someone-else"})).to_string().as_bytes());
        format!("{}.{evil}.{}", parts[0], parts[2])
    };
    for (what, token) in [
        ("alg none", none),
        ("HS256 with the public key", swapped),
        ("a payload that is not what was signed", tampered),
        ("not a JWT", "not.a.jwt".to_owned()),
    ] {
        let r = post_id_token(&server, "test", &json!({"id_token": token})).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (401, "token_invalid"),
            "{what}: {}",
            r.body
        );
    }
    // The good token still works: nothing above broke the cached keys.
    let r = post_id_token(
        &server,
        "test",
        &json!({"id_token": sign_rs256(&good, KEY1)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    server.stop().await;
}

async fn an_unknown_key_refetches_the_keys_once_per_interval() {
    let issuer = TestIssuer::start().await;
    let server = server_for(Backend::Sqlite, &issuer).await;
    let ana = user("sub-rot", None, false, Some("rotor"));
    let r = post_id_token(&server, "test", &json!({"id_token": issuer.id_token(&ana)})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(issuer.jwks_hits(), 1);
    // Cached: no more fetches.
    let r = post_id_token(&server, "test", &json!({"id_token": issuer.id_token(&ana)})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(issuer.jwks_hits(), 1);

    // The provider rotates to key2: the first token naming it makes Parley fetch the keys.
    issuer.rotate(&[KEY1, KEY2], KEY2);
    let r = post_id_token(&server, "test", &json!({"id_token": issuer.id_token(&ana)})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(issuer.jwks_hits(), 2);

    // A flood of tokens naming a key nobody publishes: refused, and the provider is not
    // asked again within the interval.
    let claims = issuer.claims(&ana, None);
    for _ in 0..20 {
        let r = post_id_token(
            &server,
            "test",
            &json!({"id_token": sign_rs256(&claims, KEY3)}),
        )
        .await;
        assert_eq!((r.status, r.error_code().as_str()), (401, "token_invalid"));
    }
    assert_eq!(issuer.jwks_hits(), 2);
    // Keys still cached work.
    let r = post_id_token(
        &server,
        "test",
        &json!({"id_token": sign_rs256(&claims, KEY1)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(issuer.discovery_hits(), 1);
    server.stop().await;
}

async fn a_provider_that_is_down_is_a_503_and_nothing_is_cached() {
    // A port nobody listens on (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let server =
        TestServer::start_with(Backend::Sqlite, |s| add_provider(s, "test", &url, false)).await;
    let ana = user("sub-down", None, false, Some("downer"));
    let claims = json!({
        "iss": url, "aud": CLIENT_ID, "sub": ana.sub, "iat": now(), "exp": now() + 600,
    });
    let token = sign_rs256(&claims, KEY1);
    for _ in 0..2 {
        let r = post_id_token(&server, "test", &json!({"id_token": token})).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (503, "provider_unavailable"),
            "{}",
            r.body
        );
    }
    let r = http::get(server.addr, "/api/auth/oidc/test/start", None).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (503, "provider_unavailable")
    );

    // The provider comes up: the next request fetches and succeeds (no failure was cached).
    let issuer = TestIssuer::start_on(port).await;
    assert_eq!(issuer.issuer(), url);
    let r = post_id_token(&server, "test", &json!({"id_token": token})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(issuer.jwks_hits(), 1);
    server.stop().await;
}

async fn a_verified_email_links_only_when_allowed(backend: Backend) {
    let issuer = TestIssuer::start().await;
    let url = issuer.issuer();
    let server = TestServer::start_with(backend, |s| {
        add_provider(s, "strict", &url, false);
        add_provider(s, "linking", &url, true);
    })
    .await;
    let r = http::post(
        server.addr,
        "/api/auth/register",
        None,
        &json!({"username": "hana", "password": "a good password", "email": "hana@example.com"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let hana_id = r.json()["id"].clone();

    // Linking on, but the provider did not verify the email: never linked.
    let b = user("sub-b", Some("HANA@example.com"), false, None);
    let r = post_id_token(
        &server,
        "linking",
        &json!({"id_token": issuer.id_token(&b)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.json()["user"]["id"], hana_id);
    assert!(r.json()["user"]["email"].is_null());

    // Linking on and verified: Hana's account, and from now on by the subject alone.
    let c = user("sub-c", Some("Hana@Example.com"), true, None);
    let r = post_id_token(
        &server,
        "linking",
        &json!({"id_token": issuer.id_token(&c)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"]["id"], hana_id);
    let c_later = user("sub-c", Some("hana.new@example.com"), true, None);
    let r = post_id_token(
        &server,
        "linking",
        &json!({"id_token": issuer.id_token(&c_later)}),
    )
    .await;
    assert_eq!(r.json()["user"]["id"], hana_id);
    // Linking off: a verified email of an existing account still makes a new account (checked last: two
    // accounts with one email never link).
    let a = user("sub-a", Some("hana@example.com"), true, None);
    let r = post_id_token(&server, "strict", &json!({"id_token": issuer.id_token(&a)})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.json()["user"]["id"], hana_id);
    assert_eq!(r.json()["user"]["username"], "hana-3");

    server.stop().await;
}

/// The value of `name` in a URL's query or fragment (`a=1&b=2`).
fn param(url: &str, name: &str) -> Option<String> {
    let tail = url.split_once(['?', '#']).map_or("", |(_, t)| t);
    tail.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

/// Path and query of an absolute URL on loopback, with its address.
fn split_url(url: &str) -> (std::net::SocketAddr, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    (authority.parse().unwrap(), path.to_owned())
}

/// `GET /start`: the cookie and the provider's authorization URL.
async fn start(server: &TestServer) -> (String, String) {
    let r = http::get(server.addr, "/api/auth/oidc/test/start", None).await;
    assert_eq!(r.status, 302, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap().to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    (cookie, r.header("location").unwrap().to_owned())
}

/// The provider's authorization endpoint: signs in at once and answers the callback URL.
async fn authorize(url: &str) -> String {
    let (addr, path) = split_url(url);
    let r = http::get(addr, &path, None).await;
    assert_eq!(r.status, 302, "{}", r.body);
    r.header("location").unwrap().to_owned()
}

/// The callback with `cookie`: where it sends the browser.
async fn callback(server: &TestServer, callback_url: &str, cookie: Option<&str>) -> String {
    let (_, path) = split_url(callback_url);
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("Cookie", c)).into_iter().collect();
    let r = http::request(server.addr, "GET", &path, None, None, &headers).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    r.header("location").unwrap().to_owned()
}

async fn exchange(server: &TestServer, code: &str) -> http::Response {
    http::post(
        server.addr,
        "/api/auth/oidc/test/exchange",
        None,
        &json!({"code": code}),
    )
    .await
}

async fn the_browser_flow_signs_in_through_the_provider_once(backend: Backend) {
    let issuer = TestIssuer::start().await;
    let server = server_for(backend, &issuer).await;
    issuer.set_user(user(
        "sub-web",
        Some("webby@example.com"),
        true,
        Some("webby"),
    ));

    let (cookie, to_provider) = start(&server).await;
    assert!(to_provider.starts_with(&format!("{}/authorize?", issuer.issuer())));
    assert_eq!(
        param(&to_provider, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&to_provider, "client_id").as_deref(), Some(CLIENT_ID));
    assert!(param(&to_provider, "nonce").is_some() && param(&to_provider, "state").is_some());
    let back = authorize(&to_provider).await;
    assert!(back.starts_with(&format!(
        "http://{}/api/auth/oidc/test/callback?",
        server.addr
    )));
    let page = callback(&server, &back, Some(&cookie)).await;
    // Nothing but a one-time code, in the fragment (never sent to a server).
    assert!(
        page.starts_with("/#oidc_provider=test&oidc_code="),
        "{page}"
    );
    let code = param(&page, "oidc_code").unwrap();

    let r = exchange(&server, &code).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let login = r.json();
    assert_eq!(login["user"]["username"], "webby");
    assert_eq!(login["user"]["email"], "webby@example.com");
    let me = http::get(server.addr, "/api/me", login["access"].as_str()).await;
    assert_eq!(me.status, 200);
    // The code works once.
    let r = exchange(&server, &code).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "token_revoked"));
    // So does the sign-in state: the same callback again is refused.
    let page = callback(&server, &back, Some(&cookie)).await;
    assert_eq!(page, "/#oidc_error=token_revoked");

    // A second sign-in finds the same account.
    let (cookie, to_provider) = start(&server).await;
    let back = authorize(&to_provider).await;
    let page = callback(&server, &back, Some(&cookie)).await;
    let r = exchange(&server, &param(&page, "oidc_code").unwrap()).await;
    assert_eq!(r.json()["user"]["id"], login["user"]["id"]);
    server.stop().await;
}

async fn browser_flow_refusals_come_back_as_typed_codes() {
    let issuer = TestIssuer::start().await;
    let server = server_for(Backend::Sqlite, &issuer).await;

    // Wrong state: the callback's state is not the cookie's.
    let (cookie, to_provider) = start(&server).await;
    let back = authorize(&to_provider).await;
    let state = param(&back, "state").unwrap();
    let forged = back.replace(&format!("state={state}"), "state=forged-state");
    assert_eq!(
        callback(&server, &forged, Some(&cookie)).await,
        "/#oidc_error=token_invalid"
    );

    // No cookie (another browser): refused.
    let (_, to_provider) = start(&server).await;
    let back = authorize(&to_provider).await;
    assert_eq!(
        callback(&server, &back, None).await,
        "/#oidc_error=token_invalid"
    );

    // A replayed code: spent at the provider by a first sign-in, then presented with a fresh
    // sign-in's state; the provider refuses it.
    let (cookie, to_provider) = start(&server).await;
    let back = authorize(&to_provider).await;
    let page = callback(&server, &back, Some(&cookie)).await;
    assert!(page.contains("oidc_code="), "{page}");
    let old_code = param(&back, "code").unwrap();
    let (cookie2, to_provider2) = start(&server).await;
    let back2 = authorize(&to_provider2).await;
    let replay = back2.replace(
        &format!("code={}", param(&back2, "code").unwrap()),
        &format!("code={old_code}"),
    );
    assert_eq!(
        callback(&server, &replay, Some(&cookie2)).await,
        "/#oidc_error=token_invalid"
    );

    // Wrong nonce: the provider's ID token answers another sign-in.
    issuer.override_nonce(Some("another-sign-ins-nonce"));
    let (cookie, to_provider) = start(&server).await;
    let back = authorize(&to_provider).await;
    assert_eq!(
        callback(&server, &back, Some(&cookie)).await,
        "/#oidc_error=token_invalid"
    );
    issuer.override_nonce(None);

    // The user cancelled at the provider.
    let (cookie, _) = start(&server).await;
    let cancelled = format!(
        "http://{}/api/auth/oidc/test/callback?error=access_denied&state=x",
        server.addr
    );
    assert_eq!(
        callback(&server, &cancelled, Some(&cookie)).await,
        "/#oidc_error=unauthorized"
    );

    // A forged or foreign one-time code.
    let r = exchange(&server, "forged.code.value").await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "token_invalid"));
    let access = server.user("carol").await;
    let r = exchange(&server, &access).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "token_invalid"));
    // An unknown provider.
    let r = http::get(server.addr, "/api/auth/oidc/nope/start", None).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    server.stop().await;
}

async fn refresh_without_rotation_keeps_the_refresh_token(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.refresh_rotation = false;
        // Equal lifetimes, as many simplejwt setups have.
        s.access_token_ttl_secs = 900;
        s.refresh_token_ttl_secs = 900;
    })
    .await;
    server.user("rita").await;
    let login = server.login("rita").await;
    let refresh = login["refresh"].clone();
    for _ in 0..3 {
        let r = http::post(
            server.addr,
            "/api/auth/refresh",
            None,
            &json!({"refresh": refresh}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let body = r.json();
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        let me = http::get(server.addr, "/api/me", body["access"].as_str()).await;
        assert_eq!(me.status, 200);
    }
    let r = http::post(
        server.addr,
        "/api/auth/logout",
        None,
        &json!({"refresh": refresh}),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = http::post(
        server.addr,
        "/api/auth/refresh",
        None,
        &json!({"refresh": refresh}),
    )
    .await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "token_revoked"));
    server.stop().await;
}
