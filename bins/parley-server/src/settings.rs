//! The server's settings: defaults, then `parley.toml` (or `--config`), then `DATABASE_URL`
//! and `REDIS_URL`, then `PARLEY_<SETTING>` environment variables (highest precedence).

use crate::error::{Result, ServerError};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use parley_actix::{HttpConfig, ServeOptions, TrustedProxies};
use parley_core::{ConnectionConfig, EngineConfig, GuestConfig, RateLimit};
use parley_domain::redact_url;
use parley_layer::LayerConfig;
use parley_store::BatchOptions;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration file read when present and no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "parley.toml";

/// The longest HTTP timeout accepted, seconds.
const MAX_HTTP_TIMEOUT_SECS: u64 = 3600;

/// Which channel layer fans messages out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    /// In this process only (one server).
    Memory,
    /// Redis, shared by every server process (and Django Channels, if you like).
    Redis,
}

impl LayerKind {
    /// The setting's spelling (`memory`, `redis`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
        }
    }
}

/// What carries the chat WebSocket once the HTTP upgrade is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WsCarrier {
    /// The taken-over TCP stream (`parley_actix::serve`): no per-connection HTTP buffers,
    /// several frames per write. The default.
    #[default]
    Direct,
    /// actix-ws inside actix-http's HTTP/1 dispatcher (`parley_actix::configure` on an
    /// `HttpServer`): what an application embedding Parley in its own actix server gets.
    ActixWs,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Every setting. Each field is also the environment variable `PARLEY_<FIELD>` (upper-case)
