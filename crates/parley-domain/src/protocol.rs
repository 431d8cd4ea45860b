//! The WebSocket wire protocol (filled in by the foundation issue).
