//! Transport settings: origins, CORS, body limits, WebSocket heartbeats.

use crate::TrustedProxies;
use parley_core::ConnectionConfig;

/// Settings of the HTTP and WebSocket transport. `Default` gives production-sensible values
/// that allow only same-origin browsers.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Origins (`scheme://host[:port]`) allowed to open the WebSocket besides the server's own
    /// origin. `"*"` allows any. Requests without an `Origin` header (non-browser clients)
    /// are always allowed: the origin check protects browsers from cross-site socket
    /// hijacking, it is not authentication.
    pub allowed_origins: Vec<String>,
    /// Origins allowed to call the REST API from a browser (CORS). Empty: no cross-origin
    /// access (same-origin pages need none). `"*"` allows any origin (without credentials;
    /// the API uses bearer tokens, not cookies).
    pub cors_origins: Vec<String>,
    /// Largest JSON request body, in bytes; larger ones are refused with 413 before they are
    /// read (from `Content-Length`, or as soon as the stream passes the limit).
    pub json_limit: usize,
    /// The chat socket's heartbeat: ping interval and timeout (a socket from which nothing,
    /// not even a pong, arrived within the timeout is closed with 4001).
    pub heartbeat: ConnectionConfig,
    /// Hard limit of one WebSocket frame (and of a message reassembled from continuation
    /// frames), in bytes. Frames between the engine's `max_frame_bytes` and this limit are
    /// answered with a `frame_too_large` error frame and the connection stays open; larger
    /// frames close it with 1009. `None`: four times the engine's limit.
    pub ws_hard_frame_limit: Option<usize>,
    /// Register, login and refresh requests per client address (`None`: unlimited). Beyond
    /// it: 429 with `Retry-After`.
    pub auth_rate: Option<parley_core::RateLimit>,
    /// Failed logins per account name (`None`: unlimited): the burst is how many wrong
    /// passwords are answered normally, the rate how fast the allowance comes back. Beyond
    /// it, logins for that name get 429 with `Retry-After` whatever the password. Addresses
    /// that never logged in to the account share one allowance; each address that recently
    /// did has its own, so strangers' guesses cannot lock the owner out.
    pub login_failure_rate: Option<parley_core::RateLimit>,
    /// New WebSocket connections per client address (`None`: unlimited), checked before
    /// the token. Beyond it: 429 with `Retry-After`. Off by default: many users behind one
    /// NAT reconnecting after a restart, and load generators, come from one address.
    pub ws_connect_rate: Option<parley_core::RateLimit>,
    /// Reverse proxies whose forwarding headers say who the client is (default: none). Every
    /// per-address limit and the access log use the client address this gives
    /// ([`TrustedProxies::client_ip`]); connections from a trusted proxy are not counted by
    /// the per-address connection cap of [`crate::serve`].
    pub trusted_proxies: TrustedProxies,
    /// Guests' WebSocket connections per client address (`None`: unlimited), on top of
    /// `ws_connect_rate` and checked once the socket is known to be a guest's (a token of a
    /// guest, or the tutorial endpoint's `?guest=`). Beyond it: 429 with `Retry-After`.
    pub guest_connect_rate: Option<parley_core::RateLimit>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            cors_origins: Vec::new(),
            json_limit: 64 * 1024,
            heartbeat: ConnectionConfig::default(),
            ws_hard_frame_limit: None,
            auth_rate: Some(parley_core::RateLimit::new(1.0, 20.0)),
            login_failure_rate: Some(parley_core::RateLimit::new(0.1, 10.0)),
            ws_connect_rate: None,
            trusted_proxies: TrustedProxies::default(),
            guest_connect_rate: Some(parley_core::RateLimit::new(0.2, 10.0)),
        }
    }
}

impl HttpConfig {
    /// Checks the settings, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.json_limit < 1024 {
            return Err("json_limit: must be at least 1024 bytes".to_owned());
        }
        self.heartbeat.validate()?;
        if let Some(rate) = self.auth_rate
            && !(rate.per_second > 0.0 && rate.burst >= 1.0)
        {
            return Err(
                "auth_rate/auth_burst: need a positive rate and a burst of at least 1".into(),
            );
        }
        if let Some(rate) = self.ws_connect_rate
            && !(rate.per_second > 0.0 && rate.burst >= 1.0)
        {
            return Err(
                "ws_connect_rate/ws_connect_burst: need a positive rate and a burst of at least 1"
                    .into(),
            );
        }
        if let Some(rate) = self.login_failure_rate
            && !(rate.per_second > 0.0 && rate.burst >= 1.0)
        {
            return Err(
                "login_failure_rate/login_failure_burst: need a positive rate and a burst of at least 1"
                    .into(),
            );
        }
        for origin in self.allowed_origins.iter().chain(&self.cors_origins) {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(format!(
                    "allowed_origins/cors_origins: {origin:?} is not an origin (want http(s)://host[:port] or \"*\")"
                ));
            }
        }
        Ok(())
    }

    /// The hard WebSocket frame limit for an engine accepting `engine_max` bytes.
    pub fn hard_frame_limit(&self, engine_max: usize) -> usize {
        self.ws_hard_frame_limit
            .unwrap_or_else(|| engine_max.saturating_mul(4))
            .max(engine_max)
    }

    /// Whether a browser page at `origin` may open the socket of a server reached as `host`
    /// (the request's `Host` header).
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/');
        if self
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
        {
            return true;
        }
        // Same origin: the origin's authority is the host the request was sent to.
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;

    #[test]
    fn same_origin_is_allowed_by_default_and_others_are_not() {
        let c = HttpConfig::default();
        assert!(c.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(c.origin_allowed("https://chat.example", Some("chat.example")));
        assert!(!c.origin_allowed("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!c.origin_allowed("null", Some("127.0.0.1:8080")));
        assert!(!c.origin_allowed("http://127.0.0.1:8080", None));
    }

    #[test]
    fn listed_and_wildcard_origins_are_allowed() {
        let c = HttpConfig {
            allowed_origins: vec!["http://app.example:3000".into()],
            ..HttpConfig::default()
        };
        assert!(c.origin_allowed("http://app.example:3000", Some("api.example")));
        assert!(!c.origin_allowed("http://app.example:3001", Some("api.example")));
        let any = HttpConfig {
            allowed_origins: vec!["*".into()],
            ..HttpConfig::default()
        };
        assert!(any.origin_allowed("http://whatever", Some("x")));
    }

    #[test]
    fn validation_names_the_setting() {
        let bad = HttpConfig {
            heartbeat: ConnectionConfig {
                ping_timeout: std::time::Duration::from_secs(1),
                ping_interval: std::time::Duration::from_secs(5),
            },
            ..HttpConfig::default()
        };
        assert!(bad.validate().unwrap_err().starts_with("ws_ping_timeout"));
        let bad = HttpConfig {
            cors_origins: vec!["example.com".into()],
            ..HttpConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("example.com"));
    }
}
