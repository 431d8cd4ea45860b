//! Settings shared by every layer backend, with Channels' defaults.

use std::time::Duration;

/// Capacity and expiry settings. The defaults are those of Django Channels
/// (`capacity=100`, `expiry=60`, `group_expiry=86400`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerConfig {
    /// Undelivered messages a channel may hold before sends to it fail with `ChannelFull`.
    pub capacity: usize,
    /// How long an undelivered message is kept.
    pub expiry: Duration,
    /// How long a channel stays in a group without being re-added.
    pub group_expiry: Duration,
}

impl Default for LayerConfig {
    fn default() -> Self {
        Self {
            capacity: 100,
            expiry: Duration::from_secs(60),
            group_expiry: Duration::from_secs(86_400),
        }
    }
}
