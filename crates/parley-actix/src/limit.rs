//! Per-address limits on the account endpoints (register, login, refresh), against password
//! guessing and sign-up floods, and a per-account limit on failed logins, against guessing
//! spread over many addresses, that spares the addresses the account's owner logs in from.

use crate::error::ApiError;
use parley_core::RateLimit;
use parley_core::rate::TokenBucket;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Token buckets per client address ([`crate::AppState::client_ip`]: the TCP peer, or the
/// address a trusted reverse proxy forwarded), IPv6 grouped by /64 as every per-address rule
/// is ([`crate::conn_limit::address_key`]).
pub(crate) struct AuthLimiter {
    /// `None`: no limit.
    limit: Option<RateLimit>,
    /// What a refused client is told.
    message: &'static str,
    /// The `limit` label of `parley_http_rate_limited_total`.
    kind: &'static str,
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
            kind: "account_requests",
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The same per-address buckets for WebSocket handshakes (new connections per address).
    pub(crate) fn sockets(limit: Option<RateLimit>) -> Self {
        Self {
            message: "too many new connections from this address; slow down",
            kind: "new_sockets",
            ..Self::new(limit)
        }
    }

    /// Takes a token for the client address `client` ([`crate::AppState::client_ip`]); 429
    /// with `Retry-After` when there is none. Unknown clients are not limited.
    pub(crate) fn check(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let (Some(limit), Some(client)) = (self.limit, client) else {
            return Ok(());
        };
        let peer = crate::conn_limit::address_key(client);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&peer) {
            buckets.clear();
        }
        let bucket = buckets
            .entry(peer)
            .or_insert_with(|| TokenBucket::new(limit));
        bucket.try_take().map_err(|wait| {
            metrics::counter!("parley_http_rate_limited_total", "limit" => self.kind).increment(1);
            tracing::warn!(%client, limit = self.message, "per-address rate limit hit");
            ApiError::RateLimited {
                message: self.message.into(),
                retry_after: wait,
            }
        })
    }
}

/// Failed logins per account name, kept apart for the addresses its owner uses.
///
/// Each account name has a failure allowance (`login_failure_rate`/`burst`) shared by every
/// address that has not logged in to it: each wrong password from such an address takes a
/// token, and with none left their logins for that name are refused (429 with `Retry-After`)
/// before any password is checked, right or wrong, until it refills. A guesser spread over
/// many addresses (which the per-address limit cannot see) is slowed to the refill rate.
///
/// That shared allowance alone let anyone lock the owner out with one wrong password every
/// few seconds. So each account also remembers the last [`KNOWN_PER_ACCOUNT`] addresses
/// (IPv4 address or IPv6 /64) that logged in to it successfully within [`KNOWN_FOR`], each
/// with an allowance of its own: logins from there are checked whatever strangers did, and
/// only their own wrong passwords spend it. Strangers cannot add an address to the set
/// (that takes the password), so a guesser gains nothing from it; an owner on a new address
/// waits for the shared allowance like everyone else.
///
/// A login counts against its allowance from the moment its password check begins
/// ([`AccountLimiter::begin`]): an allowance admits only as many logins at once as it has
/// tokens. Checking the tokens alone let a flood through whole: each password check takes a
/// bcrypt hash (≈ 0.25 s of a core at the default cost), a failure is recorded only when it
/// ends, so wrong passwords arriving faster than the hashes finish all found the allowance
/// full, and 20 a second from many addresses kept every core hashing.
///
/// Unknown names get allowances too, so a 429 says nothing about whether an account exists.
/// Everything is in memory, per process: a restart forgets it.
pub(crate) struct AccountLimiter {
    /// `None`: no limit.
    limit: Option<RateLimit>,
    /// The allowances, behind one lock (held for a map lookup, never across an await).
    accounts: Mutex<Accounts>,
}

/// What [`AccountLimiter`] keeps.
#[derive(Default)]
struct Accounts {
    /// Per account name (see [`AccountLimiter::key`]): the failure allowance shared by the
    /// addresses that have not logged in to it.
    strangers: HashMap<String, TokenBucket>,
    /// Per account name: the addresses that logged in to it recently, most recent first.
    known: HashMap<String, Vec<KnownAddress>>,
    /// Per account name: logins from strangers whose password check is under way (removed
    /// at zero).
    strangers_pending: HashMap<String, u32>,
}

