//! Helpers shared by the integration tests: the Redis under test and unique prefixes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use parley_layer::{ChannelLayer, ChannelName, LayerConfig, Message};
use parley_redis::{RedisLayer, RedisLayerConfig};
use serde_json::Value;
use std::time::Duration;

/// The Redis the tests use (`REDIS_URL`, exported by scripts/test.sh). Tests fail, never
/// skip, when it is unreachable.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A prefix no other test (or deployment) shares. Ends with `:` so no prefix is a prefix of
/// another.
pub fn unique_prefix(test: &str) -> String {
    format!("parley-test-{test}-{}:", uuid::Uuid::new_v4().simple())
}

pub fn config(prefix: &str, layer: LayerConfig) -> RedisLayerConfig {
    RedisLayerConfig::new(redis_url())
        .with_prefix(prefix)
        .with_layer(layer)
}

pub async fn layer(prefix: &str) -> RedisLayer {
    layer_with(config(prefix, LayerConfig::default())).await
}

pub async fn layer_with(config: RedisLayerConfig) -> RedisLayer {
    RedisLayer::connect(config).await.unwrap_or_else(|e| {
        panic!(
            "Redis must be running at {} (scripts/test.sh starts one): {e}",
            redis_url()
        )
    })
}

pub fn msg(value: Value) -> Message {
    Message::from_value(value).unwrap()
}

/// The next message on `channel`, or `None` after `wait` (a bound, not a timing assertion).
pub async fn receive_within(
    layer: &RedisLayer,
    channel: &ChannelName,
    wait: Duration,
) -> Option<Message> {
    tokio::time::timeout(wait, layer.receive(channel))
        .await
        .ok()
        .map(|r| r.unwrap())
}

/// Long enough for anything that should arrive to arrive on a loaded test machine.
pub const ARRIVES: Duration = Duration::from_secs(10);
/// How long to wait before concluding that nothing comes.
pub const NOTHING: Duration = Duration::from_millis(1500);

pub fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).unwrap()
}