/// and the key in `parley.toml`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Address to listen on (`PARLEY_BIND`).
    pub bind: String,
    /// HTTP worker threads (default: one per CPU).
    pub workers: Option<usize>,
    /// Length of the listener's queue of connections not yet accepted (the kernel caps it at
    /// `net.core.somaxconn`). See [`Settings::DEFAULT_LISTEN_BACKLOG`].
    pub listen_backlog: u32,
    /// `direct` (default) or `actix-ws`: what carries the chat WebSocket (see [`WsCarrier`]).
    pub ws_carrier: WsCarrier,
    /// `sqlite://path`, `sqlite::memory:` or `postgres://...` (also `DATABASE_URL`).
    pub database_url: String,
    /// Database pool size.
    pub db_max_connections: usize,
    /// Connections kept, beyond `db_max_connections`, for the account read of every
    /// authenticated request and socket handshake, so that a reconnect storm's handshakes do
    /// not queue behind the joins of the clients already in (0: they share the pool).
    pub db_account_connections: usize,
    /// Room joins (and sockets' re-checks after a channel-layer outage) that use the database
    /// at once; the others wait their turn in order, with no timeout (0: no limit). Keep it
    /// below `db_max_connections`.
    pub db_join_concurrency: usize,
    /// `memory` or `redis`; unset means `redis` when `redis_url` is set, else `memory`.
    pub layer: Option<LayerKind>,
    /// Redis URL (also `REDIS_URL`).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (channels_redis's `prefix`).
    pub redis_prefix: String,
    /// channels_redis's `symmetric_encryption_keys` (comma-separated in the environment).
    #[serde(deserialize_with = "string_list")]
    pub redis_encryption_keys: Vec<String>,
    /// Sentinel addresses (`host:port`, comma-separated in the environment): follow the
    /// primary they manage instead of `redis_url`'s host (whose credentials and database
    /// still apply to the primary). Needs `redis_sentinel_master`.
    #[serde(deserialize_with = "string_list")]
    pub redis_sentinels: Vec<String>,
    /// The primary's name the Sentinels monitor (channels_redis's `master_name`).
    pub redis_sentinel_master: Option<String>,
    /// The Sentinels' own password (environment only: `PARLEY_REDIS_SENTINEL_PASSWORD`).
    pub redis_sentinel_password: Option<String>,
    /// Undelivered messages one channel may hold (channels_redis's `capacity`).
    pub layer_capacity: usize,
    /// Seconds an undelivered message is kept (`expiry`).
    pub layer_expiry_secs: u64,
    /// Seconds a channel stays in a group without being re-added (`group_expiry`).
    pub group_expiry_secs: u64,
    /// HS256 signing secret (at least 32 bytes). Unset: a development secret generated once
    /// and kept in `secret_file`.
    pub secret: Option<String>,
    /// Where the generated development secret is kept.
    pub secret_file: PathBuf,
    /// `HS256`, `RS256` or `EdDSA`.
    pub jwt_algorithm: String,
    /// PEM private key for RS256/EdDSA.
    pub jwt_private_key_file: Option<PathBuf>,
    /// PEM public key for RS256/EdDSA.
    pub jwt_public_key_file: Option<PathBuf>,
    /// Access token lifetime, seconds.
    pub access_token_ttl_secs: u64,
    /// Refresh token lifetime, seconds.
    pub refresh_token_ttl_secs: u64,
    /// bcrypt cost (4–31).
    pub bcrypt_cost: u32,
    /// Origins allowed to open the WebSocket besides the server's own (`*`: any).
    #[serde(deserialize_with = "string_list")]
    pub allowed_origins: Vec<String>,
    /// Origins allowed to call the REST API cross-origin (`*`: any).
    #[serde(deserialize_with = "string_list")]
    pub cors_origins: Vec<String>,
    /// Reverse proxies (IP addresses or CIDR networks, `10.0.0.0/8`) whose
    /// `X-Forwarded-For`/`Forwarded` headers name the client for the per-address limits and
    /// the logs, and whose connections the per-address connection cap does not count. Empty:
    /// nobody is trusted.
    #[serde(deserialize_with = "string_list")]
    pub trusted_proxies: Vec<String>,
    /// Largest JSON request body, bytes.
    pub json_limit_bytes: usize,
    /// Largest WebSocket text frame the engine parses, bytes.
    pub max_frame_bytes: usize,
    /// Longest message body, characters.
    pub max_message_chars: usize,
    /// Rooms one connection may join.
    pub max_rooms_per_connection: usize,
    /// Connections one user may hold per server process.
    pub max_connections_per_user: usize,
    /// Messages of history sent on join.
    pub history_on_join: u32,
    /// Rooms with more users online than this get no `presence` frames (see the engine's
    /// `presence_fanout_limit`); members still see who is online in `joined` and over REST.
    pub presence_fanout_limit: usize,
    /// Group commit for sent messages: messages arriving while a write is in flight share
    /// one statement and one commit (`false`: one commit per message).
    pub group_commit: bool,
    /// Group commit: most messages per commit.
    pub group_commit_max_batch: usize,
    /// Group commit: writer tasks (batches in flight at once; each holds a database
    /// connection while writing, so keep this below `db_max_connections`).
    pub group_commit_writers: usize,
    /// Group commit: a message is written on its own, skipping the batcher, while fewer than
    /// this many are being stored (0: always batch).
    pub group_commit_direct_below: usize,
    /// Joins and leaves per second per user (sustained).
    pub join_rate: f64,
    /// Join and leave burst per user.
    pub join_burst: f64,
    /// Guests (identities without an account, `POST /api/auth/guest` and the tutorial
    /// endpoint's `?guest=`): off by default. The upper bound of the switch staff turn at
    /// run time (`PUT /api/admin/guests`).
    pub guests: bool,
    /// Public rooms every new account joins (e.g. `["general"]`; not guests), created at
    /// start if missing (public, with no creator and so no owner). Default: none.
    #[serde(deserialize_with = "string_list")]
    pub default_rooms: Vec<String>,
    /// A guest's messages (send, edit, delete) per second (sustained).
    pub guest_message_rate: f64,
    /// A guest's message burst.
    pub guest_message_burst: f64,
    /// A guest's joins and leaves per second (sustained).
    pub guest_join_rate: f64,
    /// A guest's join and leave burst.
    pub guest_join_burst: f64,
    /// Messages (send, edit, delete) per second per user (sustained).
    pub message_rate: f64,
    /// Message burst per user.
    pub message_burst: f64,
    /// Typing frames per second per user.
    pub typing_rate: f64,
    /// Typing burst per user.
    pub typing_burst: f64,
    /// History requests per second per user.
    pub history_rate: f64,
    /// History request burst per user.
    pub history_burst: f64,
    /// Read markers per second per user.
    pub read_rate: f64,
    /// Read marker burst per user.
    pub read_burst: f64,
    /// Call signals per second per user.
    pub signal_rate: f64,
    /// Call signal burst per user.
    pub signal_burst: f64,
    /// Pings (the `ping` frame) per second per user.
    pub ping_rate: f64,
    /// Ping burst per user.
    pub ping_burst: f64,
    /// Largest call-signal payload, in bytes.
    pub max_signal_bytes: usize,
    /// `renew` frames per second per user.
    pub renew_rate: f64,
    /// `renew` burst per user.
    pub renew_burst: f64,
    /// `react`/`unreact` frames per second per user.
    pub reaction_rate: f64,
    /// `react`/`unreact` burst per user.
    pub reaction_burst: f64,
    /// Distinct emoji reactions one message may carry.
    pub max_reactions_per_message: usize,
    /// Distinct `@name`s of one message counted as mentions (0 turns mentions off).
    pub max_mentions_per_message: usize,
    /// STUN/TURN URLs for calls (`stun:host:3478`, `turn:host:3478?transport=udp`),
    /// comma-separated in the environment.
    #[serde(deserialize_with = "string_list")]
    pub ice_servers: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`): only from the
    /// environment (`PARLEY_TURN_SECRET`), never from the file; hidden by `check-config`.
    pub turn_secret: Option<String>,
    /// Lifetime of a minted TURN credential, seconds.
    pub turn_ttl_secs: u64,
    /// Seconds before a socket's authorization ends that it is warned (`expiring`).
    pub expiry_warning_secs: u64,
    /// Rooms created per second per user (sustained).
    pub room_create_rate: f64,
    /// Rooms a user may create at once.
    pub room_create_burst: f64,
    /// Register/login/refresh requests per second per client address (0: unlimited).
    pub auth_rate: f64,
    /// Burst of account requests per client address.
    pub auth_burst: f64,
    /// Failed logins per account name regained per second (0: no limit).
    pub login_failure_rate: f64,
    /// Wrong passwords per account name answered before logins for it are slowed to
    /// `login_failure_rate` (429 with `Retry-After`): one allowance shared by the addresses
    /// that never logged in to the account, one for each address that recently did.
    pub login_failure_burst: f64,
    /// New WebSocket connections per second per client address (0: no limit, the default).
    pub ws_connect_rate: f64,
    /// Burst of new WebSocket connections per client address.
    pub ws_connect_burst: f64,
    /// New guests' WebSocket connections per second per client address (0: no limit), on
    /// top of `ws_connect_rate`.
    pub guest_connect_rate: f64,
    /// Burst of guests' WebSocket connections per client address.
    pub guest_connect_burst: f64,
    /// Seconds between server pings on a WebSocket.
    pub ws_ping_interval_secs: u64,
    /// Seconds of silence after which a WebSocket is closed (4001).
    pub ws_ping_timeout_secs: u64,
    /// Milliseconds between presence reports to other server processes.
    pub presence_interval_ms: u64,
    /// Milliseconds another process's presence report counts.
    pub presence_ttl_ms: u64,
    /// Seconds a client has to send the head of a connection's first request (408 after).
    pub http_head_timeout_secs: u64,
    /// Seconds from a request's first byte (head and body; any request of a connection)
    /// until the server starts its answer: a slower request gets 408 and its connection is
    /// closed. Also how long a write to a client that does not read may stall.
    pub http_request_timeout_secs: u64,
    /// Seconds an idle keep-alive connection stays open (0: no keep-alive).
    pub http_keep_alive_secs: u64,
    /// HTTP connections one IPv4 address (or IPv6 /64) may hold open; more are answered 429
    /// and closed at once (0: no limit). Upgraded WebSockets are not counted.
    pub http_max_connections_per_address: usize,
    /// Seconds to wait for in-flight requests on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Where Prometheus scrapes `GET /metrics` (`None`: not served). A listener of its own,
    /// not the public one: the numbers are for the operator's network only.
    pub metrics_bind: Option<String>,
    /// Refresh tokens rotate: a refresh answers a new pair and revokes the presented token.
    /// Off (simplejwt's `ROTATE_REFRESH_TOKENS = False`): a refresh answers a new access
    /// token only, and the refresh token stays valid until it expires or is logged out.
    pub refresh_rotation: bool,
    /// OpenID Connect sign-in providers, by name (the name is the route segment, e.g.
    /// `google`). Each one's client secret comes only from the environment,
    /// `PARLEY_OIDC_<NAME>_CLIENT_SECRET`.
    pub oidc_providers: BTreeMap<String, OidcProviderSettings>,
    /// The providers' client secrets, from `PARLEY_OIDC_<NAME>_CLIENT_SECRET` only (never a
    /// file, never printed).
    #[serde(skip)]
    pub oidc_client_secrets: BTreeMap<String, String>,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// Log filter (`info`, `parley=debug,info`, ...); `RUST_LOG` overrides it.
    pub log_level: String,
}

impl Default for Settings {
    fn default() -> Self {
        let engine = EngineConfig::default();
        let group_commit = BatchOptions::default();
        let heartbeat = ConnectionConfig::default();
        Self {
            bind: "127.0.0.1:8080".to_owned(),
            workers: None,
            listen_backlog: Self::DEFAULT_LISTEN_BACKLOG,
            ws_carrier: WsCarrier::Direct,
            database_url: "sqlite://parley.sqlite3".to_owned(),
            db_max_connections: 16,
            db_account_connections: 2,
            db_join_concurrency: 8,
            layer: None,
            redis_url: None,
            redis_prefix: "asgi".to_owned(),
            redis_encryption_keys: Vec::new(),
            redis_sentinels: Vec::new(),
            redis_sentinel_master: None,
            redis_sentinel_password: None,
            layer_capacity: 100,
            layer_expiry_secs: 60,
            group_expiry_secs: 86_400,
            secret: None,
            secret_file: PathBuf::from(".parley-secret"),
            jwt_algorithm: "HS256".to_owned(),
            jwt_private_key_file: None,
            jwt_public_key_file: None,
            access_token_ttl_secs: 300,
            refresh_token_ttl_secs: 86_400,
            bcrypt_cost: 12,
            allowed_origins: Vec::new(),
            cors_origins: Vec::new(),
            default_rooms: Vec::new(),
            trusted_proxies: Vec::new(),
            json_limit_bytes: 64 * 1024,
            max_frame_bytes: engine.max_frame_bytes,
            max_message_chars: engine.max_message_chars,
            max_rooms_per_connection: engine.max_rooms_per_connection,
            max_connections_per_user: engine.max_connections_per_user,
            history_on_join: engine.history_on_join,
            presence_fanout_limit: engine.presence_fanout_limit,
            group_commit: engine.group_commit.is_some(),
            group_commit_max_batch: group_commit.max_batch,
            group_commit_writers: group_commit.writers,
            group_commit_direct_below: group_commit.direct_below,
            join_rate: engine.join_rate.per_second,
            join_burst: engine.join_rate.burst,
            guests: engine.guests.enabled,
            guest_message_rate: engine.guests.message_rate.per_second,
            guest_message_burst: engine.guests.message_rate.burst,
            guest_join_rate: engine.guests.join_rate.per_second,
            guest_join_burst: engine.guests.join_rate.burst,
            message_rate: engine.message_rate.per_second,
            message_burst: engine.message_rate.burst,
            typing_rate: engine.typing_rate.per_second,
            typing_burst: engine.typing_rate.burst,
            history_rate: engine.history_rate.per_second,
            history_burst: engine.history_rate.burst,
            read_rate: engine.read_rate.per_second,
            read_burst: engine.read_rate.burst,
            signal_rate: engine.signal_rate.per_second,
            signal_burst: engine.signal_rate.burst,
            ping_rate: engine.ping_rate.per_second,
            ping_burst: engine.ping_rate.burst,
            max_signal_bytes: engine.max_signal_bytes,
            renew_rate: engine.renew_rate.per_second,
            renew_burst: engine.renew_rate.burst,
            reaction_rate: engine.reaction_rate.per_second,
            reaction_burst: engine.reaction_rate.burst,
            max_reactions_per_message: engine.max_reactions_per_message,
            max_mentions_per_message: engine.max_mentions_per_message,
            ice_servers: Vec::new(),
            turn_secret: None,
            turn_ttl_secs: parley_core::IceConfig::DEFAULT_TURN_TTL_SECS,
            expiry_warning_secs: engine.expiry_warning.as_secs(),
            room_create_rate: engine.room_create_rate.per_second,
            room_create_burst: engine.room_create_rate.burst,
            auth_rate: 1.0,
            auth_burst: 20.0,
            login_failure_rate: 0.1,
            login_failure_burst: 10.0,
            ws_connect_rate: 0.0,
            ws_connect_burst: 100.0,
            guest_connect_rate: 0.2,
            guest_connect_burst: 10.0,
            ws_ping_interval_secs: heartbeat.ping_interval.as_secs(),
            ws_ping_timeout_secs: heartbeat.ping_timeout.as_secs(),
            presence_interval_ms: duration_ms(engine.presence_interval),
            presence_ttl_ms: duration_ms(engine.presence_ttl),
            http_head_timeout_secs: 5,
            http_request_timeout_secs: 10,
            http_keep_alive_secs: 5,
            http_max_connections_per_address: 256,
            shutdown_timeout_secs: 30,
            refresh_rotation: true,
            oidc_providers: BTreeMap::new(),
            oidc_client_secrets: BTreeMap::new(),
            metrics_bind: None,
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
        }
    }
}

/// One OpenID Connect provider (a table under `[oidc_providers.<name>]`). A provider named
/// `google` needs only `client_id` (and its secret in the environment): its issuer and
/// button label default to Google's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcProviderSettings {
    /// The exact `iss` of its ID tokens (its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`); `https://accounts.google.com` for
    /// `google`, required otherwise. `http://` only on a loopback host.
    pub issuer: Option<String>,
    /// This application's client id at the provider.
    pub client_id: String,
    /// More accepted audiences: the client ids of native apps whose ID tokens
    /// `POST /api/auth/oidc/{name}` accepts.
    pub audiences: Vec<String>,
    /// What the web client's button says ("Sign in with …"); default: the name, capitalized.
    pub display_name: Option<String>,
    /// The scopes asked for in the browser sign-in.
    pub scopes: Vec<String>,
    /// Link a first sign-in to the one existing account with the same email when the
    /// provider verified that email (off: a new account; an unverified email never links).
    pub link_verified_email: bool,
    /// The callback URL registered at the provider
    /// (`https://chat.example.com/api/auth/oidc/<name>/callback`); unset: derived from each
    /// request's host and scheme.
    pub redirect_uri: Option<String>,
    /// Timeout of each request to the provider, seconds.
    pub timeout_secs: u64,
}