/// An address that logged in to an account.
struct KnownAddress {
    /// The IPv4 address or IPv6 /64 ([`crate::conn_limit::address_key`]).
    addr: IpAddr,
    /// Its last successful login to the account; forgotten [`KNOWN_FOR`] after it.
    last_login: Instant,
    /// Its own failure allowance for the account.
    failures: TokenBucket,
    /// Its logins whose password check is under way.
    pending: u32,
}

/// Whether `bucket` has a token for one more login beside the `pending` ones under way.
fn admits(bucket: &TokenBucket, pending: u32) -> Result<(), Duration> {
    // A copy answers without spending; `pending` is at most the burst, so this is short.
    let mut probe = bucket.clone();
    for _ in 0..=pending {
        probe.try_take()?;
    }
    Ok(())
}

/// A login whose password check is under way, counted against the allowance it drew on
/// until it ends: [`LoginAttempt::failed`], [`LoginAttempt::succeeded`], or dropped (an
/// error other than a wrong password, or a cancelled request: nothing is spent).
pub(crate) struct LoginAttempt {
    limiter: std::sync::Arc<AccountLimiter>,
    username: String,
    peer: Option<IpAddr>,
    /// False when there is no limit (nothing was counted).
    counted: bool,
}

impl LoginAttempt {
    /// The password was wrong: a token of the allowance is spent.
    pub(crate) fn failed(mut self) {
        self.release();
        self.limiter.failed(&self.username, self.peer);
    }

    /// The login succeeded: nothing is spent, and the address becomes a known one.
    pub(crate) fn succeeded(mut self) {
        self.release();
        self.limiter.succeeded(&self.username, self.peer);
    }

    fn release(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.limiter.end(&self.username, self.peer);
        }
    }
}

impl Drop for LoginAttempt {
    fn drop(&mut self) {
        self.release();
    }
}

/// Longest name kept as a key (longer ones cannot be accounts anyway; bounded memory).
const MAX_KEY: usize = 64;
/// Addresses remembered per account (a phone, a laptop, home, work...); the least recently
/// used one makes way for a new one.
pub(crate) const KNOWN_PER_ACCOUNT: usize = 8;
/// How long an address stays known after its last successful login.
pub(crate) const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

/// The refusal of a login whose allowance is spent.
fn too_many_failures(wait: Duration) -> ApiError {
    metrics::counter!("parley_http_rate_limited_total", "limit" => "failed_logins").increment(1);
    ApiError::RateLimited {
        message: "too many failed logins for this account; wait and retry".into(),
        retry_after: wait,
    }
}

