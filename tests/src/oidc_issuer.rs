//! A small, real OpenID Connect provider on loopback, for the sign-in tests: discovery
//! (`/.well-known/openid-configuration`), keys (`/jwks`), an authorization endpoint that
//! signs in at once as the user the test chose ([`TestIssuer::set_user`]) and redirects back
//! with a code, and a token endpoint that checks the client secret, the PKCE verifier and the
//! redirect URI, hands out each code once, and answers RS256 ID tokens.
//!
//! The RSA keys are test fixtures committed under `tests/fixtures/oidc/` (generated with
//! `openssl genpkey -algorithm RSA`, 2048 bits): `key1.pem`, `key2.pem`, `key3.pem`.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The fixture keys by id.
pub const KEY1: &str = "key1";
/// The second fixture key (for rotation).
pub const KEY2: &str = "key2";
/// A third key the issuer never publishes.
pub const KEY3: &str = "key3";

/// A fixture key's private PEM.
pub fn private_pem(kid: &str) -> &'static [u8] {
    match kid {
        KEY1 => include_bytes!("../fixtures/oidc/key1.pem"),
        KEY2 => include_bytes!("../fixtures/oidc/key2.pem"),
        _ => include_bytes!("../fixtures/oidc/key3.pem"),
    }
}

/// key1's public key as PEM (an attacker knows it: the HS256-with-the-public-key swap).
pub const KEY1_PUBLIC_PEM: &[u8] = include_bytes!("../fixtures/oidc/key1.pub.pem");

/// The client id the issuer knows.
pub const CLIENT_ID: &str = "parley-test-client";
/// Its secret.
pub const CLIENT_SECRET: &str = "parley-test-secret";

/// Who signs in at the authorization endpoint.
#[derive(Debug, Clone)]
pub struct IssuerUser {
    /// The subject.
    pub sub: String,
    /// The email, if shared.
    pub email: Option<String>,
    /// Whether it is verified.
    pub email_verified: bool,
    /// A preferred handle.
    pub preferred_username: Option<String>,
}

/// A code handed out at the authorization endpoint, until spent at the token endpoint.
struct Pending {
    redirect_uri: String,
    nonce: Option<String>,
    challenge: String,
    user: IssuerUser,
}

struct Shared {
    /// `http://127.0.0.1:port`.
    issuer: String,
    /// The keys `/jwks` publishes.
    published: Mutex<Vec<String>>,
    /// The key ID tokens are signed with.
    signing: Mutex<String>,
    /// Who signs in next.
    user: Mutex<IssuerUser>,
    /// Codes not yet spent.
    codes: Mutex<HashMap<String, Pending>>,
    /// Codes spent.
    spent: Mutex<HashSet<String>>,
    /// How often `/jwks` was fetched.
    jwks_hits: AtomicUsize,
    /// How often discovery was fetched.
    discovery_hits: AtomicUsize,
    /// How often the token endpoint was called.
    token_hits: AtomicUsize,
    /// Puts this nonce in the token endpoint's ID tokens instead of the requested one.
    nonce_override: Mutex<Option<String>>,
}