impl Default for OidcProviderSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            client_id: String::new(),
            audiences: Vec::new(),
            display_name: None,
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            link_verified_email: false,
            redirect_uri: None,
            timeout_secs: 10,
        }
    }
}

/// The environment variable holding provider `name`'s client secret.
pub fn oidc_secret_variable(name: &str) -> String {
    format!(
        "PARLEY_OIDC_{}_CLIENT_SECRET",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A list given as a TOML array, or as one comma-separated string (for the environment).
fn string_list<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Refuses a configuration file with a key no setting has (a typo would otherwise be
/// ignored silently). The environment is not checked this way: unrelated `PARLEY_*`
/// variables are common there.
fn check_file_keys(path: &Path) -> Result<()> {
    let file: figment::value::Dict = Figment::from(Toml::file(path))
        .extract()
        .map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))?;
    let known = serde_json::to_value(Settings::default()).unwrap_or_default();
    for key in file.keys() {
        if known.get(key.as_str()).is_none() {
            return Err(ServerError::Config(format!(
                "{}: unknown setting {key:?}",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Settings that may only come from the environment: secrets that must not sit in a file
/// that is easily copied, committed or shown.
const ENV_ONLY: [&str; 2] = ["turn_secret", "redis_sentinel_password"];

/// Refuses a file that sets an environment-only setting.
fn check_env_only_keys(path: &Path) -> Result<()> {
    let file: figment::value::Dict = Figment::from(Toml::file(path))
        .extract()
        .map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))?;
    if let Some(key) = ENV_ONLY.iter().find(|k| file.contains_key(**k)) {
        return Err(ServerError::Config(format!(
            "{}: {key} may only be set in the environment (PARLEY_{})",
            path.display(),
            key.to_ascii_uppercase()
        )));
    }
    Ok(())
}

/// `PARLEY_*` variables that are not settings: read by the test and benchmark scripts, never
/// by the server, and so not refused by [`check_env_keys`].
pub const TOOL_VARIABLES: [&str; 11] = [
    "PARLEY_BENCH_BIN",
    "PARLEY_BENCH_SERVER_ENV",
    "PARLEY_PG_BIN",
    "PARLEY_PYTHON",
    "PARLEY_REDIS_SENTINEL",
    "PARLEY_REDIS_SERVER",
    "PARLEY_SCREENSHOTS",
    "PARLEY_SERVER_BIN",
    "PARLEY_TEST_DIR",
    "PARLEY_TEST_SERVER_BIN",
    "PARLEY_WEB_DIR",
];

/// Every setting's name.
fn setting_names() -> Vec<String> {
    match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Refuses a `PARLEY_*` variable that names no setting (a typo would otherwise be ignored
/// silently), suggesting the closest name and listing them all.
fn check_env_keys(vars: impl IntoIterator<Item = String>) -> Result<()> {
    let names = setting_names();
    for var in vars {
        let Some(name) = var.strip_prefix("PARLEY_") else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if names.contains(&name) || TOOL_VARIABLES.contains(&var.as_str()) {
            continue;
        }
        // A provider's client secret (which provider is checked against the settings later).
        if name.starts_with("oidc_") && name.ends_with("_client_secret") {
            continue;
        }
        let closest = names
            .iter()
            .map(|n| (edit_distance(&name, n), n))
            .min()
            .filter(|(d, _)| *d <= 3)
            .map(|(_, n)| format!(" (did you mean PARLEY_{}?)", n.to_ascii_uppercase()))
            .unwrap_or_default();
        let all: Vec<String> = names
            .iter()
            .map(|n| format!("PARLEY_{}", n.to_ascii_uppercase()))
            .collect();
        return Err(ServerError::Config(format!(
            "{var}: no such setting{closest}; the settings are {}",
            all.join(", ")
        )));
    }
    Ok(())
}

/// Levenshtein distance, for suggesting a setting's name.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(previous + usize::from(ca != *cb));
            previous = current;
        }
    }
    row[b.len()]
}

impl Settings {
    /// The default `listen_backlog`. std's `TcpListener::bind` fixes the queue at 128: in a
    /// reconnect storm (thousands of clients of a restarted server back at once) it
    /// overflowed, and the kernel dropped every handshake beyond it (≈ 39,000 in the storm
    /// runs of docs/benchmarks.md, "Storms"), to come back only with the clients' SYN
    /// retransmissions, one second or more later.
    pub const DEFAULT_LISTEN_BACKLOG: u32 = 4096;

    /// Reads the settings: defaults, the file (`path`, else `parley.toml` if it exists),
    /// `DATABASE_URL`/`REDIS_URL`, then `PARLEY_*`. A missing explicit file, a bad value or
    /// a bad type fails, naming the setting.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        match path {
            Some(p) if !p.exists() => {
                return Err(ServerError::Config(format!(
                    "config file {} does not exist",
                    p.display()
                )));
            }
            Some(p) => {
                check_file_keys(p)?;
                check_env_only_keys(p)?;
                figment = figment.merge(Toml::file(p));
            }
            None => {
                let p = Path::new(DEFAULT_CONFIG_FILE);
                if p.exists() {
                    check_file_keys(p)?;
                    check_env_only_keys(p)?;
                }
                figment = figment.merge(Toml::file(p));
            }
        }
        check_env_keys(std::env::vars().map(|(k, _)| k))?;
        let settings: Self = figment
            .merge(Env::raw().only(&["database_url", "redis_url"]))
            .merge(Env::prefixed("PARLEY_"))
            .extract()
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let mut settings = settings;
        for name in settings.oidc_providers.keys() {
            if let Ok(secret) = std::env::var(oidc_secret_variable(name)) {
                settings.oidc_client_secrets.insert(name.clone(), secret);
            }
        }
        for (var, _) in std::env::vars() {
            let lower = var.to_ascii_lowercase();
            if lower.starts_with("parley_oidc_")
                && lower.ends_with("_client_secret")
                && !settings
                    .oidc_providers
                    .keys()
                    .any(|n| oidc_secret_variable(n) == var)
            {
                return Err(ServerError::Config(format!(
                    "{var}: no OIDC provider of that name in oidc_providers"
                )));
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    /// The OpenID Connect providers, with their presets and secrets filled in.
    pub fn oidc_configs(&self) -> Result<Vec<parley_auth::ProviderConfig>> {
        self.oidc_providers
            .iter()
            .map(|(name, p)| {
                let google = name == "google";
                let issuer = match (&p.issuer, google) {
                    (Some(issuer), _) => issuer.clone(),
                    (None, true) => parley_auth::GOOGLE_ISSUER.to_owned(),
                    (None, false) => {
                        return Err(ServerError::Config(format!(
                            "oidc_providers.{name}.issuer: required (only `google` has a default)"
                        )));
                    }
                };
                let display_name = p.display_name.clone().unwrap_or_else(|| {
                    let mut chars = name.chars();
                    chars.next().map_or_else(String::new, |c| {
                        c.to_uppercase().chain(chars).collect::<String>()
                    })
                });
                Ok(parley_auth::ProviderConfig {
                    name: name.clone(),
                    display_name,
                    issuer,
                    client_id: p.client_id.clone(),
                    client_secret: self.oidc_client_secrets.get(name).cloned(),
                    extra_audiences: p.audiences.clone(),
                    scopes: p.scopes.clone(),
                    link_verified_email: p.link_verified_email,
                    redirect_uri: p.redirect_uri.clone(),
                    timeout: Duration::from_secs(p.timeout_secs),
                })
            })
            .collect()
    }

    /// The layer to use (explicit, else implied by `redis_url`).
    pub fn layer_kind(&self) -> LayerKind {
        self.layer.unwrap_or(
            if self.redis_url.is_some() || !self.redis_sentinels.is_empty() {
                LayerKind::Redis
            } else {
                LayerKind::Memory
            },
        )
    }

    /// Checks every setting, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |setting: &str, why: &str| Err(ServerError::Config(format!("{setting}: {why}")));
        self.default_rooms()?;
        if self.bind.parse::<SocketAddr>().is_err() {
            return bad("bind", "must be an address like 127.0.0.1:8080");
        }
        if let Some(metrics) = &self.metrics_bind
            && metrics.parse::<SocketAddr>().is_err()
        {
            return bad("metrics_bind", "must be an address like 127.0.0.1:9184");
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return bad(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            );
        }
        if self.db_max_connections == 0 {
            return bad("db_max_connections", "must be at least 1");
        }
        if self.group_commit && self.group_commit_writers >= self.db_max_connections {
            return bad(
                "group_commit_writers",
                "must be below db_max_connections (each writer holds a connection while writing)",
            );
        }
        if self.workers == Some(0) {
            return bad("workers", "must be at least 1");
        }
        if self.listen_backlog == 0 {
            return bad("listen_backlog", "must be at least 1");
        }
        if self.redis_sentinels.is_empty() != self.redis_sentinel_master.is_none() {
            return bad(
                "redis_sentinels",
                "redis_sentinels and redis_sentinel_master go together",
            );
        }
        if self.layer_kind() == LayerKind::Redis {
            match &self.redis_url {
                None if !self.redis_sentinels.is_empty() => {}
                None => return bad("redis_url", "is required when layer = \"redis\""),
                Some(u) if !(u.starts_with("redis://") || u.starts_with("rediss://")) => {
                    return bad("redis_url", "must start with redis:// or rediss://");
                }
                Some(_) => {}
            }
            if self.redis_prefix.is_empty() {
                return bad("redis_prefix", "must not be empty");
            }
        }
        if self.layer_capacity == 0 {
            return bad("layer_capacity", "must be at least 1");
        }
        if self.layer_expiry_secs == 0 || self.group_expiry_secs == 0 {
            return bad("layer_expiry_secs/group_expiry_secs", "must be positive");
        }
        if let Some(secret) = &self.secret
            && secret.len() < parley_auth::AuthConfig::MIN_SECRET_BYTES
        {
            return bad("secret", "must be at least 32 bytes");
        }
        match self.jwt_algorithm.as_str() {
            "HS256" => {}
            "RS256" | "EdDSA" => {
                if self.jwt_private_key_file.is_none() || self.jwt_public_key_file.is_none() {
                    return bad(
                        "jwt_private_key_file/jwt_public_key_file",
                        "are required for RS256 and EdDSA",
                    );
                }
            }
            _ => return bad("jwt_algorithm", "must be HS256, RS256 or EdDSA"),
        }
        if self.access_token_ttl_secs == 0 {
            return bad("access_token_ttl_secs", "must be positive");
        }
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            return bad(
                "refresh_token_ttl_secs",
                "must be at least access_token_ttl_secs",
            );
        }
        parley_auth::OidcProviders::new(self.oidc_configs()?)
            .map_err(|e| ServerError::Config(e.to_string()))?;
        if !(4..=31).contains(&self.bcrypt_cost) {
            return bad("bcrypt_cost", "must be between 4 and 31");
        }
        if self.auth_rate < 0.0 || (self.auth_rate > 0.0 && self.auth_burst < 1.0) {
            return bad(
                "auth_rate/auth_burst",
                "auth_rate must be positive (or 0 for no limit) with auth_burst at least 1",
            );
        }
        if self.ws_connect_rate < 0.0 || (self.ws_connect_rate > 0.0 && self.ws_connect_burst < 1.0)
        {
            return bad(
                "ws_connect_rate/ws_connect_burst",
                "ws_connect_rate must be positive (or 0 for no limit) with ws_connect_burst at least 1",
            );
        }
        if self.guest_connect_rate < 0.0
            || (self.guest_connect_rate > 0.0 && self.guest_connect_burst < 1.0)
        {
            return bad(
                "guest_connect_rate/guest_connect_burst",
                "guest_connect_rate must be positive (or 0 for no limit) with guest_connect_burst at least 1",
            );
        }
        if self.login_failure_rate < 0.0
            || (self.login_failure_rate > 0.0 && self.login_failure_burst < 1.0)
        {
            return bad(
                "login_failure_rate/login_failure_burst",
                "login_failure_rate must be positive (or 0 for no limit) with login_failure_burst at least 1",
            );
        }
        if !(1..=MAX_HTTP_TIMEOUT_SECS).contains(&self.http_request_timeout_secs) {
            return bad(
                "http_request_timeout_secs",
                "must be between 1 and 3600 (a client could otherwise hold a connection forever)",
            );
        }
        if !(1..=self.http_request_timeout_secs).contains(&self.http_head_timeout_secs) {
            return bad(
                "http_head_timeout_secs",
                "must be between 1 and http_request_timeout_secs",
            );
        }
        if self.http_keep_alive_secs > MAX_HTTP_TIMEOUT_SECS {
            return bad("http_keep_alive_secs", "must be at most 3600");
        }
        if self.shutdown_timeout_secs == 0 {
            return bad("shutdown_timeout_secs", "must be positive");
        }
        self.engine_config()
            .validate()
            .map_err(|e| ServerError::Config(e.to_string()))?;
        self.trusted_proxies()?;
        self.http_config().validate().map_err(ServerError::Config)?;
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| ServerError::Config(format!("log_level: {e}")))?;
        Ok(())
    }

    /// The engine's limits.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            max_frame_bytes: self.max_frame_bytes,
            max_message_chars: self.max_message_chars,
            max_rooms_per_connection: self.max_rooms_per_connection,
            max_connections_per_user: self.max_connections_per_user,
            message_rate: RateLimit::new(self.message_rate, self.message_burst),
            typing_rate: RateLimit::new(self.typing_rate, self.typing_burst),
            history_rate: RateLimit::new(self.history_rate, self.history_burst),
            read_rate: RateLimit::new(self.read_rate, self.read_burst),
            signal_rate: RateLimit::new(self.signal_rate, self.signal_burst),
            ping_rate: RateLimit::new(self.ping_rate, self.ping_burst),
            max_signal_bytes: self.max_signal_bytes,
            room_create_rate: RateLimit::new(self.room_create_rate, self.room_create_burst),
            renew_rate: RateLimit::new(self.renew_rate, self.renew_burst),
            reaction_rate: RateLimit::new(self.reaction_rate, self.reaction_burst),
            max_reactions_per_message: self.max_reactions_per_message,
            max_mentions_per_message: self.max_mentions_per_message,
            ice: parley_core::IceConfig {
                servers: self
                    .ice_servers
                    .iter()
                    .map(|u| u.trim().to_owned())
                    .collect(),
                turn_secret: self.turn_secret.clone().map(parley_core::TurnSecret::new),
                turn_ttl: Duration::from_secs(self.turn_ttl_secs),
            },
            expiry_warning: Duration::from_secs(self.expiry_warning_secs),
            history_on_join: self.history_on_join,
            presence_fanout_limit: self.presence_fanout_limit,
            group_commit: self.group_commit.then_some(BatchOptions {
                max_batch: self.group_commit_max_batch,
                writers: self.group_commit_writers,
                direct_below: self.group_commit_direct_below,
                ..BatchOptions::default()
            }),
            join_rate: RateLimit::new(self.join_rate, self.join_burst),
            presence_interval: Duration::from_millis(self.presence_interval_ms),
            presence_ttl: Duration::from_millis(self.presence_ttl_ms),
            guests: GuestConfig {
                enabled: self.guests,
                message_rate: RateLimit::new(self.guest_message_rate, self.guest_message_burst),
                join_rate: RateLimit::new(self.guest_join_rate, self.guest_join_burst),
            },
            ..EngineConfig::default()
        }
    }

    /// How the HTTP server runs: workers, timeouts, connection limits, the WebSocket carrier.
    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            workers: self.workers,
            shutdown_timeout_secs: self.shutdown_timeout_secs,
            keep_alive: Duration::from_secs(self.http_keep_alive_secs),
            client_request_timeout: Duration::from_secs(self.http_head_timeout_secs),
            request_timeout: Duration::from_secs(self.http_request_timeout_secs),
            max_connections_per_address: self.http_max_connections_per_address,
            direct_websocket: self.ws_carrier == WsCarrier::Direct,
        }
    }

    /// `trusted_proxies`, parsed; the first entry that is neither an address nor a network
    /// is refused.
    pub fn trusted_proxies(&self) -> Result<TrustedProxies> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .map(|net| net.trunc())
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| ServerError::TrustedProxy {
                        entry: entry.to_owned(),
                    })
            })
            .collect::<Result<Vec<_>>>()
            .map(TrustedProxies::new)
    }

    /// The transport's settings.
    pub fn http_config(&self) -> HttpConfig {
        HttpConfig {
            allowed_origins: self.allowed_origins.clone(),
            cors_origins: self.cors_origins.clone(),
            json_limit: self.json_limit_bytes,
            heartbeat: ConnectionConfig {
                ping_interval: Duration::from_secs(self.ws_ping_interval_secs),
                ping_timeout: Duration::from_secs(self.ws_ping_timeout_secs),
            },
            ws_hard_frame_limit: None,
            auth_rate: (self.auth_rate > 0.0)
                .then(|| parley_core::RateLimit::new(self.auth_rate, self.auth_burst)),
            ws_connect_rate: (self.ws_connect_rate > 0.0)
                .then(|| parley_core::RateLimit::new(self.ws_connect_rate, self.ws_connect_burst)),
            guest_connect_rate: (self.guest_connect_rate > 0.0).then(|| {
                parley_core::RateLimit::new(self.guest_connect_rate, self.guest_connect_burst)
            }),
            login_failure_rate: (self.login_failure_rate > 0.0).then(|| {
                parley_core::RateLimit::new(self.login_failure_rate, self.login_failure_burst)
            }),
            // [`Settings::validate`] refused bad entries; unvalidated settings trust nobody.
            trusted_proxies: self.trusted_proxies().unwrap_or_default(),
        }
    }

    /// The channel layer's capacity and expiries.
    pub fn layer_config(&self) -> LayerConfig {
        LayerConfig {
            capacity: self.layer_capacity,
            expiry: Duration::from_secs(self.layer_expiry_secs),
            group_expiry: Duration::from_secs(self.group_expiry_secs),
        }
    }

    /// The `default_rooms`, parsed: group room names (not `dm.`).
    pub fn default_rooms(&self) -> Result<Vec<parley_domain::RoomName>> {
        self.default_rooms
            .iter()
            .map(|name| {
                parley_domain::RoomName::parse_group(name)
                    .map_err(|e| ServerError::Config(format!("default_rooms: {name:?}: {e}")))
            })
            .collect()
    }

    /// The settings as TOML-like JSON with secrets and URL passwords hidden (for
    /// `check-config` and the start-up log).
    pub fn redacted(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            if self.secret.is_some() {
                obj.insert("secret".into(), "***".into());
            }
            if self.turn_secret.is_some() {
                obj.insert("turn_secret".into(), "***".into());
            }
            if self.redis_sentinel_password.is_some() {
                obj.insert("redis_sentinel_password".into(), "***".into());
            }
            if !self.redis_encryption_keys.is_empty() {
                obj.insert(
                    "redis_encryption_keys".into(),
                    format!("[{} hidden]", self.redis_encryption_keys.len()).into(),
                );
            }
            obj.insert("database_url".into(), redact_url(&self.database_url).into());
            if let Some(u) = &self.redis_url {
                obj.insert("redis_url".into(), redact_url(u).into());
            }
            obj.insert("layer".into(), self.layer_kind().as_str().into());
            if let Some(serde_json::Value::Object(providers)) = obj.get_mut("oidc_providers") {
                for (name, provider) in providers.iter_mut() {
                    if let Some(p) = provider.as_object_mut() {
                        let secret = if self.oidc_client_secrets.contains_key(name) {
                            "***"
                        } else {
                            "unset"
                        };
                        p.insert("client_secret".into(), secret.into());
                    }
                }
            }
        }
        v
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Settings({})", self.redacted())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;

    /// docs/api.md's Configuration table: one row per setting, and each default it states
    /// is the default. Defaults in words are the three rows in `IN_WORDS` (checked as
    /// "none" here, their meaning by the tests of those settings).
    #[test]
    fn the_configuration_table_in_the_api_docs_is_the_defaults() {
        const IN_WORDS: [&str; 3] = ["workers", "layer", "secret"];
        let doc = include_str!("../../../docs/api.md");
        let defaults = serde_json::to_value(Settings::default()).unwrap();
        let defaults = defaults.as_object().unwrap();
        let table = doc
            .lines()
            .skip_while(|l| *l != "| setting | default | |")
            .skip(2)
            .take_while(|l| l.starts_with('|'));
        let mut documented = Vec::new();
        for line in table {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let names: Vec<&str> = cells[1].split(", ").map(|n| n.trim_matches('`')).collect();
            let stated: Vec<String> = if IN_WORDS.contains(&names[0]) {
                vec![]
            } else {
                // "0 (off)" is 0, "1/s" is 1, "`x`" is "x"; a name without a value is unset.
                cells[2]
                    .split(", ")
                    .map(|v| {
                        let v = v.split(" (").next().unwrap().trim_matches('`');
                        v.strip_suffix("/s").unwrap_or(v).to_owned()
                    })
                    .collect()
            };
            assert!(
                stated.len() <= names.len(),
                "more defaults than settings: {line}"
            );
            for (i, name) in names.iter().enumerate() {
                let actual = defaults
                    .get(*name)
                    .unwrap_or_else(|| panic!("`{name}` is in the table but is no setting"));
                let matches = match stated.get(i).map(String::as_str) {
                    None | Some("none" | "empty") => {
                        actual.is_null()
                            || actual.as_array().is_some_and(Vec::is_empty)
                            || actual.as_object().is_some_and(|o| o.is_empty())
                    }
                    Some(text) => match actual {
                        serde_json::Value::Number(n) => text.parse::<f64>().ok() == n.as_f64(),
                        serde_json::Value::String(s) => text == s,
                        serde_json::Value::Bool(b) => text == b.to_string(),
                        _ => false,
                    },
                };
                assert!(
                    matches,
                    "`{name}`: the table says {:?}, the default is {actual}",
                    stated.get(i)
                );
                documented.push(name.to_string());
            }
        }
        for name in defaults.keys() {
            assert!(
                documented.contains(name),
                "`{name}` has no row in docs/api.md's Configuration table"
            );
        }
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks_and_name_a_bad_entry() {
        let s = Settings {
            trusted_proxies: vec!["127.0.0.1".into(), " 10.1.2.3/8".into(), "fd00::/8".into()],
            ..Settings::default()
        };
        s.validate().unwrap();
        let trusted = s.http_config().trusted_proxies;
        for yes in ["127.0.0.1", "10.200.0.1", "fd00::1", "::ffff:127.0.0.1"] {
            assert!(trusted.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["127.0.0.2", "11.0.0.1", "fe80::1"] {
            assert!(!trusted.contains(no.parse().unwrap()), "{no}");
        }
        assert!(Settings::default().http_config().trusted_proxies.is_empty());
        for bad in ["10.0.0.0/33", "nginx", "10.0.0", ""] {
            let s = Settings {
                trusted_proxies: vec!["127.0.0.1".into(), bad.into()],
                ..Settings::default()
            };
            let e = s.validate().unwrap_err();
            assert!(
                matches!(&e, ServerError::TrustedProxy { entry } if entry == bad),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains("trusted_proxies"), "{e}");
        }
    }

    #[test]
    fn defaults_are_valid_and_use_sqlite_and_memory() {
        let s = Settings::default();
        s.validate().unwrap();
        assert_eq!(s.layer_kind(), LayerKind::Memory);
        assert_eq!(s.bind, "127.0.0.1:8080");
        assert!(s.database_url.starts_with("sqlite://"));
    }

    #[test]
    fn http_limits_default_to_safe_values_and_reach_the_server() {
        let s = Settings::default();
        let options = s.serve_options();
        assert_eq!(options.client_request_timeout, Duration::from_secs(5));
        assert_eq!(options.request_timeout, Duration::from_secs(10));
        assert_eq!(options.keep_alive, Duration::from_secs(5));
        assert_eq!(options.max_connections_per_address, 256);
        assert!(options.direct_websocket);
        let s = Settings {
            ws_carrier: WsCarrier::ActixWs,
            http_max_connections_per_address: 0,
            ..Settings::default()
        };
        assert!(!s.serve_options().direct_websocket);
        assert_eq!(s.serve_options().max_connections_per_address, 0);
    }

    #[test]
    fn redis_url_implies_the_redis_layer_unless_set() {
        let mut s = Settings {
            redis_url: Some("redis://127.0.0.1:6379".into()),
            ..Settings::default()
        };
        assert_eq!(s.layer_kind(), LayerKind::Redis);
        s.layer = Some(LayerKind::Memory);
        assert_eq!(s.layer_kind(), LayerKind::Memory);
    }

    #[test]
    fn errors_name_the_setting() {
        let cases: Vec<(Settings, &str)> = vec![
            (
                Settings {
                    bind: "nope".into(),
                    ..Settings::default()
                },
                "bind",
            ),
            (
                Settings {
                    database_url: "mysql://x".into(),
                    ..Settings::default()
                },
                "database_url",
            ),
            (
                Settings {
                    secret: Some("short".into()),
                    ..Settings::default()
                },
                "secret",
            ),
            (
                Settings {
                    layer: Some(LayerKind::Redis),
                    ..Settings::default()
                },
                "redis_url",
            ),
            (
                Settings {
                    ws_ping_timeout_secs: 1,
                    ..Settings::default()
                },
                "ws_ping_timeout",
            ),
            (
                Settings {
                    max_frame_bytes: 10,
                    ..Settings::default()
                },
                "max_frame_bytes",
            ),
            (
                Settings {
                    group_commit_max_batch: 0,
                    ..Settings::default()
                },
                "group_commit.max_batch",
            ),
            (
                Settings {
                    group_commit_writers: 16,
                    ..Settings::default()
                },
                "group_commit_writers",
            ),
            (
                Settings {
                    http_request_timeout_secs: 0,
                    ..Settings::default()
                },
                "http_request_timeout_secs",
            ),
            (
                Settings {
                    http_head_timeout_secs: 11,
                    ..Settings::default()
                },
                "http_head_timeout_secs",
            ),
            (
                Settings {
                    http_keep_alive_secs: 86_400,
                    ..Settings::default()
                },
                "http_keep_alive_secs",
            ),
        ];
        for (s, name) in cases {
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{e} should name {name}");
        }
    }

    #[test]
    fn group_commit_is_on_by_default_and_can_be_turned_off() {
        let on = Settings::default().engine_config().group_commit.unwrap();
        let engine = BatchOptions::default();
        assert_eq!(
            (on.max_batch, on.writers, on.queue, on.direct_below),
            (
                engine.max_batch,
                engine.writers,
                engine.queue,
                engine.direct_below
            )
        );
        let off = Settings {
            group_commit: false,
            // Not checked when off.
            group_commit_writers: 100,
            ..Settings::default()
        };
        off.validate().unwrap();
        assert!(off.engine_config().group_commit.is_none());
    }

    #[test]
    fn a_misspelled_variable_is_refused_with_a_suggestion() {
        let vars = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        check_env_keys(vars(&[
            "PARLEY_BIND",
            "PARLEY_LOG_LEVEL",
            "PARLEY_PYTHON",
            "PATH",
        ]))
        .unwrap();
        let e = check_env_keys(vars(&["PARLEY_BIDN"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("PARLEY_BIDN: no such setting (did you mean PARLEY_BIND?)"),
            "{e}"
        );
        assert!(
            e.contains("PARLEY_DATABASE_URL") && e.contains("PARLEY_WS_CARRIER"),
            "{e}"
        );
        let e = check_env_keys(vars(&["PARLEY_NOTHING_LIKE_IT_AT_ALL"]))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("did you mean"), "{e}");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Settings {
            database_url: "postgres://u:pw@h:5432/db".into(),
            secret: Some("x".repeat(40)),
            ..Settings::default()
        };
        assert_eq!(s.redacted()["secret"], "***");
        assert_eq!(s.redacted()["database_url"], "postgres://u:***@h:5432/db");
        let s = Settings {
            turn_secret: Some("turn-shared-secret".into()),
            ..Settings::default()
        };
        assert_eq!(s.redacted()["turn_secret"], "***");
        assert!(!format!("{s:?}").contains("turn-shared-secret"));
    }

    #[test]
    fn sentinel_settings_imply_redis_go_together_and_hide_the_password() {
        let s = Settings {
            redis_sentinels: vec!["127.0.0.1:26379".into()],
            redis_sentinel_master: Some("mymaster".into()),
            redis_sentinel_password: Some("sentinel-pass".into()),
            ..Settings::default()
        };
        assert_eq!(s.layer_kind(), LayerKind::Redis);
        s.validate().unwrap();
        assert_eq!(s.redacted()["redis_sentinel_password"], "***");
        assert!(!s.redacted().to_string().contains("sentinel-pass"));
        let s = Settings {
            redis_sentinels: vec!["127.0.0.1:26379".into()],
            ..Settings::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("redis_sentinel_master"), "{e}");
        assert!(ENV_ONLY.contains(&"redis_sentinel_password"));
    }

    #[test]
    fn the_turn_secret_is_refused_in_the_file_and_ice_urls_are_checked() {
        let dir = std::env::temp_dir().join(format!("parley-turn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("parley.toml");
        std::fs::write(&file, "turn_secret = \"in-a-file\"\n").unwrap();
        let e = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(
            e.contains("turn_secret may only be set in the environment"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let s = Settings {
            ice_servers: vec!["stun:stun.example.org:3478".into(), "http://nope".into()],
            ..Settings::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("ice_servers"), "{e}");
    }

    #[test]
    fn oidc_providers_take_the_google_preset_and_hide_their_secrets() {
        let mut s = Settings::default();
        s.oidc_providers.insert(
            "google".into(),
            OidcProviderSettings {
                client_id: "123.apps.googleusercontent.com".into(),
                ..OidcProviderSettings::default()
            },
        );
        s.oidc_client_secrets
            .insert("google".into(), "very-secret-value".into());
        s.validate().unwrap();
        let configs = s.oidc_configs().unwrap();
        assert_eq!(configs[0].issuer, "https://accounts.google.com");
        assert_eq!(configs[0].display_name, "Google");
        assert_eq!(
            configs[0].client_secret.as_deref(),
            Some("very-secret-value")
        );
        assert!(!configs[0].link_verified_email);
        let shown = s.redacted().to_string();
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert_eq!(
            s.redacted()["oidc_providers"]["google"]["client_secret"],
            "***"
        );
        assert_eq!(
            oidc_secret_variable("my-corp"),
            "PARLEY_OIDC_MY_CORP_CLIENT_SECRET"
        );
        // Another provider needs its issuer, over https (http only on loopback).
        for (issuer, ok) in [
            (None, false),
            (Some("http://login.example.com"), false),
            (Some("https://login.example.com"), true),
            (Some("http://127.0.0.1:9000"), true),
        ] {
            let mut s = Settings::default();
            s.oidc_providers.insert(
                "corp".into(),
                OidcProviderSettings {
                    issuer: issuer.map(str::to_owned),
                    client_id: "parley".into(),
                    ..OidcProviderSettings::default()
                },
            );
            assert_eq!(s.validate().is_ok(), ok, "{issuer:?}");
        }
    }
}