impl AccountLimiter {
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limit,
            accounts: Mutex::new(Accounts::default()),
        }
    }

    fn key(username: &str) -> String {
        username
            .chars()
            .take(MAX_KEY)
            .collect::<String>()
            .to_lowercase()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses a login for `username` from `peer` (the client's address, `None` if unknown)
    /// when the allowance that address draws on is spent (takes nothing, counts nothing).
    #[cfg(test)]
    pub(crate) fn check(&self, username: &str, peer: Option<IpAddr>) -> Result<(), ApiError> {
        if self.limit.is_none() {
            return Ok(());
        }
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let key = Self::key(username);
        let mut accounts = self.lock();
        Self::admit(limit, &mut accounts, &key, peer, false)
    }

    /// [`AccountLimiter::check`], and when admitted the login counts against its allowance
    /// until the returned attempt ends.
    pub(crate) fn begin(
        self: &std::sync::Arc<Self>,
        username: &str,
        peer: Option<IpAddr>,
    ) -> Result<LoginAttempt, ApiError> {
        let counted = self.limit.is_some();
        if let Some(limit) = self.limit {
            let key = Self::key(username);
            let mut accounts = self.lock();
            Self::admit(limit, &mut accounts, &key, peer, true)?;
        }
        Ok(LoginAttempt {
            limiter: self.clone(),
            username: username.to_owned(),
            peer,
            counted,
        })
    }

    /// Is there a token for one more login of `key` from `peer`, beside those under way?
    /// With `count`, the login is then counted as under way.
    fn admit(
        limit: RateLimit,
        accounts: &mut Accounts,
        key: &str,
        peer: Option<IpAddr>,
        count: bool,
    ) -> Result<(), ApiError> {
        let result = match accounts.known_mut(key, peer) {
            Some(known) => {
                let r = admits(&known.failures, known.pending);
                if r.is_ok() && count {
                    known.pending += 1;
                }
                r
            }
            None => {
                let pending = accounts.strangers_pending.get(key).copied().unwrap_or(0);
                let r = match accounts.strangers.get(key) {
                    Some(bucket) => admits(bucket, pending),
                    // No failure yet: a full allowance.
                    None => admits(&TokenBucket::new(limit), pending),
                };
                if r.is_ok() && count {
                    if accounts.strangers_pending.len() >= MAX_TRACKED
                        && !accounts.strangers_pending.contains_key(key)
                    {
                        accounts.strangers_pending.clear();
                    }
                    *accounts
                        .strangers_pending
                        .entry(key.to_owned())
                        .or_default() += 1;
                }
                r
            }
        };
        result.map_err(|wait| {
            tracing::warn!("login attempts for one account over the failure limit");
            too_many_failures(wait)
        })
    }

    /// A login counted by [`AccountLimiter::begin`] ended.
    fn end(&self, username: &str, peer: Option<IpAddr>) {
        let key = Self::key(username);
        let mut accounts = self.lock();
        if let Some(known) = accounts.known_mut(&key, peer)
            && known.pending > 0
        {
            known.pending -= 1;
            return;
        }
        if let Some(n) = accounts.strangers_pending.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                accounts.strangers_pending.remove(&key);
            }
        }
    }

    /// Records a wrong password for `username` from `peer`.
    pub(crate) fn failed(&self, username: &str, peer: Option<IpAddr>) {
        let Some(limit) = self.limit else {
            return;
        };
        let key = Self::key(username);
        let mut accounts = self.lock();
        if let Some(known) = accounts.known_mut(&key, peer) {
            let _ = known.failures.try_take();
            return;
        }
        let strangers = &mut accounts.strangers;
        if strangers.len() >= MAX_TRACKED && !strangers.contains_key(&key) {
            strangers.clear();
        }
        let _ = strangers
            .entry(key)
            .or_insert_with(|| TokenBucket::new(limit))
            .try_take();
    }

    /// Records a successful login to `username` from `peer`: the address becomes (or stays)
    /// one of the account's known addresses.
    pub(crate) fn succeeded(&self, username: &str, peer: Option<IpAddr>) {
        let (Some(limit), Some(addr)) = (self.limit, peer) else {
            return;
        };
        let key = Self::key(username);
        let now = Instant::now();
        let mut accounts = self.lock();
        if accounts.known.len() >= MAX_TRACKED && !accounts.known.contains_key(&key) {
            accounts.forget_least_recent_account();
        }
        let known = accounts.known.entry(key).or_default();
        known.retain(|k| now.saturating_duration_since(k.last_login) < KNOWN_FOR);
        let entry = match known.iter().position(|k| k.addr == addr) {
            Some(i) => {
                let mut entry = known.remove(i);
                entry.last_login = now;
                entry
            }
            None => KnownAddress {
                addr,
                last_login: now,
                failures: TokenBucket::new(limit),
                pending: 0,
            },
        };
        known.insert(0, entry);
        known.truncate(KNOWN_PER_ACCOUNT);
    }
}

impl Accounts {
    /// `peer`'s entry among the known addresses of account `key`, if it is there and fresh.
    fn known_mut(&mut self, key: &str, peer: Option<IpAddr>) -> Option<&mut KnownAddress> {
        let peer = peer?;
        let now = Instant::now();
        self.known
            .get_mut(key)?
            .iter_mut()
            .find(|k| k.addr == peer && now.saturating_duration_since(k.last_login) < KNOWN_FOR)
    }

