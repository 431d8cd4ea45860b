//! The lean chat socket of [`crate::serve`]: actix-http hands over the TCP stream of every
//! HTTP/1.1 upgrade request (its `upgrade` hook), and the connection runs on it directly.
//!
//! Why not actix-ws here: an actix-ws socket stays inside actix-http's HTTP/1 dispatcher, which
//! keeps an 8 KiB read and an 8 KiB write buffer per connection for its whole life (a grown
//! write buffer up to 128 KiB), and every frame takes two hops (connection task → actix-ws
//! channel → dispatcher) and is copied twice before its own `send()`. Here a connection holds
//! no buffer while idle (the read buffer is allocated when bytes arrive and freed once they
//! are parsed), and deliveries that are ready together go out in one `writev` straight from the
//! shared, once-rendered frame text. Frames are still parsed by actix-http's WebSocket codec;
//! [`crate::configure`] keeps the actix-ws socket for applications that mount Parley on their
//! own `HttpServer`.

use super::frame_limit;
use crate::conn_limit::LimitedStream;
use crate::error::ApiError;
use crate::state::AppState;
use actix_codec::{Decoder, Framed};
use actix_http::ws::{Codec, Frame, Item, ProtocolError, hash_key, verify_handshake};
use actix_http::{Request, h1};
use actix_web::ResponseError as _;
use actix_web::rt::net::TcpStream;
use actix_web::web::BytesMut;
use parley_core::{ClientMessage, CloseReason, Connection, Gone, ReadError, Socket};
use parley_domain::protocol::Dialect;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// WebSocket opcodes this side writes.
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Bytes read per system call (a larger frame takes several).
const READ_CHUNK: usize = 4096;

/// How long a closed connection waits for the client to finish its side of the close.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Answers one upgrade request: the chat socket on `/ws` and `/ws/chat/{room}` (the
/// connection to run, the 101 already sent), or an HTTP error response (when the path is
/// wrong or the request is refused; `None`).
pub(crate) async fn accept(
    req: Request,
    framed: Framed<LimitedStream, h1::Codec>,
    state: AppState,
) -> Option<(Connection, RawSocket)> {
    let parts = framed.into_parts();
    // The HTTP connection limits end here: the socket has its own.
    let mut io = parts.io.into_inner();
    // actix-http's buffers (8 KiB each) are dropped: the socket keeps only the bytes a client
    // sent after its handshake without waiting for the answer (rare), in a buffer their size.
    let leftover = match parts.read_buf.is_empty() {
        true => BytesMut::new(),
        false => BytesMut::from(&parts.read_buf[..]),
    };
    drop(parts.read_buf);
    drop(parts.write_buf);
    let path = req.path().to_owned();
    // The access log line the HTTP middleware writes for other requests (never the query
    // string: it may hold the token).
    let id = req
        .head()
        .headers()
        .get(&crate::middleware::REQUEST_ID)
        .and_then(crate::middleware::usable)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let client = state
        .client_ip(req.head())
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %path,
        client = %client
    );
    let started = std::time::Instant::now();
    let log = |status: u16| {
        let _entered = span.enter();
        let ms = crate::middleware::elapsed_ms(started);
        tracing::info!(status, ms, "request");
    };
    let opened = match super::dialect_of(&path, req.uri().query()) {
        Some(Ok(dialect)) => open(&req, &state, dialect).await,
        Some(Err(e)) => Err(e),
        None => Err(ApiError::not_found(format!("no WebSocket at {path}"))),
    };
    let session = match opened {
        Ok(opened) => opened,
        Err(e) => {
            tracing::debug!(%path, code = %e.code(), "WebSocket upgrade refused");
            log(e.status_code().as_u16());
            let _ = write_error(&mut io, &e, &id).await;
            return None;
        }
    };
    let key = req
        .head()
        .headers()
        .get(actix_http::header::SEC_WEBSOCKET_KEY)
        .map(|k| hash_key(k.as_bytes()));
    let accept = key?;
    let mut response = Vec::with_capacity(160);
    response.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: ",
    );
    response.extend_from_slice(&accept);
    response.extend_from_slice(b"\r\n\r\n");
    if io.write_all(&response).await.is_err() {
        // The session's `Drop` schedules its clean-up.
        return None;
    }
    log(101);
    drop(req);
    let engine_max = state.engine.config().max_frame_bytes;
    let socket = RawSocket::new(io, leftover, state.config.hard_frame_limit(engine_max));
    let connection = Connection::new(session, state.config.heartbeat);
    Some((connection, socket))
}

