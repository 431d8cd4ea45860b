//! The hard frame limit, checked at the frame header.
//!
//! actix-http's WebSocket codec compares a frame's length with its limit only once the whole
//! frame is in its buffer: a header declaring 2^40 bytes made both carriers buffer whatever
//! followed, gigabytes for one socket, before the 1009. Here the declared length is read
//! from the header (2 to 14 bytes), and a frame over the limit, or a continuation that would
//! take its message over it, is refused before any of its payload is kept:
//! - the direct carrier ([`super::raw`]) looks at the header at the front of its read buffer
//!   before asking the codec for a frame ([`check`]);
//! - the actix-ws carrier reads the request payload through [`LimitedPayload`], which follows
//!   the frame boundaries of the byte stream and ends it with an error at such a header
//!   ([`is_over_limit`] recognises that error on the other side of actix-ws).

use actix_http::error::PayloadError;
use actix_web::web::Bytes;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// The longest frame header: 2 bytes, a 64-bit length, a 4-byte mask.
const MAX_HEADER: usize = 14;
/// The opcode of a continuation frame.
const OP_CONTINUATION: u8 = 0x0;
/// Opcodes from here on are control frames (never fragmented, never part of a message).
const OP_FIRST_CONTROL: u8 = 0x8;

/// What a client frame's header says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The frame's opcode.
    opcode: u8,
    /// Whether this is the last frame of its message.
    fin: bool,
    /// Bytes of header (length fields and mask included).
    len: usize,
    /// The payload length the header declares.
    payload: u64,
}

/// The header at the front of `buf`, or `None` while it is incomplete. Only lengths are read:
/// everything else is left to the codec.
pub(crate) fn header(buf: &[u8]) -> Option<Header> {
    let (&first, &second) = (buf.first()?, buf.get(1)?);
    let masked = second & 0x80 != 0;
    let (payload, mut len) = match second & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 10)
        }
        short => (u64::from(short), 2),
    };
    if masked {
        len += 4;
    }
    if buf.len() < len {
        return None;
    }
    Some(Header {
        opcode: first & 0x0F,
        fin: first & 0x80 != 0,
        len,
        payload,
    })
}

/// A frame (or the message it continues) over the hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a WebSocket frame or message over the {limit}-byte limit")]
pub(crate) struct OverLimit {
    /// The limit, bytes.
    pub(crate) limit: usize,
}

/// Refuses `header` when its frame is longer than `limit`, or when it continues a fragmented
/// message that already holds `joined` bytes and would take it over `limit`.
pub(crate) fn check(header: &Header, joined: Option<usize>, limit: usize) -> Result<(), OverLimit> {
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    let joined = match (header.opcode, joined) {
        (OP_CONTINUATION, Some(joined)) => u64::try_from(joined).unwrap_or(u64::MAX),
        _ => 0,
    };
    if header.payload > limit_u64 || joined.saturating_add(header.payload) > limit_u64 {
        return Err(OverLimit { limit });
    }
    Ok(())
}

/// Where [`LimitedPayload`] is in the byte stream.
#[derive(Debug, Default)]
struct Scanner {
    /// The bytes of a header not yet complete.
    header: [u8; MAX_HEADER],
    /// How many of `header` are filled.
    have: usize,
    /// Payload bytes of the current frame still to pass.
    remaining: u64,
    /// The bytes declared so far by the frames of a fragmented message (its first frame had
    /// no FIN); `None` between messages.
    joined: Option<u64>,
}

impl Scanner {
    /// Follows `bytes` through frame headers and payloads, refusing a header over `limit`.
    fn scan(&mut self, mut bytes: &[u8], limit: usize) -> Result<(), OverLimit> {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let skip = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                bytes = &bytes[skip..];
                self.remaining -= skip as u64;
                continue;
            }
            // Copy what may be header; keep only what the header turns out to use.
            let take = (MAX_HEADER - self.have).min(bytes.len());
            self.header[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            let Some(header) = header(&self.header[..self.have + take]) else {
                // Incomplete although fewer than MAX_HEADER bytes: all of `bytes` was taken.
                self.have += take;
                return Ok(());
            };
            let used = header.len - self.have;
            bytes = &bytes[used..];
            self.have = 0;
            let joined = self
                .joined
                .map(|j| usize::try_from(j).unwrap_or(usize::MAX));
            check(&header, joined, limit)?;
            self.remaining = header.payload;
            if header.opcode < OP_FIRST_CONTROL {
                let so_far = match header.opcode {
                    OP_CONTINUATION => self.joined.unwrap_or(0),
                    _ => 0,
                };
                self.joined = (!header.fin).then_some(so_far + header.payload);
            }
        }
        Ok(())
    }
}

/// The request payload of an actix-ws socket, ended with [`PayloadError::Io`] carrying
/// [`OverLimit`] at the first header over the limit. actix-ws reads its payload eagerly into
/// one buffer, so the limit has to be enforced before the bytes reach it.
pub(crate) struct LimitedPayload {
    /// actix-http's payload of the upgrade request.
    inner: actix_http::Payload,
    /// The hard limit of a frame and of a message, bytes.
    limit: usize,
    /// Frame boundaries so far.
    scanner: Scanner,
    /// Set once the limit was hit: the stream has ended.
    refused: bool,
}