    /// Makes room in the full table of known addresses: the account whose latest login is
    /// the oldest goes. A linear scan, but only when a login fills the table (it takes the
    /// passwords of [`MAX_TRACKED`] accounts), and unlike clearing the table it never
    /// forgets an active owner's addresses.
    fn forget_least_recent_account(&mut self) {
        let oldest = self
            .known
            .iter()
            .min_by_key(|(_, addrs)| addrs.first().map(|k| k.last_login))
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            self.known.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    fn limiter() -> AccountLimiter {
        // Two failures, then one every 100 s.
        AccountLimiter::new(Some(RateLimit::new(0.01, 2.0)))
    }

    #[tokio::test(start_paused = true)]
    async fn strangers_share_one_allowance_known_addresses_keep_their_own() {
        let limiter = limiter();
        limiter.succeeded("Alice", ip(1));
        limiter.failed("alice", ip(2));
        limiter.failed("alice", ip(3));
        // Spent for every address that never logged in, whichever failed...
        for peer in [ip(2), ip(3), ip(4), None] {
            assert!(limiter.check("alice", peer).is_err(), "{peer:?}");
        }
        // ...but not for the owner's address, nor for other accounts.
        assert!(limiter.check("ALICE", ip(1)).is_ok());
        assert!(limiter.check("bob", ip(2)).is_ok());
        // The owner's own failures spend the owner's allowance only.
        limiter.failed("alice", ip(1));
        assert!(limiter.check("alice", ip(1)).is_ok());
        limiter.failed("alice", ip(1));
        let refused = limiter.check("alice", ip(1)).unwrap_err();
        assert!(matches!(refused, ApiError::RateLimited { .. }));
        // Both refill.
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(limiter.check("alice", ip(1)).is_ok());
        assert!(limiter.check("alice", ip(4)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn known_addresses_are_bounded_and_expire() {
        let limiter = limiter();
        for last in 1..=u8::try_from(KNOWN_PER_ACCOUNT).unwrap() + 1 {
            limiter.succeeded("alice", ip(last));
        }
        limiter.failed("alice", ip(100));
        limiter.failed("alice", ip(100));
        // The first address made way for the newest ones.
        assert!(limiter.check("alice", ip(1)).is_err());
        assert!(limiter.check("alice", ip(2)).is_ok());
        // A login from an address refreshes it; the others expire.
        tokio::time::advance(KNOWN_FOR - Duration::from_secs(10)).await;
        limiter.succeeded("alice", ip(2));
        limiter.failed("alice", ip(100));
        limiter.failed("alice", ip(100));
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(limiter.check("alice", ip(2)).is_ok());
        assert!(limiter.check("alice", ip(3)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn logins_under_way_count_against_the_allowance() {
        // The failure found by `parley-bench hostile`'s login-victim probe: wrong passwords
        // arriving faster than their bcrypt checks finish all found the allowance full.
        let limiter = std::sync::Arc::new(limiter());
        let a = limiter.begin("alice", ip(2)).unwrap();
        let b = limiter.begin("alice", ip(3)).unwrap();
        // Two checks under way fill the strangers' allowance of two: a third is refused
        // before its password is looked at.
        assert!(matches!(
            limiter.begin("alice", ip(4)),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(limiter.begin("bob", ip(4)).is_ok());
        // One ends without a verdict (the store was down, the request was dropped): its
        // place is free again, and nothing was spent.
        drop(a);
        let c = limiter.begin("alice", ip(4)).unwrap();
        // Wrong passwords spend the allowance.
        b.failed();
        c.failed();
        assert!(limiter.begin("alice", ip(5)).is_err());
        // The owner's address has its own allowance, counted the same way; successes spend
        // nothing.
        limiter.succeeded("alice", ip(1));
        let o1 = limiter.begin("alice", ip(1)).unwrap();
        let o2 = limiter.begin("alice", ip(1)).unwrap();
        assert!(limiter.begin("alice", ip(1)).is_err());
        o1.succeeded();
        o2.succeeded();
        for _ in 0..5 {
            limiter.begin("alice", ip(1)).unwrap().succeeded();
        }
        // A stranger whose login succeeds becomes known and frees the strangers' place.
        tokio::time::advance(Duration::from_secs(100)).await;
        let s = limiter.begin("alice", ip(6)).unwrap();
        s.succeeded();
        assert!(limiter.begin("alice", ip(6)).is_ok());
        assert!(limiter.lock().strangers_pending.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_refuses_nothing() {
        let limiter = AccountLimiter::new(None);
        for _ in 0..10 {
            limiter.failed("alice", ip(2));
        }
        assert!(limiter.check("alice", ip(2)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_addresses_of_one_slash_64_share_a_bucket() {
        let limiter = AuthLimiter::new(Some(RateLimit::new(0.01, 2.0)));
        let v6 = |s: &str| Some(s.parse::<IpAddr>().expect("literal address"));
        assert!(limiter.check(v6("2001:db8:1:2::1")).is_ok());
        assert!(limiter.check(v6("2001:db8:1:2::2")).is_ok());
        // A third address of the same /64 finds the allowance spent...
        assert!(limiter.check(v6("2001:db8:1:2:ffff::3")).is_err());
        // ...another /64 has its own.
        assert!(limiter.check(v6("2001:db8:1:3::1")).is_ok());
    }
}