/// Admits the request and opens its engine session (the same checks, in the same order, as
/// the actix-ws route), after checking it is a WebSocket handshake.
async fn open(
    req: &Request,
    state: &AppState,
    dialect: Dialect,
) -> Result<parley_core::Session, ApiError> {
    let (user, grant) = super::admit(req.head(), state).await?;
    verify_handshake(req.head()).map_err(super::not_a_websocket)?;
    let mut session = state.engine.connect_with(user, dialect).await?;
    session.authorize(grant);
    Ok(session)
}

/// Writes `error` as a complete HTTP/1.1 response (status, headers, JSON body, the request
/// id as every other answer carries it) and closes.
async fn write_error(io: &mut TcpStream, error: &ApiError, request_id: &str) -> io::Result<()> {
    let response = error.error_response();
    let status = response.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        if let Ok(value) = value.to_str() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .unwrap_or_default();
    head.push_str(&format!(
        "{}: {request_id}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        crate::middleware::REQUEST_ID,
        body.len()
    ));
    io.write_all(head.as_bytes()).await?;
    io.write_all(&body).await?;
    io.shutdown().await
}

/// A WebSocket on a taken-over TCP stream.
///
/// Readiness is awaited with `poll_read_ready`/`poll_write_ready`, not `readable()`: those
/// replace the waker actix-http's connection task left in the stream's registration. With
/// `readable()` that stale waker stays there, and with it the finished connection task's
/// memory (≈ 8 KiB, sized for any HTTP request) for as long as the socket is open.
pub(crate) struct RawSocket {
    io: TcpStream,
    /// Bytes read but not yet parsed; no allocation while empty.
    read: BytesMut,
    /// actix-http's frame parser (server side: client frames must be masked).
    codec: Codec,
    /// A fragmented message being joined: whether it is text, and its bytes so far.
    partial: Option<(bool, Vec<u8>)>,
    /// The largest frame and the largest joined message.
    max_size: usize,
}

impl RawSocket {
    /// Moves the stream to the I/O driver of the runtime whose context this is called in
    /// (`Handle::enter`). The socket's loop
    /// runs on the application runtime (where the engine and the store live) rather than on
    /// the actix worker that accepted it: every frame would otherwise cross threads twice,
    /// to be handled and back, and every wake-up would come from the worker's driver.
    pub(crate) fn moved_to_current_runtime(mut self) -> io::Result<Self> {
        let std = self.io.into_std()?;
        self.io = TcpStream::from_std(std)?;
        Ok(self)
    }

    fn new(io: TcpStream, leftover: BytesMut, max_size: usize) -> Self {
        Self {
            io,
            read: leftover,
            codec: Codec::new().max_size(max_size),
            partial: None,
            max_size,
        }
    }

    /// Turns a frame into a whole message, joining continuations; `None` while a fragmented
    /// message is incomplete.
    fn on_frame(&mut self, frame: Frame) -> Result<Option<ClientMessage>, ReadError> {
        let data_frame_mid_message =
            || ReadError::Protocol("a new message began inside a fragmented one".to_owned());
        Ok(match frame {
            Frame::Text(bytes) => {
                if self.partial.is_some() {
                    return Err(data_frame_mid_message());
                }
                Some(ClientMessage::Text(utf8(bytes.to_vec())?))
            }
            Frame::Binary(_) => {
                if self.partial.is_some() {
                    return Err(data_frame_mid_message());
                }
                Some(ClientMessage::Binary)
            }
            Frame::Ping(bytes) => Some(ClientMessage::Ping(bytes.to_vec())),
            Frame::Pong(_) => Some(ClientMessage::Pong),
            Frame::Close(_) => Some(ClientMessage::Close),
            Frame::Continuation(item) => match item {
                Item::FirstText(_) | Item::FirstBinary(_) if self.partial.is_some() => {
                    return Err(data_frame_mid_message());
                }
                Item::FirstText(bytes) => {
                    self.partial = Some((true, bytes.to_vec()));
                    None
                }
                Item::FirstBinary(bytes) => {
                    self.partial = Some((false, bytes.to_vec()));
                    None
                }
                Item::Continue(bytes) => {
                    self.join(&bytes)?;
                    None
                }
                Item::Last(bytes) => {
                    self.join(&bytes)?;
                    match self.partial.take() {
                        Some((true, joined)) => Some(ClientMessage::Text(utf8(joined)?)),
                        Some((false, _)) => Some(ClientMessage::Binary),
                        None => None,
                    }
                }
            },
        })
    }

