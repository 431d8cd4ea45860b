//! A WebSocket client for the tests.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// What arrived on a socket.
#[derive(Debug)]
pub enum WsEvent {
    /// A text frame, parsed.
    Json(Value),
    /// The server closed with this code and reason.
    Closed(u16, String),
}

/// One client connection, over plain TCP unless made [`WsClient::over`] another stream (TLS
/// to a reverse proxy).
pub struct WsClient<S = MaybeTlsStream<TcpStream>> {
    stream: WebSocketStream<S>,
}

/// How the handshake was refused: the HTTP status.
pub type Refused = u16;

impl WsClient {
    /// Connects to `path` (e.g. `/ws?token=...`) with extra headers; the HTTP status if the
    /// upgrade was refused.
    pub async fn try_connect(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, Refused> {
        let mut request = format!("ws://{addr}{path}")
            .into_client_request()
            .expect("request");
        for (n, v) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                n.parse().expect("header name");
            request
                .headers_mut()
                .insert(name, HeaderValue::from_str(v).expect("header value"));
        }
        match tokio::time::timeout(crate::WAIT, connect_async(request))
            .await
            .expect("WebSocket connect timed out")
        {
            Ok((stream, _)) => Ok(Self { stream }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("WebSocket connect failed: {e}"),
        }
    }

    /// Connects to `/ws` over a socket with a tiny receive buffer, so that a client that
    /// stops reading back-pressures the server quickly (for slow-consumer tests).
    pub async fn connect_slow(addr: SocketAddr, token: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = socket.connect(addr).await.expect("connect");
        let mut request = format!("ws://{addr}/ws")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        let (stream, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
            .await
            .expect("WebSocket handshake");
        Self { stream }
    }

    /// Connects to `/ws` with the token as `Authorization: Bearer`.
    pub async fn connect(addr: SocketAddr, token: &str) -> Self {
        Self::try_connect(
            addr,
            "/ws",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await
        .unwrap_or_else(|status| panic!("WebSocket refused with {status}"))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    /// Opens the socket at `url` (`wss://host/ws`) over `stream`, already connected (and
    /// TLS-wrapped), with extra headers.
    pub async fn over(stream: S, url: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = url.into_client_request().expect("request");
        for (n, v) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                n.parse().expect("header name");
            request
                .headers_mut()
                .insert(name, HeaderValue::from_str(v).expect("header value"));
        }
        let (stream, _) = tokio::time::timeout(
            crate::WAIT,
            tokio_tungstenite::client_async(request, stream),
        )
        .await
        .expect("WebSocket handshake timed out")
        .unwrap_or_else(|e| panic!("WebSocket handshake to {url} failed: {e}"));
        Self { stream }
    }

    /// Sends a JSON text frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_raw(Message::text(frame.to_string())).await;
    }

    /// Sends frames back to back, written together (as few packets as the socket allows), so
    /// the server finds several of them in one read.
    pub async fn send_together(&mut self, messages: impl IntoIterator<Item = Message>) {
        for message in messages {
            self.stream.feed(message).await.expect("send");
        }
        self.stream.flush().await.expect("flush");
    }

    /// Sends any frame.
    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("send");
    }

    /// Sends any frame; false once the connection is gone.
    pub async fn try_send(&mut self, message: Message) -> bool {
        self.stream.send(message).await.is_ok()
    }

    /// The next text frame or close (pings and pongs are skipped; the client library
    /// answers pings itself).
    pub async fn next_event(&mut self) -> WsEvent {
        loop {
            let next = tokio::time::timeout(crate::WAIT, self.stream.next())
                .await
                .expect("nothing arrived on the socket in time");
            match next {
                Some(Ok(Message::Text(t))) => {
                    return WsEvent::Json(
                        serde_json::from_str(&t).unwrap_or_else(|e| panic!("bad JSON {t}: {e}")),
                    );
                }
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(f) => WsEvent::Closed(u16::from(f.code), f.reason.to_string()),
                        None => WsEvent::Closed(1005, String::new()),
                    };
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return WsEvent::Closed(1006, e.to_string()),
                None => return WsEvent::Closed(1006, "stream ended".into()),
            }
        }
    }

    /// The next text frame (panics on close).
    pub async fn next_json(&mut self) -> Value {
        match self.next_event().await {
            WsEvent::Json(v) => v,
            WsEvent::Closed(code, reason) => panic!("socket closed ({code} {reason})"),
        }
    }

    /// The next frame of type `kind`, skipping others (presence, typing, ...).
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next_json().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Sends `frame` with `"ref": reference` and returns the reply carrying that ref,
    /// skipping unrelated frames.
    pub async fn ask(&mut self, mut frame: Value, reference: &str) -> Value {
        frame["ref"] = Value::from(reference);
        self.send(frame).await;
        loop {
            let v = self.next_json().await;
            if v["ref"] == reference {
                return v;
            }
        }
    }

    /// The next frame of any kind, pings and pongs included (a close ends in `None`).
    pub async fn next_message(&mut self) -> Option<Message> {
        let next = tokio::time::timeout(crate::WAIT, self.stream.next())
            .await
            .expect("nothing arrived on the socket in time");
        next.and_then(Result::ok)
    }

    /// Waits for the server to close; the close code.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            if let WsEvent::Closed(code, reason) = self.next_event().await {
                return (code, reason);
            }
        }
    }

    /// Closes from the client side.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
