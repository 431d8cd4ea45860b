//! parley-auth against a real store (SQLite files, and PostgreSQL for the rotation race):
//! every rejection the issue lists, rotation, reuse and logout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parley_auth::{
    Auth, AuthConfig, AuthError, Claims, Password, SigningKey, TokenService, TokenType,
};
use parley_domain::{Timestamp, UserId};
use parley_store::testing::TestDb;

const SECRET: &[u8] = b"an-hs256-test-secret-of-32-bytes!!";

fn config() -> AuthConfig {
    AuthConfig {
        bcrypt_cost: 4,
        ..AuthConfig::hs256(SECRET)
    }
}

async fn setup() -> (TestDb, Auth) {
    let db = TestDb::sqlite().await.unwrap();
    let auth = Auth::new(db.store().clone(), &config()).unwrap();
    (db, auth)
}

fn pw(s: &str) -> Password {
    Password::new(s)
}

async fn logged_in(auth: &Auth, name: &str) -> parley_auth::LoginResponse {
    auth.register(name, &pw("correct horse"), None)
        .await
        .unwrap();
    auth.login(name, &pw("correct horse")).await.unwrap()
}

/// The payload of a JWT, decoded without verification.
fn payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

fn now_secs() -> i64 {
    Timestamp::now().millis() / 1000
}

#[test]
fn short_secrets_and_bad_keys_are_refused_at_start_up() {
    let err = TokenService::new(&AuthConfig::hs256(&b"too short"[..])).unwrap_err();
    assert!(
        matches!(err, AuthError::Config(ref m) if m.contains("32 bytes")),
        "{err:?}"
    );
    assert!(TokenService::new(&AuthConfig::hs256(&[7u8; 31][..])).is_err());
    assert!(TokenService::new(&AuthConfig::hs256(&[7u8; 32][..])).is_ok());
    let bad_pem = AuthConfig::with_key(SigningKey::Rs256 {
        private_pem: b"nope".to_vec(),
        public_pem: b"nope".to_vec(),
    });
    assert!(matches!(
        TokenService::new(&bad_pem),
        Err(AuthError::Config(_))
    ));
    let zero = AuthConfig {
        access_ttl: std::time::Duration::ZERO,
        ..AuthConfig::hs256(SECRET)
    };
    assert!(matches!(
        TokenService::new(&zero),
        Err(AuthError::Config(_))
    ));
    // Secrets never reach logs.
    assert!(!format!("{:?}", AuthConfig::hs256(SECRET)).contains("secret-of"));
}

