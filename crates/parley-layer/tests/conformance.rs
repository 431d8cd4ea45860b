//! The in-memory layer runs the conformance suite, as itself and as `Arc<dyn ChannelLayer>`
//! (the form the server holds).

use parley_layer::{ChannelLayer, InMemoryLayer, LayerConfig};
use std::sync::Arc;

async fn make_layer(config: LayerConfig) -> InMemoryLayer {
    InMemoryLayer::new(config)
}

async fn make_dyn_layer(config: LayerConfig) -> Arc<dyn ChannelLayer> {
    Arc::new(InMemoryLayer::new(config))
}

parley_layer::conformance_tests!(make_layer);
parley_layer::conformance_tests!(as_dyn => make_dyn_layer);
