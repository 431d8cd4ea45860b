//! Signing in with an external OpenID Connect ID token (e.g. Google): the token is verified
//! against the provider's configured keys (a JWKS document), issuer and audience, and the
//! provider's `(iss, sub)` names one Parley account, created on first sign-in.

use crate::error::{AuthError, Result};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// One trusted OpenID Connect provider.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The exact `iss` its ID tokens carry (e.g. `https://accounts.google.com`).
    pub issuer: String,
    /// Accepted `aud` values: this application's client ids at the provider.
    pub audiences: Vec<String>,
    /// The provider's public keys, as its JWKS document (`jwks_uri`), fetched by the
    /// deployment; key rotation means refreshing this document.
    pub jwks_json: String,
}

/// The claims Parley reads from an ID token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OidcIdentity {
    /// The provider (`iss`).
    pub iss: String,
    /// The user's stable id at the provider (`sub`).
    pub sub: String,
    /// Their email, if shared.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether the provider verified that email (a boolean, or the strings `"true"` and
    /// `"false"` some providers send).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub email_verified: Option<bool>,
    /// A handle they prefer, if the provider sends one.
    #[serde(default)]
    pub preferred_username: Option<String>,
    /// Their full name (`name`), if shared: the display name of an account the sign-in
    /// creates (cut to [`parley_domain::DisplayName::MAX_CHARS`]; dropped if unusable).
    #[serde(default)]
    pub name: Option<String>,
    /// The `nonce` of the sign-in that asked for the token (the browser flow checks it).
    #[serde(default)]
    pub nonce: Option<String>,
}

fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrText {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<BoolOrText>::deserialize(d)? {
        Some(BoolOrText::Bool(b)) => Some(b),
        Some(BoolOrText::Text(t)) => match t.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        None => None,
    })
}

/// Verifies ID tokens of one provider.
#[derive(Clone)]
pub struct OidcVerifier {
    /// Expected `iss`.
    issuer: String,
    /// Accepted `aud` values.
    audiences: Vec<String>,
    /// (key id, key, the algorithm that key signs with).
    keys: Vec<(Option<String>, DecodingKey, Algorithm)>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field(
                "keys",
                &self
                    .keys
                    .iter()
                    .map(|(kid, _, alg)| (kid, alg))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl OidcVerifier {
    /// Reads the provider's keys. `Config` for an unreadable JWKS, no usable signing key, an
    /// empty issuer or no audience. Symmetric (`oct`) keys are refused: a provider's keys are
    /// public.
    pub fn new(config: &OidcConfig) -> Result<Self> {
        if config.issuer.is_empty() || config.audiences.is_empty() {
            return Err(AuthError::Config(
                "an OIDC provider needs an issuer and at least one audience".to_owned(),
            ));
        }
        let set: JwkSet = serde_json::from_str(&config.jwks_json)
            .map_err(|e| AuthError::Config(format!("OIDC JWKS is not valid: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let default_alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                // Shared secrets and unknown kinds have no place in a public key set.
                _ => continue,
            };
            let alg = match jwk.common.key_algorithm {
                Some(ka) => match Algorithm::try_from(ka) {
                    Ok(alg) => alg,
                    Err(_) => continue,
                },
                None => default_alg,
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| AuthError::Config(format!("OIDC key: {e}")))?;
            keys.push((jwk.common.key_id.clone(), key, alg));
        }
        if keys.is_empty() {
            return Err(AuthError::Config(
                "the OIDC JWKS has no usable signing key".to_owned(),
            ));
        }
        Ok(Self {
            issuer: config.issuer.clone(),
            audiences: config.audiences.clone(),
            keys,
        })
    }

    /// The provider's issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// False when `id_token` names a key (`kid`) this set does not hold: the provider may
    /// have rotated its keys since they were read. True for an unreadable header (the
    /// verification will say what is wrong) and for a token naming no key.
    pub fn knows_key_of(&self, id_token: &str) -> bool {
        match jsonwebtoken::decode_header(id_token) {
            Ok(header) => match &header.kid {
                Some(kid) => self
                    .keys
                    .iter()
                    .any(|(k, _, _)| k.as_deref() == Some(kid.as_str())),
                None => true,
            },
            Err(_) => true,
        }
    }

    /// Verifies an ID token: a key of the set (by `kid`, or the only key) and its algorithm,
    /// the signature, `iss`, `aud`, `exp`. `Expired` or `InvalidToken` otherwise.
    pub fn verify(&self, id_token: &str) -> Result<OidcIdentity> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| AuthError::InvalidToken(format!("ID token: {e}")))?;
        let (_, key, alg) = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(k, _, _)| k.as_deref() == Some(kid.as_str())),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
        .ok_or_else(|| AuthError::InvalidToken("ID token signed with an unknown key".to_owned()))?;
        let mut validation = Validation::new(*alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<OidcIdentity>(id_token, key, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::InvalidToken(format!("ID token: {e}")),
            },
        )?;
        Ok(data.claims)
    }
}

/// A valid Parley user name derived from what the provider tells (preferred handle, else the
/// email's local part, else "user"): lower-case, allowed characters only, starting with a
/// letter, 3 to 28 characters (room for a `-NN` suffix on collision).
pub(crate) fn username_base(identity: &OidcIdentity) -> String {
    let raw = identity
        .preferred_username
        .as_deref()
        .or_else(|| identity.email.as_deref().and_then(|e| e.split('@').next()))
        .unwrap_or("user");
    let mut name: String = raw
        .chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')).then_some(c)
        })
        .take(28)
        .collect();
    // A leading digit or symbol, and the reserved prefixes (guests', deleted accounts'), get a
    // `u` in front.
    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || name.starts_with(parley_domain::UserName::GUEST_PREFIX)
        || name.starts_with(parley_domain::UserName::DELETED_PREFIX)
    {
        name.insert(0, 'u');
        name.truncate(28);
    }
    while name.len() < 3 {
        name.push('_');
    }
    name
}
