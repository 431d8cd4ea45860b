//! # parley-e2e
//!
//! Test support for Parley's end-to-end suite (`e2e/`): start the real server in-process on
//! `127.0.0.1:0` ([`TestServer`]), talk to it over real sockets with a tiny HTTP/1.1 client
//! ([`http`]) and a WebSocket client ([`WsClient`], tokio-tungstenite).
//!
//! Every wait has a timeout and fails the test with a message; nothing sleeps to assert.
//!
//! ## Layout
//! - `server`: [`TestServer`], [`Backend`].
//! - [`http`]: requests and responses.
//! - `ws`: [`WsClient`].
//! - [`raw`]: hand-written WebSocket frames and trickling connections (hardening tests).
//! - [`services`]: throwaway PostgreSQL and Redis servers for fault tests.
//! - [`oidc_issuer`]: a small real OpenID Connect provider (actix-web, RS256 fixture keys).
//!
//! ## Must not depend on
//! Anything the production crates do not already use, besides the WebSocket client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a panic is a failed test

pub mod http;
pub mod oidc_issuer;
pub mod raw;
mod server;
pub mod services;
mod ws;

pub use server::{Backend, TestServer, account, create_room, login, redis_url, unique};
pub use ws::{WsClient, WsEvent};

use std::time::Duration;

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);