impl LimitedPayload {
    /// `inner` checked against `limit`.
    pub(crate) fn new(inner: actix_http::Payload, limit: usize) -> Self {
        Self {
            inner,
            limit,
            scanner: Scanner::default(),
            refused: false,
        }
    }
}

impl futures_util::Stream for LimitedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.refused {
            return Poll::Ready(None);
        }
        let item = ready!(Pin::new(&mut this.inner).poll_next(cx));
        if let Some(Ok(bytes)) = &item
            && let Err(over) = this.scanner.scan(bytes, this.limit)
        {
            this.refused = true;
            return Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                over,
            )))));
        }
        Poll::Ready(item)
    }
}

/// Whether an error out of actix-ws is [`LimitedPayload`]'s refusal (actix-ws wraps payload
/// errors in an `io::Error` of its own).
pub(crate) fn is_over_limit(error: &io::Error) -> bool {
    let Some(payload) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<PayloadError>())
    else {
        return false;
    };
    matches!(payload, PayloadError::Io(e)
        if e.get_ref().is_some_and(|e| e.is::<OverLimit>()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;

    /// A masked client frame header declaring `len` bytes.
    fn frame_header(opcode: u8, fin: bool, len: u64) -> Vec<u8> {
        let mut h = vec![opcode | if fin { 0x80 } else { 0 }];
        if len < 126 {
            h.push(0x80 | len as u8);
        } else if let Ok(len) = u16::try_from(len) {
            h.push(0x80 | 126);
            h.extend_from_slice(&len.to_be_bytes());
        } else {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    #[test]
    fn headers_of_every_length_class() {
        for (len, header_len) in [(0, 6), (125, 6), (126, 8), (65_535, 8), (1 << 40, 14)] {
            let bytes = frame_header(0x1, true, len);
            for cut in 0..bytes.len() {
                assert_eq!(header(&bytes[..cut]), None, "{len}: {cut} bytes");
            }
            let h = header(&bytes).unwrap();
            assert_eq!(
                (h.payload, h.len, h.opcode, h.fin),
                (len, header_len, 1, true)
            );
        }
    }

    #[test]
    fn a_huge_declared_frame_is_refused_at_its_header() {
        let mut scanner = Scanner::default();
        let bytes = frame_header(0x1, true, 1 << 40);
        // Byte by byte: refused as soon as the length is known, not before.
        let (last, first) = bytes.split_last().unwrap();
        for b in first {
            scanner.scan(std::slice::from_ref(b), 1024).unwrap();
        }
        assert_eq!(scanner.scan(&[*last], 1024), Err(OverLimit { limit: 1024 }));
    }

    #[test]
    fn frames_within_the_limit_pass_with_their_payloads() {
        let mut scanner = Scanner::default();
        let mut stream = Vec::new();
        for len in [0u64, 10, 1024, 300, 126] {
            stream.extend(frame_header(0x1, true, len));
            stream.extend(std::iter::repeat_n(0xFF, len as usize));
        }
        // In chunks that cut headers and payloads anywhere.
        for chunk in stream.chunks(7) {
            scanner.scan(chunk, 1024).unwrap();
        }
        assert_eq!(
            (scanner.have, scanner.remaining, scanner.joined),
            (0, 0, None)
        );
    }

    #[test]
    fn fragments_count_towards_their_message() {
        let mut scanner = Scanner::default();
        let mut stream = frame_header(0x1, false, 600);
        stream.extend([0u8; 600]);
        // A ping between fragments is no part of the message.
        stream.extend(frame_header(0x9, true, 4));
        stream.extend([0u8; 4]);
        stream.extend(frame_header(0x0, false, 400));
        stream.extend([0u8; 400]);
        scanner.scan(&stream, 1024).unwrap();
        assert_eq!(scanner.joined, Some(1000));
        // 1000 + 100 > 1024: refused at the header.
        assert!(scanner.scan(&frame_header(0x0, true, 100), 1024).is_err());
        // A whole message of exactly the limit passes, and the next one starts from zero.
        let mut scanner = Scanner::default();
        let mut stream = frame_header(0x2, false, 1000);
        stream.extend([0u8; 1000]);
        stream.extend(frame_header(0x0, true, 24));
        stream.extend([0u8; 24]);
        stream.extend(frame_header(0x1, false, 1024));
        stream.extend([0u8; 1024]);
        scanner.scan(&stream, 1024).unwrap();
        assert_eq!(scanner.joined, Some(1024));
    }

    #[test]
    fn check_counts_what_is_joined() {
        let h = header(&frame_header(0x0, true, 100)).unwrap();
        assert!(check(&h, Some(924), 1024).is_ok());
        assert!(check(&h, Some(925), 1024).is_err());
        // A data frame starts a new message: what was joined does not count.
        let h = header(&frame_header(0x1, true, 100)).unwrap();
        assert!(check(&h, Some(1000), 1024).is_ok());
    }

    #[test]
    fn the_refusal_is_recognised_through_actix_ws_wrapping() {
        let refusal = PayloadError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            OverLimit { limit: 1 },
        ));
        assert!(is_over_limit(&io::Error::other(refusal)));
        assert!(!is_over_limit(&io::Error::other(PayloadError::Overflow)));
        assert!(!is_over_limit(&io::Error::other("other")));
    }
}
