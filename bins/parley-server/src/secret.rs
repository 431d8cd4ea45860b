//! The development signing secret: generated once, kept in a file only its owner can read.

use crate::error::{Result, ServerError};
use rand::RngCore;
use std::io::Write;
use std::path::Path;

/// Reads the development secret from `path`, generating it (64 random bytes, hex) on first
/// use. Warns loudly either way: a production server sets `PARLEY_SECRET` or keys.
pub fn development_secret(path: &Path) -> Result<Vec<u8>> {
    let bad =
        |e: std::io::Error| ServerError::Config(format!("secret_file: {}: {e}", path.display()));
    let secret = match std::fs::read_to_string(path) {
        Ok(s) => {
            let s = s.trim().to_owned();
            if s.len() < parley_auth::AuthConfig::MIN_SECRET_BYTES {
                return Err(ServerError::Config(format!(
                    "secret_file: {} holds fewer than 32 bytes; delete it to generate a new one",
                    path.display()
                )));
            }
            s
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 64];
            rand::rng().fill_bytes(&mut bytes);
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(path).map_err(bad)?;
            file.write_all(hex.as_bytes()).map_err(bad)?;
            file.write_all(b"\n").map_err(bad)?;
            hex
        }
        Err(e) => return Err(bad(e)),
    };
    tracing::warn!(
        file = %path.display(),
        "!!! USING A DEVELOPMENT SECRET to sign tokens (generated once and kept in this file). \
         Anyone who can read it can log in as anyone. In production set PARLEY_SECRET (32+ bytes) \
         or jwt_algorithm with key files. !!!"
    );
    Ok(secret.into_bytes())
}
