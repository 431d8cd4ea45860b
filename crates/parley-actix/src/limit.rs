//! Per-address limits on the account endpoints (register, login, refresh), against password
//! guessing and sign-up floods, and a per-account limit on failed logins, against guessing
//! spread over many addresses.

use crate::error::ApiError;
use actix_web::HttpRequest;
use parley_core::RateLimit;
use parley_core::rate::TokenBucket;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Token buckets per client address. The address is the TCP peer: behind a reverse proxy
/// every client shares the proxy's bucket, so raise the limit there (or disable it and limit
/// at the proxy).
pub(crate) struct AuthLimiter {
    /// `None`: no limit.
    limit: Option<RateLimit>,
    /// What a refused client is told.
    message: &'static str,
    /// One bucket per address seen recently.
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

/// Past this many addresses the table is cleared (bounded memory; a flood from many
/// addresses gets a fresh allowance at most once per this many new addresses).
const MAX_TRACKED: usize = 100_000;

impl AuthLimiter {
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limit,
            message: "too many account requests from this address; slow down",
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The same per-address buckets for WebSocket handshakes (new connections per address).
    pub(crate) fn sockets(limit: Option<RateLimit>) -> Self {
        Self {
            message: "too many new connections from this address; slow down",
            ..Self::new(limit)
        }
    }

    /// Takes a token for the request's address; 429 with `Retry-After` when there is none.
    pub(crate) fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.check_peer(req.peer_addr())
    }

    /// [`AuthLimiter::check`] for a peer address (unknown peers are not limited).
    pub(crate) fn check_peer(&self, peer: Option<std::net::SocketAddr>) -> Result<(), ApiError> {
        let (Some(limit), Some(peer)) = (self.limit, peer) else {
            return Ok(());
        };
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&peer.ip()) {
            buckets.clear();
        }
        let bucket = buckets
            .entry(peer.ip())
            .or_insert_with(|| TokenBucket::new(limit));
        bucket.try_take().map_err(|wait| {
            tracing::warn!(client = %peer.ip(), limit = self.message, "per-address rate limit hit");
            ApiError::RateLimited {
                message: self.message.into(),
                retry_after: wait,
            }
        })
    }
}

/// Failed logins per account name. Each wrong password takes a token; with none left, the
/// name's logins are refused (429 with `Retry-After`) before any password is checked, right
/// or wrong, until the bucket refills. A guesser spread over many addresses (which the
/// per-address limit cannot see) is slowed to the refill rate, and the real user waits at
/// most one refill interval: never locked out for good. Unknown names get buckets too, so a
/// 429 says nothing about whether an account exists.
pub(crate) struct AccountLimiter {
    /// `None`: no limit.
    limit: Option<RateLimit>,
    /// One bucket per recently failed name (lower-cased, as user names are).
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

/// Longest name kept as a key (longer ones cannot be accounts anyway; bounded memory).
const MAX_KEY: usize = 64;

impl AccountLimiter {
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn key(username: &str) -> String {
        username
            .chars()
            .take(MAX_KEY)
            .collect::<String>()
            .to_lowercase()
    }

    /// Refuses a login for `username` when its failure allowance is spent (takes nothing).
    pub(crate) fn check(&self, username: &str) -> Result<(), ApiError> {
        if self.limit.is_none() {
            return Ok(());
        }
        let buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(bucket) = buckets.get(&Self::key(username)) else {
            return Ok(());
        };
        // A copy answers "is a token there?" without spending it.
        bucket.clone().try_take().map_err(|wait| {
            tracing::warn!("login attempts for one account over the failure limit");
            ApiError::RateLimited {
                message: "too many failed logins for this account; wait and retry".into(),
                retry_after: wait,
            }
        })
    }

    /// Records a failed login for `username`.
    pub(crate) fn failed(&self, username: &str) {
        let Some(limit) = self.limit else {
            return;
        };
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = Self::key(username);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            buckets.clear();
        }
        let _ = buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(limit))
            .try_take();
    }
}
