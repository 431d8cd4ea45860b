//! Issue 14, item 1, against the real binary: a WebSocket frame header declaring 2^40 bytes,
//! then the payload streamed anyway, on both carriers. The server must refuse the frame with
//! 1009 at its header, before any of the payload is sent, and its memory (RSS, read from
//! `/proc/<pid>/status`) must not follow what is streamed. Before the fix it buffered all of
//! it: 1 GiB streamed took the server to 2 GB.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed assertion
#![allow(clippy::print_stderr)] // the figures quoted in docs/reliability.md

use parley_e2e::raw::{self, frame_header, read_close};
use parley_e2e::{Backend, account};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

mod common;

use common::Process;

/// What is streamed after the header, MiB.
const STREAMED_MIB: usize = 64;
/// Pace: one MiB every this long (≈ 40 MiB/s; the attacker was slower still).
const PACE: Duration = Duration::from_millis(25);
/// The RSS growth allowed while all of it is streamed.
const BOUND_MIB: f64 = 16.0;

async fn huge_frame_is_refused_at_its_header(carrier: &str, fragmented: bool) {
    let db = Backend::Sqlite.database().await;
    let server = Process::start(
        &std::env::temp_dir(),
        &[
            ("DATABASE_URL", db.url().to_owned()),
            ("PARLEY_WS_CARRIER", carrier.to_owned()),
            (
                "PARLEY_SECRET",
                "frames-test-secret-frames-test-secret".to_owned(),
            ),
        ],
    );
    let token = account(server.addr, "mallory").await;
    let mut ws = raw::ws_handshake(server.addr, &token).await;
    let before = server.rss_kib();
    if fragmented {
        // A small first fragment, then a continuation declaring 2^40 bytes.
        ws.write_all(&frame_header(0x1, false, 5)).await.unwrap();
        ws.write_all(b"hello").await.unwrap();
        ws.write_all(&frame_header(0x0, true, 1 << 40))
            .await
            .unwrap();
    } else {
        ws.write_all(&frame_header(0x1, true, 1 << 40))
            .await
            .unwrap();
    }
    // The refusal must come on the header alone.
    let close = read_close(&mut ws, Duration::from_secs(2)).await;
    // Then the payload comes anyway, as from an attacker who does not read.
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = 0;
    let mut peak = before;
    while sent < STREAMED_MIB {
        if ws.write_all(&chunk).await.is_err() {
            break; // the server closed the connection: nothing more goes in
        }
        sent += 1;
        peak = peak.max(server.rss_kib());
        tokio::time::sleep(PACE).await;
    }
    peak = peak.max(server.rss_kib());
    let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
    let kind = if fragmented { "continuation" } else { "frame" };
    eprintln!(
        "2^40-byte {kind} header on {carrier}: close {close:?} before any payload; then {sent} MiB of payload went in before the connection ended; server RSS {:.1} -> peak {:.1} MiB (+{growth_mib:.1} MiB)",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
    assert_eq!(
        close,
        Some(1009),
        "no 1009 on the header; the server's RSS grew {growth_mib:.1} MiB while {sent} MiB were streamed"
    );
    assert!(
        growth_mib < BOUND_MIB,
        "server RSS grew {growth_mib:.1} MiB while {sent} MiB were streamed after a refused header"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_frame_is_refused_at_its_header_direct() {
    huge_frame_is_refused_at_its_header("direct", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_frame_is_refused_at_its_header_actix_ws() {
    huge_frame_is_refused_at_its_header("actix-ws", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_continuation_is_refused_at_its_header_direct() {
    huge_frame_is_refused_at_its_header("direct", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_continuation_is_refused_at_its_header_actix_ws() {
    huge_frame_is_refused_at_its_header("actix-ws", true).await;
}
