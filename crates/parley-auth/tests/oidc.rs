//! Sign-in with an external OpenID Connect ID token, against the test RSA key published as a
//! JWKS (`tests/keys/jwks.json`, kid `test-rsa`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parley_auth::{Auth, AuthConfig, AuthError, OidcConfig, OidcVerifier, Password};
use parley_domain::Timestamp;
use parley_store::testing::TestDb;
use serde_json::{Value, json};

const ISS: &str = "https://accounts.example.com";
const AUD: &str = "parley-client-id";

fn keys(file: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn verifier() -> OidcVerifier {
    OidcVerifier::new(&OidcConfig {
        issuer: ISS.into(),
        audiences: vec![AUD.into()],
        jwks_json: String::from_utf8(keys("jwks.json")).unwrap(),
    })
    .unwrap()
}

fn now() -> i64 {
    Timestamp::now().millis() / 1000
}

fn claims(sub: &str) -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": sub, "iat": now(), "exp": now() + 600,
        "email": "Gina.Lopez@example.com", "email_verified": true,
    })
}

fn sign(claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&keys("rsa_private.pem")).unwrap(),
    )
    .unwrap()
}

async fn setup() -> (TestDb, Auth) {
    let db = TestDb::sqlite().await.unwrap();
    let auth = Auth::new(
        db.store().clone(),
        &AuthConfig {
            bcrypt_cost: 4,
            ..AuthConfig::hs256([9u8; 32].to_vec())
        },
    )
    .unwrap();
    (db, auth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sign_in_creates_the_account_and_later_ones_find_it() {
    let (_db, auth) = setup().await;
    let v = verifier();
    let first = auth
        .login_with_id_token(&v, &sign(&claims("google-123"), Some("test-rsa")))
        .await
        .unwrap();
    assert_eq!(first.user.username.as_str(), "gina.lopez");
    assert_eq!(
        first.user.email.as_ref().map(|e| e.as_str()),
        Some("Gina.Lopez@example.com")
    );
    assert!(first.user.last_login.is_some());
    auth.authenticate(&first.access).await.unwrap();
    auth.refresh(&first.refresh).await.unwrap();

    let again = auth
        .login_with_id_token(&v, &sign(&claims("google-123"), Some("test-rsa")))
        .await
        .unwrap();
    assert_eq!(again.user.id, first.user.id);

    // Another person with the same email handle gets a suffixed name and no unverified email.
    let mut other = claims("google-456");
    other["email_verified"] = json!(false);
    let second = auth
        .login_with_id_token(&v, &sign(&other, Some("test-rsa")))
        .await
        .unwrap();
    assert_ne!(second.user.id, first.user.id);
    assert_eq!(second.user.username.as_str(), "gina.lopez-2");
    assert_eq!(second.user.email, None);

    // An externally created account has no password to log in with.
    for pass in ["!", "parley-dummy-password", ""] {
        assert!(matches!(
            auth.login("gina.lopez", &Password::new(pass)).await,
            Err(AuthError::InvalidCredentials)
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_id_tokens_are_rejected() {
    let (_db, auth) = setup().await;
    let v = verifier();
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "wrong audience",
            {
                let mut c = claims("s");
                c["aud"] = json!("someone-else");
                c
            },
            Some("test-rsa"),
        ),
        (
            "wrong issuer",
            {
                let mut c = claims("s");
                c["iss"] = json!("https://evil.example");
                c
            },
            Some("test-rsa"),
        ),
        ("unknown key id", claims("s"), Some("other-key")),
        (
            "no subject",
            {
                let mut c = claims("s");
                c.as_object_mut().unwrap().remove("sub");
                c
            },
            Some("test-rsa"),
        ),
    ];
    for (what, c, kid) in cases {
        let err = auth
            .login_with_id_token(&v, &sign(&c, kid))
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::InvalidToken(_)), "{what}: {err:?}");
    }
    let mut expired = claims("s");
    expired["exp"] = json!(now() - 120);
    expired["iat"] = json!(now() - 720);
    let err = auth
        .login_with_id_token(&v, &sign(&expired, Some("test-rsa")))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Expired), "{err:?}");

    // The only key may be picked without a kid; a forged HS256 token using the public key's
    // bytes as a secret (the classic algorithm confusion) is refused.
    auth.login_with_id_token(&v, &sign(&claims("s-no-kid"), None))
        .await
        .unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-rsa".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims("s"),
        &EncodingKey::from_secret(&keys("rsa_public.pem")),
    )
    .unwrap();
    assert!(matches!(
        auth.login_with_id_token(&v, &confused).await,
        Err(AuthError::InvalidToken(_))
    ));
    // Nothing was created by the failures.
    assert!(
        auth.store()
            .user_by_external(ISS, "s")
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn provider_configuration_is_checked() {
    let bad = |issuer: &str, audiences: Vec<String>, jwks: &str| {
        OidcVerifier::new(&OidcConfig {
            issuer: issuer.into(),
            audiences,
            jwks_json: jwks.into(),
        })
    };
    let jwks = String::from_utf8(keys("jwks.json")).unwrap();
    assert!(matches!(
        bad("", vec![AUD.into()], &jwks),
        Err(AuthError::Config(_))
    ));
    assert!(matches!(bad(ISS, vec![], &jwks), Err(AuthError::Config(_))));
    assert!(matches!(
        bad(ISS, vec![AUD.into()], "not json"),
        Err(AuthError::Config(_))
    ));
    // A shared secret is not a provider key.
    let oct = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x"}]}"#;
    assert!(matches!(
        bad(ISS, vec![AUD.into()], oct),
        Err(AuthError::Config(_))
    ));
    assert_eq!(verifier().issuer(), ISS);
}
