//! Fernet tokens (AES-128-CBC + HMAC-SHA256, base64url), as the Python `cryptography`
//! package makes them, and `MultiFernet` over several keys — what channels_redis uses for
//! `symmetric_encryption_keys`.
//!
//! channels_redis derives each Fernet key from a configured key as
//! `urlsafe_b64encode(sha256(key))`: the 32 digest bytes are the Fernet key, whose first half
//! signs and second half encrypts. Tokens are `0x80 | timestamp (u64 BE) | IV | ciphertext |
//! HMAC`, base64url with padding. Decryption checks the HMAC in constant time, then the age
//! against a time-to-live (channels_redis passes `expiry + 10` seconds) and refuses tokens
//! from more than 60 s in the future, as `cryptography` does.

use aes::Aes128;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 0x80;
const MAX_CLOCK_SKEW: u64 = 60;
/// Version, timestamp and IV.
const HEADER_LEN: usize = 1 + 8 + 16;
const MAC_LEN: usize = 32;

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// Not base64, too short, wrong version, bad padding, or no key's HMAC matches.
    Invalid,
    /// Authentic but older than the time-to-live (or from the future).
    Expired,
}

/// One Fernet key.
#[derive(Clone)]
struct FernetKey {
    signing: [u8; 16],
    encryption: [u8; 16],
}

impl FernetKey {
    /// The key channels_redis derives from a configured key: SHA-256 of its bytes.
    fn derive(configured: &[u8]) -> Self {
        let digest = Sha256::digest(configured);
        let mut signing = [0u8; 16];
        let mut encryption = [0u8; 16];
        signing.copy_from_slice(&digest[..16]);
        encryption.copy_from_slice(&digest[16..]);
        Self {
            signing,
            encryption,
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length: this cannot fail.
        match <HmacSha256 as Mac>::new_from_slice(&self.signing) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts any key length"),
        }
    }

    fn encrypt_at(&self, plaintext: &[u8], now: u64, iv: [u8; 16]) -> Vec<u8> {
        let ciphertext = cbc::Encryptor::<Aes128>::new(&self.encryption.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        let mut raw = Vec::with_capacity(HEADER_LEN + ciphertext.len() + MAC_LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&now.to_be_bytes());
        raw.extend_from_slice(&iv);
        raw.extend_from_slice(&ciphertext);
        let mut mac = self.mac();
        mac.update(&raw);
        raw.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE.encode(raw).into_bytes()
    }

    /// Checks the HMAC, then the age, then decrypts `raw` (already base64-decoded).
    fn decrypt_raw(&self, raw: &[u8], ttl: Option<u64>, now: u64) -> Result<Vec<u8>, TokenError> {
        let (signed, tag) = raw.split_at(raw.len() - MAC_LEN);
        let mut mac = self.mac();
        mac.update(signed);
        mac.verify_slice(tag).map_err(|_| TokenError::Invalid)?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[1..9]);
        let timestamp = u64::from_be_bytes(ts);
        if let Some(ttl) = ttl
            && timestamp.saturating_add(ttl) < now
        {
            return Err(TokenError::Expired);
        }
        if now.saturating_add(MAX_CLOCK_SKEW) < timestamp {
            return Err(TokenError::Expired);
        }
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&raw[9..HEADER_LEN]);
        cbc::Decryptor::<Aes128>::new(&self.encryption.into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&signed[HEADER_LEN..])
            .map_err(|_| TokenError::Invalid)
    }
}

/// Several Fernet keys: encrypts with the first, decrypts with any (key rotation), like
/// `cryptography`'s `MultiFernet`.
#[derive(Clone)]
pub(crate) struct MultiFernet {
    keys: Vec<FernetKey>,
}

impl MultiFernet {
    /// Keys derived as channels_redis derives them. `None` when `configured` is empty.
    pub(crate) fn from_configured_keys<K: AsRef<[u8]>>(configured: &[K]) -> Option<Self> {
        if configured.is_empty() {
            return None;
        }
        Some(Self {
            keys: configured
                .iter()
                .map(|k| FernetKey::derive(k.as_ref()))
                .collect(),
        })
    }

    /// A token for `plaintext`, made now with a random IV.
    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let iv: [u8; 16] = rand::random();
        // `keys` is never empty (see the constructor).
        match self.keys.first() {
            Some(key) => key.encrypt_at(plaintext, unix_now(), iv),
            None => plaintext.to_vec(),
        }
    }

    /// The plaintext of `token`, if one of the keys made it within `ttl` seconds.
    pub(crate) fn decrypt(&self, token: &[u8], ttl: Option<u64>) -> Result<Vec<u8>, TokenError> {
        self.decrypt_at(token, ttl, unix_now())
    }

    fn decrypt_at(&self, token: &[u8], ttl: Option<u64>, now: u64) -> Result<Vec<u8>, TokenError> {
        let raw = URL_SAFE.decode(token).map_err(|_| TokenError::Invalid)?;
        if raw.len() < HEADER_LEN + 16 + MAC_LEN || raw[0] != VERSION {
            return Err(TokenError::Invalid);
        }
        let mut last = TokenError::Invalid;
        for key in &self.keys {
            match key.decrypt_raw(&raw, ttl, now) {
                Ok(plain) => return Ok(plain),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encryption round-trips, any configured key decrypts, wrong keys and old tokens are refused.
    #[test]
    fn round_trip_rotation_and_expiry() {
        let a = MultiFernet::from_configured_keys(&["key-a"]).unwrap();
        let ab = MultiFernet::from_configured_keys(&["key-b", "key-a"]).unwrap();
        let b = MultiFernet::from_configured_keys(&["key-b"]).unwrap();
        let token = a.encrypt(b"hello");
        assert_eq!(a.decrypt(&token, Some(70)).unwrap(), b"hello");
        assert_eq!(ab.decrypt(&token, Some(70)).unwrap(), b"hello");
        assert_eq!(b.decrypt(&token, Some(70)), Err(TokenError::Invalid));
        let now = unix_now();
        assert_eq!(
            a.decrypt_at(&token, Some(70), now + 71),
            Err(TokenError::Expired)
        );
        assert_eq!(a.decrypt_at(&token, None, now + 71).unwrap(), b"hello");
        assert!(MultiFernet::from_configured_keys::<&str>(&[]).is_none());
    }

    /// The layout `cryptography` produces: a fixed IV and time give a known token.
    #[test]
    fn matches_the_python_token_layout() {
        // Python: k = base64.urlsafe_b64encode(hashlib.sha256(b"secret").digest());
        // Fernet(k)._encrypt_from_parts(b"hi", 1_700_000_000, bytes(range(16)))
        let f = MultiFernet::from_configured_keys(&["secret"]).unwrap();
        let token = f.keys[0].encrypt_at(b"hi", 1_700_000_000, std::array::from_fn(|i| i as u8));
        let token = String::from_utf8(token).unwrap();
        assert_eq!(token, PYTHON_TOKEN);
        assert_eq!(
            f.decrypt_at(PYTHON_TOKEN.as_bytes(), None, 1_700_000_001)
                .unwrap(),
            b"hi"
        );
    }

    const PYTHON_TOKEN: &str = "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD929CYbXX6KT0bClVKKI2RvMnTj3ulxO5H0iNGIOp7v-Ycouav0TF686jKBHNbotqw==";
}