#[test]
fn passwords_never_print_and_follow_the_rules() {
    let p = pw("hunter2hunter2");
    assert_eq!(format!("{p:?}"), "Password(***)");
    let name = parley_domain::UserName::parse("alice").unwrap();
    assert!(p.check_rules(&name).is_ok());
    for (bad, why) in [
        ("short", "at least 8"),
        ("AliceAlice".get(..5).unwrap(), "at least 8"),
        ("        ", "only spaces"),
        ("ALICE", "at least 8"),
    ] {
        let err = pw(bad).check_rules(&name).unwrap_err();
        assert!(
            matches!(err, AuthError::WeakPassword(m) if m.contains(why)),
            "{bad:?}: {err:?}"
        );
    }
    let long_name = parley_domain::UserName::parse("alexandra").unwrap();
    assert!(
        matches!(pw("AlexAndra").check_rules(&long_name), Err(AuthError::WeakPassword(m)) if m.contains("user name"))
    );
    assert!(pw(&"x".repeat(72)).check_rules(&name).is_ok());
    assert!(
        matches!(pw(&"x".repeat(73)).check_rules(&name), Err(AuthError::WeakPassword(m)) if m.contains("72 bytes"))
    );
    // 72 bytes, not characters: 37 two-byte characters are too many.
    assert!(pw(&"é".repeat(37)).check_rules(&name).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_validates_and_refuses_taken_names() {
    let (_db, auth) = setup().await;
    let user = auth
        .register("Alice", &pw("correct horse"), Some("alice@example.com"))
        .await
        .unwrap();
    assert_eq!(user.username.as_str(), "alice");
    assert_eq!(
        user.email.as_ref().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    assert!(!user.is_staff);
    let stored = auth.store().credentials(&user.username).await.unwrap();
    assert!(
        stored.password_hash.starts_with("$2"),
        "bcrypt hash stored, never the password"
    );
    assert!(
        stored.password_hash.contains("$04$"),
        "the configured cost is used"
    );

    assert!(matches!(
        auth.register("ALICE", &pw("another pass"), None).await,
        Err(AuthError::UsernameTaken)
    ));
    assert!(matches!(
        auth.register("bob", &pw("bob"), None).await,
        Err(AuthError::WeakPassword(_))
    ));
    assert!(matches!(
        auth.register("bobby123", &pw("BOBBY123"), None).await,
        Err(AuthError::WeakPassword(_))
    ));
    assert!(matches!(
        auth.register("x", &pw("long enough"), None).await,
        Err(AuthError::Invalid(_))
    ));
    assert!(matches!(
        auth.register("carol", &pw("long enough"), Some("not-an-email"))
            .await,
        Err(AuthError::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_returns_the_simplejwt_shape_and_records_last_login() {
    let (_db, auth) = setup().await;
    let user = auth
        .register("alice", &pw("correct horse"), Some("a@example.com"))
        .await
        .unwrap();
    assert_eq!(user.last_login, None);
    let before = Timestamp::now();
    let resp = auth.login("Alice", &pw("correct horse")).await.unwrap();
    assert!(resp.user.last_login.unwrap() >= before);
    assert_eq!(
        auth.store().user_by_id(user.id).await.unwrap().last_login,
        resp.user.last_login
    );

    let json = serde_json::to_value(&resp).unwrap();
    let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["access", "refresh", "user"]);
    let mut user_keys: Vec<_> = json["user"].as_object().unwrap().keys().cloned().collect();
    user_keys.sort();
    assert_eq!(
        user_keys,
        [
            "display_name",
            "email",
            "id",
            "is_active",
            "is_guest",
            "is_staff",
            "joined_at",
            "last_login",
            "username"
        ]
    );
    assert_eq!(json["user"]["id"], user.id.get());
    assert_eq!(json["user"]["username"], "alice");

    let access = payload(&resp.access);
    assert_eq!(access["token_type"], "access");
    assert_eq!(access["sub"], user.id.to_string());
    assert_eq!(access["username"], "alice");
    assert_eq!(
        access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(),
        300
    );
    assert!(uuid_like(access["jti"].as_str().unwrap()));
    let refresh = payload(&resp.refresh);
    assert_eq!(refresh["token_type"], "refresh");
    assert_eq!(
        refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap(),
        86_400
    );
    assert_ne!(refresh["jti"], access["jti"]);
    assert_eq!(refresh["family"], access["family"]);

    let (claims, who) = auth.authenticate(&resp.access).await.unwrap();
    assert_eq!(who.id, user.id);
    assert_eq!(claims.user_id().unwrap(), user.id);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_get_an_access_token_and_nothing_to_keep() {
    let (_db, auth) = setup().await;
    let guest = auth.guest("Visitor").await.unwrap();
    assert!(guest.user.is_guest);
    assert!(!guest.user.is_staff);
    assert!(guest.user.username.as_str().starts_with("guest.visitor."));
    // The token authenticates the guest, and is an access token only.
    let (claims, user) = auth.authenticate(&guest.access).await.unwrap();
    assert_eq!(
        (claims.token_type, user.id),
        (TokenType::Access, guest.user.id)
    );
    assert!(matches!(
        auth.refresh(&guest.access).await,
        Err(AuthError::WrongTokenType { .. })
    ));
    // No password opens it, and the name cannot be registered.
    let name = guest.user.username.as_str();
    for password in ["!", "", "correct horse"] {
        assert!(matches!(
            auth.login(name, &pw(password)).await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        auth.register(name, &pw("correct horse"), None).await,
        Err(AuthError::Invalid(_))
    ));
    assert!(matches!(
        auth.register("guest.someone", &pw("correct horse"), None)
            .await,
        Err(AuthError::Invalid(_))
    ));
    // The same chosen name twice: two guests.
    let again = auth.guest("visitor").await.unwrap();
    assert_ne!(again.user.id, guest.user.id);
    for bad in ["a b", "ab", "9lives", &"x".repeat(21)] {
        assert!(
            matches!(auth.guest(bad).await, Err(AuthError::Invalid(_))),
            "{bad}"
        );
    }
    // Stale guests: none while their tokens live; once those expired, both (silent) go.
    assert_eq!(auth.prune_guests(Timestamp::now()).await.unwrap(), 0);
    let after_expiry = Timestamp::now().plus_seconds(config().access_ttl.as_secs() as i64 + 2);
    assert_eq!(auth.prune_guests(after_expiry).await.unwrap(), 2);
    assert!(matches!(
        auth.authenticate(&guest.access).await,
        Err(AuthError::UnknownUser)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_alike() {
    let (_db, auth) = setup().await;
    auth.register("alice", &pw("correct horse"), None)
        .await
        .unwrap();
    for (name, pass) in [
        ("alice", "wrong horse"),
        ("nobody", "correct horse"),
        ("!!", "correct horse"),
        ("alice", ""),
    ] {
        let err = auth.login(name, &pw(pass)).await.unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidCredentials),
            "{name}/{pass}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_longer_than_bcrypt_reads_never_logs_in() {
    let (_db, auth) = setup().await;
    // Exactly 72 bytes: the most bcrypt reads, and the most register accepts.
    let longest = "x".repeat(71) + "y";
    auth.register("alice", &pw(&longest), None).await.unwrap();
    auth.login("alice", &pw(&longest)).await.unwrap();
    // Anything after those 72 bytes would be ignored by bcrypt: refused instead.
    for suffix in ["z", "anything at all"] {
        let err = auth
            .login("alice", &pw(&format!("{longest}{suffix}")))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::InvalidCredentials), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let (_db, auth) = setup().await;
    let login = logged_in(&auth, "alice").await;
    let first = rotate(&auth, &login.refresh).await;
    assert_ne!(first.refresh, login.refresh);
    assert_eq!(
        payload(&first.refresh)["family"],
        payload(&login.refresh)["family"]
    );
    auth.authenticate(&first.access).await.unwrap();
    let second = rotate(&auth, &first.refresh).await;

    // The rotated-out token is dead...
    assert!(matches!(
        auth.refresh(&login.refresh).await,
        Err(AuthError::Revoked)
    ));
    // ...and presenting it took down the family, including the newest token.
    assert!(matches!(
        auth.refresh(&second.refresh).await,
        Err(AuthError::Revoked)
    ));
    // Another login is another family, unaffected.
    let other = auth.login("alice", &pw("correct horse")).await.unwrap();
    auth.refresh(&other.refresh).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_without_family_revocation_only_refuses_the_token() {
    let db = TestDb::sqlite().await.unwrap();
    let auth = Auth::new(
        db.store().clone(),
        &AuthConfig {
            revoke_family_on_reuse: false,
            ..config()
        },
    )
    .unwrap();
    let login = logged_in(&auth, "alice").await;
    let next = rotate(&auth, &login.refresh).await;
    assert!(matches!(
        auth.refresh(&login.refresh).await,
        Err(AuthError::Revoked)
    ));
    auth.refresh(&next.refresh).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_refresh_token() {
    let (_db, auth) = setup().await;
    let login = logged_in(&auth, "alice").await;
    let rotated = rotate(&auth, &login.refresh).await;
    auth.logout(&rotated.refresh).await.unwrap();
    assert!(matches!(
        auth.refresh(&rotated.refresh).await,
        Err(AuthError::Revoked)
    ));
    auth.logout(&rotated.refresh).await.unwrap();
    // Logout wants a refresh token.
    assert!(matches!(
        auth.logout(&rotated.access).await,
        Err(AuthError::WrongTokenType {
            expected: TokenType::Refresh
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_types_are_not_interchangeable() {
    let (_db, auth) = setup().await;
    let login = logged_in(&auth, "alice").await;
    assert!(matches!(
        auth.refresh(&login.access).await,
        Err(AuthError::WrongTokenType {
            expected: TokenType::Refresh
        })
    ));
    assert!(matches!(
        auth.verify_access(&login.refresh),
        Err(AuthError::WrongTokenType {
            expected: TokenType::Access
        })
    ));
    assert!(matches!(
        auth.authenticate(&login.refresh).await,
        Err(AuthError::WrongTokenType { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alg_none_is_rejected() {
    let (_db, auth) = setup().await;
    let login = logged_in(&auth, "alice").await;
    for token in [&login.access, &login.refresh] {
        let body = token.split('.').nth(1).unwrap();
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None","typ":"JWT"}"#,
        ] {
            let forged = format!("{}.{body}.", B64.encode(header));
            assert!(
                matches!(auth.verify_access(&forged), Err(AuthError::InvalidToken(_))),
                "{header}"
            );
            assert!(
                matches!(auth.refresh(&forged).await, Err(AuthError::InvalidToken(_))),
                "{header}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_with_another_key_or_algorithm_is_rejected() {
    let (_db, auth) = setup().await;
    let user = auth
        .register("alice", &pw("correct horse"), None)
        .await
        .unwrap();
    let other = TokenService::new(&AuthConfig::hs256(
        &b"a-completely-different-secret-32b!!"[..],
    ))
    .unwrap();
    let (pair, _) = other.issue(&user, None).unwrap();
    assert!(matches!(
        auth.verify_access(&pair.access),
        Err(AuthError::InvalidToken(_))
    ));
    assert!(matches!(
        auth.refresh(&pair.refresh).await,
        Err(AuthError::InvalidToken(_))
    ));

    // Same secret, another HMAC algorithm: refused (one algorithm is pinned).
    let claims = claims_for(user.id, TokenType::Access, now_secs() + 60);
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert!(matches!(
        auth.verify_access(&hs384),
        Err(AuthError::InvalidToken(_))
    ));
    assert!(matches!(
        auth.verify_access("not.a.jwt"),
        Err(AuthError::InvalidToken(_))
    ));
    assert!(matches!(
        auth.verify_access(""),
        Err(AuthError::InvalidToken(_))
    ));
}

fn claims_for(user: UserId, token_type: TokenType, exp: i64) -> Claims {
    Claims {
        jti: "6f1c2b0e-6a4e-4e59-9d6c-1f5e2f8c9a10".into(),
        sub: user.to_string(),
        exp,
        iat: exp - 300,
        token_type,
        username: "alice".into(),
        family: "fam".into(),
        epoch: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_rejected() {
    let (_db, auth) = setup().await;
    let user = auth
        .register("alice", &pw("correct horse"), None)
        .await
        .unwrap();
    let key = EncodingKey::from_secret(SECRET);
    let sign = |c: &Claims| jsonwebtoken::encode(&Header::new(Algorithm::HS256), c, &key).unwrap();
    let expired_access = sign(&claims_for(user.id, TokenType::Access, now_secs() - 5));
    let expired_refresh = sign(&claims_for(user.id, TokenType::Refresh, now_secs() - 5));
    assert!(matches!(
        auth.verify_access(&expired_access),
        Err(AuthError::Expired)
    ));
    assert!(matches!(
        auth.refresh(&expired_refresh).await,
        Err(AuthError::Expired)
    ));
    assert!(matches!(
        auth.logout(&expired_refresh).await,
        Err(AuthError::Expired)
    ));
    // The same claims, still valid, pass: it is the expiry that fails them.
    let fresh = sign(&claims_for(user.id, TokenType::Access, now_secs() + 60));
    assert_eq!(
        auth.verify_access(&fresh).unwrap().user_id().unwrap(),
        user.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_payloads_are_rejected() {
    let (_db, auth) = setup().await;
    let login = logged_in(&auth, "alice").await;
    let staff = auth
        .register("mallory", &pw("correct horse"), None)
        .await
        .unwrap();
    for token in [&login.access, &login.refresh] {
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims = payload(token);
        claims["sub"] = serde_json::Value::String(staff.id.to_string());
        claims["exp"] = serde_json::json!(now_secs() + 1_000_000);
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(claims.to_string()),
            parts[2]
        );
        assert!(matches!(
            auth.verify_access(&forged),
            Err(AuthError::InvalidToken(_))
        ));
        assert!(matches!(
            auth.refresh(&forged).await,
            Err(AuthError::InvalidToken(_))
        ));
        // A flipped signature byte fails too.
        let mut sig = B64.decode(parts[2]).unwrap();
        sig[0] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], B64.encode(sig));
        assert!(matches!(
            auth.verify_access(&flipped),
            Err(AuthError::InvalidToken(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_a_deleted_user_are_rejected() {
    let (_db, auth) = setup().await;
    let login = logged_in(&auth, "alice").await;
    auth.store().delete_user(login.user.id).await.unwrap();
    assert!(matches!(
        auth.authenticate(&login.access).await,
        Err(AuthError::UnknownUser)
    ));
    assert!(matches!(
        auth.refresh(&login.refresh).await,
        Err(AuthError::UnknownUser)
    ));
    // A new account with the same name does not inherit the old tokens (ids are not reused).
    auth.register("alice", &pw("correct horse"), None)
        .await
        .unwrap();
    assert!(matches!(
        auth.authenticate(&login.access).await,
        Err(AuthError::UnknownUser)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_eddsa_keys_work() {
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/");
    let read = |f: &str| std::fs::read(format!("{keys}{f}")).unwrap();
    for (key, alg) in [
        (
            SigningKey::Rs256 {
                private_pem: read("rsa_private.pem"),
                public_pem: read("rsa_public.pem"),
            },
            Algorithm::RS256,
        ),
        (
            SigningKey::EdDsa {
                private_pem: read("ed25519_private.pem"),
                public_pem: read("ed25519_public.pem"),
            },
            Algorithm::EdDSA,
        ),
    ] {
        let db = TestDb::sqlite().await.unwrap();
        let auth = Auth::new(
            db.store().clone(),
            &AuthConfig {
                bcrypt_cost: 4,
                ..AuthConfig::with_key(key)
            },
        )
        .unwrap();
        assert_eq!(auth.tokens().algorithm(), alg);
        let login = logged_in(&auth, "alice").await;
        auth.authenticate(&login.access).await.unwrap();
        let rotated = rotate(&auth, &login.refresh).await;
        auth.verify_access(&rotated.access).unwrap();
        // An HS256 service does not accept them, nor they an HS256 token.
        let hs = TokenService::new(&config()).unwrap();
        assert!(matches!(
            hs.verify(&login.access, TokenType::Access),
            Err(AuthError::InvalidToken(_))
        ));
        let (hs_pair, _) = hs.issue(&login.user, None).unwrap();
        assert!(matches!(
            auth.verify_access(&hs_pair.access),
            Err(AuthError::InvalidToken(_))
        ));
    }
    // Mismatched halves are caught at start-up.
    let mixed = SigningKey::EdDsa {
        private_pem: read("ed25519_private.pem"),
        public_pem: read("rsa_public.pem"),
    };
    assert!(matches!(
        TokenService::new(&AuthConfig::with_key(mixed)),
        Err(AuthError::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_refreshes_with_one_token_let_exactly_one_win_on_postgres() {
    let db = TestDb::postgres().await.unwrap();
    let auth = Auth::new(
        db.store().clone(),
        &AuthConfig {
            revoke_family_on_reuse: false,
            ..config()
        },
    )
    .unwrap();
    let login = logged_in(&auth, "alice").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let auth = auth.clone();
            let token = login.refresh.clone();
            tokio::spawn(async move { auth.refresh(&token).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(AuthError::Revoked) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_revocations_are_pruned() {
    let (_db, auth) = setup().await;
    let store = auth.store();
    store
        .revoke_token("old", Timestamp(Timestamp::now().millis() - 1))
        .await
        .unwrap();
    store
        .revoke_token("new", Timestamp::now().plus_seconds(60))
        .await
        .unwrap();
    assert_eq!(auth.prune_revocations().await.unwrap(), 1);
    assert!(store.is_revoked("new").await.unwrap());
}

/// A refresh with rotation on: the new pair.
async fn rotate(auth: &Auth, refresh: &str) -> parley_auth::TokenPair {
    let r = auth.refresh(refresh).await.unwrap();
    parley_auth::TokenPair {
        access: r.access,
        refresh: r.refresh.expect("rotation is on: a new refresh token"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rotation_refresh_answers_an_access_token_and_the_refresh_token_lives_on() {
    let db = TestDb::sqlite().await.unwrap();
    let auth = Auth::new(
        db.store().clone(),
        &AuthConfig {
            rotate_refresh: false,
            // simplejwt setups often give both tokens the same lifetime.
            access_ttl: std::time::Duration::from_secs(600),
            refresh_ttl: std::time::Duration::from_secs(600),
            ..config()
        },
    )
    .unwrap();
    let login = logged_in(&auth, "alice").await;
    for _ in 0..3 {
        let r = auth.refresh(&login.refresh).await.unwrap();
        assert_eq!(r.refresh, None);
        assert_eq!(
            payload(&r.access)["family"],
            payload(&login.refresh)["family"]
        );
        auth.authenticate(&r.access).await.unwrap();
    }
    // The answer has no `refresh` key at all, like simplejwt's.
    let r = auth.refresh(&login.refresh).await.unwrap();
    let keys: Vec<String> = serde_json::to_value(&r)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["access"]);
    auth.logout(&login.refresh).await.unwrap();
    assert!(matches!(
        auth.refresh(&login.refresh).await,
        Err(AuthError::Revoked)
    ));
}