    /// Appends a continuation to the message being joined.
    fn join(&mut self, bytes: &[u8]) -> Result<(), ReadError> {
        let Some((_, joined)) = self.partial.as_mut() else {
            return Err(ReadError::Protocol(
                "a continuation frame without a first frame".to_owned(),
            ));
        };
        if joined.len() + bytes.len() > self.max_size {
            return Err(ReadError::Overflow);
        }
        joined.extend_from_slice(bytes);
        Ok(())
    }
}

/// `bytes` as a `String`, or the close verdict for invalid text.
fn utf8(bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|_| ReadError::InvalidUtf8)
}

/// The header of an unmasked (server-to-client) final frame: its bytes and length.
fn frame_header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut header = [0u8; 10];
    header[0] = 0x80 | opcode;
    if let Ok(short) = u8::try_from(len)
        && short < 126
    {
        header[1] = short;
        (header, 2)
    } else if let Ok(medium) = u16::try_from(len) {
        header[1] = 126;
        header[2..4].copy_from_slice(&medium.to_be_bytes());
        (header, 4)
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (header, 10)
    }
}

impl RawSocket {
    /// Appends what the socket holds (up to [`READ_CHUNK`] bytes) to the read buffer, through
    /// a buffer on the stack. Reserving in the read buffer before reading would keep
    /// `READ_CHUNK` bytes on every idle connection: readiness stays cached until a read finds
    /// nothing, so the read after each frame finds nothing, and the connection then waits
    /// with the buffer reserved (4 KiB of an idle connection's ≈ 10, heaptrack).
    fn read_available(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; READ_CHUNK];
        let n = self.io.try_read(&mut chunk)?;
        self.read.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Writes `frames` (opcode, payload) with as few system calls as the socket allows.
    async fn write_frames<'a>(
        &mut self,
        frames: impl ExactSizeIterator<Item = (u8, &'a [u8])> + Clone,
    ) -> Result<(), Gone> {
        // Headers first (the slices borrow them), then header and payload slices in turn.
        let headers: Vec<([u8; 10], usize)> = frames
            .clone()
            .map(|(op, payload)| frame_header(op, payload.len()))
            .collect();
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(headers.len() * 2);
        for ((header, len), (_, payload)) in headers.iter().zip(frames) {
            slices.push(IoSlice::new(&header[..*len]));
            if !payload.is_empty() {
                slices.push(IoSlice::new(payload));
            }
        }
        let mut rest: &mut [IoSlice<'_>] = &mut slices;
        while !rest.is_empty() {
            match self.io.try_write_vectored(rest) {
                Ok(0) => return Err(Gone),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    poll_fn(|cx| self.io.poll_write_ready(cx))
                        .await
                        .map_err(|_| Gone)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Gone),
            }
        }
        Ok(())
    }
}