/// A running issuer; stops when dropped.
pub struct TestIssuer {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stopping waits for nothing: the test is done with it.
        drop(handle.stop(false));
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn jwk(kid: &str) -> Jwk {
    let key = EncodingKey::from_rsa_pem(private_pem(kid)).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

/// Signs `claims` as an RS256 JWT with fixture key `kid` (named in the header).
pub fn sign_rs256(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(private_pem(kid)).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

impl TestIssuer {
    /// An issuer on a free loopback port, publishing and signing with `key1`.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// An issuer on `port` (0: any).
    pub async fn start_on(port: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            published: Mutex::new(vec![KEY1.to_owned()]),
            signing: Mutex::new(KEY1.to_owned()),
            user: Mutex::new(IssuerUser {
                sub: "subject-1".into(),
                email: Some("someone@example.com".into()),
                email_verified: true,
                preferred_username: Some("someone".into()),
            }),
            codes: Mutex::new(HashMap::new()),
            spent: Mutex::new(HashSet::new()),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
            token_hits: AtomicUsize::new(0),
            nonce_override: Mutex::new(None),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/jwks", web::get().to(jwks))
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            addr,
            shared,
            handle,
        }
    }

    /// The issuer URL (`http://127.0.0.1:port`), the `iss` of its tokens.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// Who signs in at the authorization endpoint from now on.
    pub fn set_user(&self, user: IssuerUser) {
        *self.shared.user.lock().unwrap() = user;
    }

    /// Publishes these keys at `/jwks` and signs with `signing` from now on (a rotation).
    pub fn rotate(&self, published: &[&str], signing: &str) {
        *self.shared.published.lock().unwrap() =
            published.iter().map(|k| (*k).to_owned()).collect();
        *self.shared.signing.lock().unwrap() = signing.to_owned();
    }

    /// From now on the token endpoint's ID tokens carry `nonce` instead of the one asked for
    /// (a misbehaving or replaying provider).
    pub fn override_nonce(&self, nonce: Option<&str>) {
        *self.shared.nonce_override.lock().unwrap() = nonce.map(str::to_owned);
    }

    /// How often `/jwks` was fetched.
    pub fn jwks_hits(&self) -> usize {
        self.shared.jwks_hits.load(Ordering::SeqCst)
    }

    /// How often discovery was fetched.
    pub fn discovery_hits(&self) -> usize {
        self.shared.discovery_hits.load(Ordering::SeqCst)
    }

    /// How often the token endpoint was called.
    pub fn token_hits(&self) -> usize {
        self.shared.token_hits.load(Ordering::SeqCst)
    }

    /// Standard claims for `user` (expiring in 10 minutes, audience [`CLIENT_ID`]).
    pub fn claims(&self, user: &IssuerUser, nonce: Option<&str>) -> Value {
        self.shared.claims(user, nonce)
    }

    /// An ID token for `user` signed with the current signing key.
    pub fn id_token(&self, user: &IssuerUser) -> String {
        let kid = self.shared.signing.lock().unwrap().clone();
        sign_rs256(&self.claims(user, None), &kid)
    }
}

impl Shared {
    fn claims(&self, user: &IssuerUser, nonce: Option<&str>) -> Value {
        let mut claims = json!({
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": user.sub,
            "iat": now(),
            "exp": now() + 600,
            "email_verified": user.email_verified,
        });
        if let Some(email) = &user.email {
            claims["email"] = json!(email);
        }
        if let Some(name) = &user.preferred_username {
            claims["preferred_username"] = json!(name);
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        claims
    }
}

async fn discovery(s: web::Data<Shared>) -> HttpResponse {
    s.discovery_hits.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .json(json!({
            "issuer": s.issuer,
            "authorization_endpoint": format!("{}/authorize", s.issuer),
            "token_endpoint": format!("{}/token", s.issuer),
            "jwks_uri": format!("{}/jwks", s.issuer),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }))
}

async fn jwks(s: web::Data<Shared>) -> HttpResponse {
    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let keys = s.published.lock().unwrap().iter().map(|k| jwk(k)).collect();
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .json(JwkSet { keys })
}

#[derive(Deserialize)]
struct AuthorizeParams {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: String,
    nonce: Option<String>,
    code_challenge: String,
    code_challenge_method: String,
    scope: String,
}

async fn authorize(s: web::Data<Shared>, q: web::Query<AuthorizeParams>) -> HttpResponse {
    let q = q.into_inner();
    if q.response_type != "code"
        || q.client_id != CLIENT_ID
        || q.code_challenge_method != "S256"
        || !q.scope.split(' ').any(|s| s == "openid")
    {
        return HttpResponse::BadRequest().body("bad authorization request");
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    let user = s.user.lock().unwrap().clone();
    s.codes.lock().unwrap().insert(
        code.clone(),
        Pending {
            redirect_uri: q.redirect_uri.clone(),
            nonce: q.nonce,
            challenge: q.code_challenge,
            user,
        },
    );
    let sep = if q.redirect_uri.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = format!(
        "{}{sep}code={code}&state={}",
        q.redirect_uri,
        url_encode(&q.state)
    );
    HttpResponse::Found()
        .insert_header(("Location", location))
        .finish()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    client_id: String,
    client_secret: Option<String>,
    code_verifier: String,
}

fn token_error(error: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": error }))
}

async fn token(
    s: web::Data<Shared>,
    _req: HttpRequest,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    s.token_hits.fetch_add(1, Ordering::SeqCst);
    let form = form.into_inner();
    if form.grant_type != "authorization_code" {
        return token_error("unsupported_grant_type");
    }
    if form.client_id != CLIENT_ID || form.client_secret.as_deref() != Some(CLIENT_SECRET) {
        return HttpResponse::Unauthorized().json(json!({ "error": "invalid_client" }));
    }
    if !s.spent.lock().unwrap().insert(form.code.clone()) {
        return token_error("invalid_grant");
    }
    let Some(pending) = s.codes.lock().unwrap().remove(&form.code) else {
        return token_error("invalid_grant");
    };
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(form.code_verifier.as_bytes()));
    if challenge != pending.challenge || form.redirect_uri != pending.redirect_uri {
        return token_error("invalid_grant");
    }
    let kid = s.signing.lock().unwrap().clone();
    let nonce = s.nonce_override.lock().unwrap().clone().or(pending.nonce);
    let id_token = sign_rs256(&s.claims(&pending.user, nonce.as_deref()), &kid);
    HttpResponse::Ok().json(json!({
        "access_token": "unused",
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": id_token,
    }))
}
