//! The limit reference: a bare tokio WebSocket fan-out server.
//!
//! No authentication, no JSON, no persistence: a client connects to any path (the path is the
//! room), and every text frame it sends is relayed unchanged to every connection on that path,
//! the sender included, as the Django tutorial's server does. The frame is shared, never
//! copied per recipient (`Utf8Bytes` is reference-counted). Each room is a
//! `tokio::sync::broadcast` channel; a receiver that lags behind its capacity counts as loss
//! in the load generator, so the capacity is generous.

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames one room may hold for its slowest member (slots are allocated up front; the load
/// generator keeps at most senders × window frames in flight per room).
const ROOM_CAPACITY: usize = 256;

type Rooms = Arc<Mutex<HashMap<String, broadcast::Sender<Utf8Bytes>>>>;

/// Serves on `bind` until the process is killed.
pub async fn serve(bind: &str) -> Result<()> {
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let rooms: Rooms = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let _ = connection(stream, rooms).await;
        });
    }
}

/// WebSocket buffers kept small: tungstenite's defaults (128 KiB read chunks and write
/// buffer) would dominate an idle connection's memory.
pub fn lean_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

// The handshake callback's error type is tungstenite's, not ours.
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream, rooms: Rooms) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut path = String::new();
    let ws = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        |req: &Request, resp: Response| {
            path = req.uri().path().to_owned();
            Ok(resp)
        },
        Some(lean_config()),
    )
    .await?;
    let tx = rooms
        .lock()
        .entry(path)
        .or_insert_with(|| broadcast::channel(ROOM_CAPACITY).0)
        .clone();
    let mut rx = tx.subscribe();
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let _ = tx.send(text);
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            outgoing = rx.recv() => match outgoing {
                Ok(text) => sink.send(Message::Text(text)).await?,
                // Lagged: the frames are lost (the load generator reports it); carry on.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    Ok(())
}
