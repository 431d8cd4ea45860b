//! Per-address limits on the account endpoints (register, login, refresh), against password
//! guessing and sign-up floods.

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
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for the request's address; 429 with `Retry-After` when there is none.
    pub(crate) fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let (Some(limit), Some(peer)) = (self.limit, req.peer_addr()) else {
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
            tracing::warn!(client = %peer.ip(), "account endpoint rate limit hit");
            ApiError::RateLimited {
                message: "too many account requests from this address; slow down".into(),
                retry_after: wait,
            }
        })
    }
}
