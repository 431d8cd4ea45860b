//! Parley end to end: the real server (in-process, real sockets) on SQLite and PostgreSQL,
//! and two servers on one Redis. Every scenario is a function of the backend, instantiated
//! for both by `on_both!`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion

mod access;
mod admin;
mod authorization;
mod bad_input;
mod carriers;
mod chat;
mod faults;
mod features;
mod guests;
mod hardening;
mod limits;
mod mentions;
mod moderation;
mod multi_node;
mod oidc;
mod openapi;
mod profile;
mod rest;
mod search;
mod security;
mod transport;

/// `on_both!(scenario)` makes `scenario::sqlite` and `scenario::postgres` tests calling
/// `scenario(Backend)`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(parley_e2e::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(parley_e2e::Backend::Postgres).await;
                }
            }
        )*
    };
}

/// `on_both_carriers!(scenario)` makes `scenario::direct` and `scenario::actix_ws`.
#[macro_export]
macro_rules! on_both_carriers {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn direct() {
                    super::$name(parley_server::WsCarrier::Direct).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn actix_ws() {
                    super::$name(parley_server::WsCarrier::ActixWs).await;
                }
            }
        )*
    };
}
