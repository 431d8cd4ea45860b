//! The `parley-layer` conformance suite against the real Redis at `REDIS_URL`, each case
//! under its own prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use parley_layer::LayerConfig;
use parley_redis::RedisLayer;

async fn make_layer(config: LayerConfig) -> RedisLayer {
    common::layer_with(common::config(
        &common::unique_prefix("conformance"),
        config,
    ))
    .await
}

parley_layer::conformance_tests!(make_layer);

/// The same suite with encryption on: channels_redis's `symmetric_encryption_keys`.
async fn make_encrypted(config: LayerConfig) -> RedisLayer {
    let cfg = common::config(&common::unique_prefix("conformance-enc"), config);
    common::layer_with(cfg.with_encryption_keys(&["conformance-key"])).await
}

parley_layer::conformance_tests!(encrypted => make_encrypted);