impl Socket for RawSocket {
    async fn recv(&mut self) -> Option<Result<ClientMessage, ReadError>> {
        loop {
            // Parse what is buffered first; read only when it holds no whole frame. Nothing
            // here awaits between taking bytes off the socket and buffering them, so dropping
            // this future loses nothing.
            // The codec checks a frame's length only once all of it is buffered: refuse an
            // oversized one at its header, before keeping any of its payload.
            if let Some(header) = frame_limit::header(&self.read) {
                let joined = self.partial.as_ref().map(|(_, joined)| joined.len());
                if frame_limit::check(&header, joined, self.max_size).is_err() {
                    return Some(Err(ReadError::Overflow));
                }
            }
            match self.codec.decode(&mut self.read) {
                Ok(Some(frame)) => {
                    if self.read.is_empty() {
                        // Idle connections keep no read buffer.
                        self.read = BytesMut::new();
                    }
                    match self.on_frame(frame) {
                        Ok(Some(message)) => return Some(Ok(message)),
                        Ok(None) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
                Ok(None) => {}
                Err(ProtocolError::Overflow) => return Some(Err(ReadError::Overflow)),
                Err(e) => return Some(Err(ReadError::Protocol(e.to_string()))),
            }
            if poll_fn(|cx| self.io.poll_read_ready(cx)).await.is_err() {
                return None;
            }
            match self.read_available() {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    async fn send_text(&mut self, frames: &[Arc<str>]) -> Result<(), Gone> {
        self.write_frames(frames.iter().map(|f| (OP_TEXT, f.as_bytes())))
            .await
    }

    async fn ping(&mut self, payload: &[u8]) -> Result<(), Gone> {
        self.write_frames(std::iter::once((OP_PING, control_payload(payload))))
            .await
    }

    async fn pong(&mut self, payload: &[u8]) -> Result<(), Gone> {
        self.write_frames(std::iter::once((OP_PONG, control_payload(payload))))
            .await
    }

    async fn close(mut self, reason: CloseReason) {
        let mut payload = Vec::new();
        payload.extend_from_slice(&reason.code().to_be_bytes());
        let text = reason.text();
        // A control frame carries at most 125 bytes: 2 for the code, 123 of text.
        let mut end = text.len().min(123);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&text.as_bytes()[..end]);
        if self
            .write_frames(std::iter::once((OP_CLOSE, payload.as_slice())))
            .await
            .is_err()
        {
            return;
        }
        // Half-close, then read until the client closes too: closing a socket with unread
        // bytes in it makes the kernel send a reset, which can destroy the close frame before
        // the client reads it.
        let _ = self.io.shutdown().await;
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            let mut sink = [0u8; 1024];
            loop {
                if poll_fn(|cx| self.io.poll_read_ready(cx)).await.is_err() {
                    return;
                }
                match self.io.try_read(&mut sink) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                }
            }
        })
        .await;
    }
}

/// A control frame's payload, cut to the 125 bytes RFC 6455 allows.
fn control_payload(payload: &[u8]) -> &[u8] {
    &payload[..payload.len().min(125)]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;
    use actix_http::ws::{Codec, Frame};

    /// What a client's parser makes of a frame written with [`frame_header`].
    fn parse(opcode: u8, payload: &[u8]) -> Frame {
        let (header, len) = frame_header(opcode, payload.len());
        let mut bytes = BytesMut::from(&header[..len]);
        bytes.extend_from_slice(payload);
        let frame = Codec::new()
            .client_mode()
            .max_size(1 << 20)
            .decode(&mut bytes)
            .unwrap()
            .unwrap();
        assert!(bytes.is_empty(), "the whole frame is consumed");
        frame
    }

    /// An idle connection holds no read buffer, also once a read has found nothing (readiness
    /// stays cached until one does, so the read after every frame finds nothing). Before, that
    /// empty read kept 4 KiB reserved on every idle connection.
    #[tokio::test]
    async fn an_idle_connection_keeps_no_read_buffer() {
        use actix_codec::Encoder as _;
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut socket = RawSocket::new(server, BytesMut::new(), 1 << 16);
        for text in ["one", "two"] {
            let mut frame = BytesMut::new();
            Codec::new()
                .client_mode()
                .encode(actix_http::ws::Message::Text(text.into()), &mut frame)
                .unwrap();
            client.write_all(&frame).await.unwrap();
            match socket.recv().await {
                Some(Ok(ClientMessage::Text(got))) => assert_eq!(got, text),
                other => panic!("{other:?}"),
            }
            // Waiting for a next frame, which does not come.
            let waited = tokio::time::timeout(Duration::from_millis(50), socket.recv()).await;
            assert!(waited.is_err(), "nothing more was sent");
            assert_eq!(socket.read.capacity(), 0, "read buffer kept after {text:?}");
        }
    }

    #[test]
    fn frame_headers_parse_at_every_length_class() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 200_000] {
            let payload = "x".repeat(len);
            match parse(OP_TEXT, payload.as_bytes()) {
                Frame::Text(bytes) => assert_eq!(bytes.len(), len),
                other => panic!("length {len}: {other:?}"),
            }
        }
        assert!(matches!(parse(OP_PING, b"hi"), Frame::Ping(b) if &b[..] == b"hi"));
        assert!(matches!(parse(OP_PONG, b""), Frame::Pong(b) if b.is_empty()));
        let mut close = 4000u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"slow");
        match parse(OP_CLOSE, &close) {
            Frame::Close(Some(reason)) => {
                assert_eq!(u16::from(reason.code), 4000);
                assert_eq!(reason.description.as_deref(), Some("slow"));
            }
            other => panic!("{other:?}"),
        }
    }
}
