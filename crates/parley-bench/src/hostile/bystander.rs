//! The bystanders: three users take turns sending to a room (one message every 50 ms in all,
//! each user one every 150 ms, under the default per-user message budget of 10/s), and a
//! fourth user in the room receives. Latency is measured from each message's due time (so a
//! stalled send is charged, not skipped): delivery at the receiver, and the sender's own copy
//! (the acknowledgement). They run on a runtime and thread of their own, so the flood's tasks
//! in this process never delay their reads.

use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Senders: each sends every `SENDERS × STEP`.
pub const SENDERS: usize = 3;
/// Time between two bystander messages (from any sender).
const STEP: Duration = Duration::from_millis(50);

/// Who the bystanders are.
#[derive(Clone)]
pub struct Config {
    /// Server address.
    pub server: String,
    /// The room they chat in.
    pub room: String,
    /// Tokens of the senders.
    pub senders: Vec<String>,
    /// Token of the receiver.
    pub receiver: String,
    /// Address the bystanders connect from.
    pub local: IpAddr,
    /// The bystanders' user names (their own presence is not the flood's).
    pub names: Vec<String>,
}

/// Latency figures, ms.
#[derive(Debug, Default, Serialize, Clone, Copy)]
pub struct Lat {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Highest.
    pub max: f64,
    /// Samples.
    pub count: u64,
}

/// What the bystanders saw during one probe.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    /// Messages sent.
    pub sent: u64,
    /// Acknowledgements (own copies) received.
    pub acked: u64,
    /// Messages the receiver got.
    pub delivered: u64,
    /// Sent but never delivered (after a 1 s drain).
    pub lost: u64,
    /// Send → delivery at the receiver.
    pub latency_ms: Lat,
    /// Send → acknowledgement at the sender.
    pub ack_ms: Lat,
    /// Error frames the bystanders got, by code.
    pub errors: BTreeMap<String, u64>,
    /// Bystander sockets the server closed, by close code.
    pub closed: BTreeMap<String, u64>,
    /// Frames of the flood that reached the receiver, by type (typing, signal, presence, ...).
    pub flood_frames_at_receiver: BTreeMap<String, u64>,
}

/// Running bystanders.
pub struct Running {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Outcome>>,
}

impl Running {
    /// Stops sending, waits 1 s for the last deliveries, returns what was seen.
    pub fn finish(self) -> Result<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => bail!("the bystander thread panicked"),
        }
    }
}

/// Connects the bystanders, joins the room, and starts sending. Returns once they are
/// connected and the first message is due.
pub fn start(cfg: Config) -> Result<Running> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("bystanders".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(run(cfg, ready_tx, stop2))
        })?;
    match ready_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => Ok(Running { stop, thread }),
        Ok(Err(e)) => {
            stop.store(true, Ordering::SeqCst);
            Err(e.context("bystanders could not connect"))
        }
        Err(_) => {
            stop.store(true, Ordering::SeqCst);
            bail!("bystanders did not connect within 30 s")
        }
    }
}

use super::wire;

/// How long a bystander's socket may take to join.
const JOIN_WITHIN: Duration = Duration::from_secs(20);

fn hist() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 120_000_000, 3)?)
}

fn lat(h: &Histogram<u64>) -> Lat {
    let ms = |us: u64| us as f64 / 1000.0;
    Lat {
        p50: ms(h.value_at_quantile(0.5)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
        count: h.len(),
    }
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    *map.lock().entry(key.to_owned()).or_default() += 1;
}

#[derive(Default)]
struct Shared {
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    closed: Mutex<BTreeMap<String, u64>>,
    flood: Mutex<BTreeMap<String, u64>>,
}

async fn run(
    cfg: Config,
    ready: std::sync::mpsc::Sender<Result<()>>,
    stop: Arc<AtomicBool>,
) -> Result<Outcome> {
    let connect = async {
        let rx = wire::open_joined(
            &cfg.server,
            cfg.local,
            &cfg.receiver,
            &cfg.room,
            JOIN_WITHIN,
        )
        .await?;
        let mut txs = Vec::new();
        for t in &cfg.senders {
            txs.push(wire::open_joined(&cfg.server, cfg.local, t, &cfg.room, JOIN_WITHIN).await?);
        }
        Ok::<_, anyhow::Error>((rx, txs))
    };
    let (rx, txs) = match connect.await {
        Ok(x) => x,
        Err(e) => {
            let msg = format!("{e:#}");
            let _ = ready.send(Err(e));
            bail!("{msg}");
        }
    };
    let shared = Arc::new(Shared::default());
    let delivery = Arc::new(Mutex::new(hist()?));
    let acks = Arc::new(Mutex::new(hist()?));
    let epoch = Instant::now() + Duration::from_millis(20);
    let due = move |k: usize, n: u64| epoch + STEP * k as u32 + STEP * (SENDERS as u32) * n as u32;

    // The receiver.
    let receiver = {
        let shared = shared.clone();
        let names = cfg.names.clone();
        let delivery = delivery.clone();
        tokio::spawn(async move {
            let (_sink, mut stream) = rx.split();
            while let Some(frame) = stream.next().await {
                match frame {
                    Ok(Message::Text(t)) => {
                        let now = Instant::now();
                        let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else {
                            continue;
                        };
                        let kind = v["type"].as_str().unwrap_or("?");
                        let body = v["body"].as_str().unwrap_or("");
                        if kind == "message" && body.starts_with("~hb~") {
                            if let Some(d) = parse_body(body) {
                                let at = due(d.0, d.1);
                                let us = now.saturating_duration_since(at).as_micros() as u64;
                                let _ = delivery.lock().record(us.max(1));
                                shared.delivered.fetch_add(1, Ordering::Relaxed);
                            }
                        } else if kind == "error" {
                            bump(&shared.errors, v["code"].as_str().unwrap_or("?"));
                        } else if !names.iter().any(|n| v["user"] == n.as_str()) {
                            bump(&shared.flood, kind);
                        }
                    }
                    Ok(Message::Close(c)) => {
                        let code =
                            c.map_or("no code".to_owned(), |c| u16::from(c.code).to_string());
                        bump(&shared.closed, &format!("receiver {code}"));
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        bump(&shared.closed, "receiver reset");
                        break;
                    }
                }
            }
        })
    };

    let mut tasks = Vec::new();
    for (k, ws) in txs.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let shared2 = shared.clone();
        let acks = acks.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                match frame {
                    Ok(Message::Text(t)) => {
                        let now = Instant::now();
                        let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else {
                            continue;
                        };
                        let kind = v["type"].as_str().unwrap_or("?");
                        let reference = v["ref"].as_str().unwrap_or("");
                        if let Some(n) = reference
                            .strip_prefix('h')
                            .and_then(|r| r.parse::<u64>().ok())
                        {
                            if kind == "message" {
                                let us =
                                    now.saturating_duration_since(due(k, n)).as_micros() as u64;
                                let _ = acks.lock().record(us.max(1));
                                shared2.acked.fetch_add(1, Ordering::Relaxed);
                            } else if kind == "error" {
                                bump(&shared2.errors, v["code"].as_str().unwrap_or("?"));
                            }
                        } else if kind == "error" {
                            bump(&shared2.errors, v["code"].as_str().unwrap_or("?"));
                        }
                    }
                    Ok(Message::Close(c)) => {
                        let code =
                            c.map_or("no code".to_owned(), |c| u16::from(c.code).to_string());
                        bump(&shared2.closed, &format!("sender {code}"));
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        bump(&shared2.closed, "sender reset");
                        break;
                    }
                }
            }
        }));
        let shared = shared.clone();
        let stop = stop.clone();
        let room = cfg.room.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let at = due(k, n);
                tokio::time::sleep_until(at.into()).await;
                let us = at.duration_since(epoch).as_micros();
                let frame = format!(
                    r#"{{"type":"send","room":"{room}","body":"~hb~{us}~{k}~{n}~","ref":"h{n}"}}"#
                );
                if sink.send(Message::text(frame)).await.is_err() {
                    break;
                }
                shared.sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            // Keep the socket open through the drain.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            let _ = sink.close().await;
        }));
    }
    let _ = ready.send(Ok(()));
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    receiver.abort();
    for t in &tasks {
        t.abort();
    }
    let sent = shared.sent.load(Ordering::Relaxed);
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let out = Outcome {
        sent,
        acked: shared.acked.load(Ordering::Relaxed),
        delivered,
        lost: sent.saturating_sub(delivered),
        latency_ms: lat(&delivery.lock()),
        ack_ms: lat(&acks.lock()),
        errors: shared.errors.lock().clone(),
        closed: shared.closed.lock().clone(),
        flood_frames_at_receiver: shared.flood.lock().clone(),
    };
    Ok(out)
}

/// `~hb~<µs>~<sender>~<n>~` → (sender, n).
fn parse_body(body: &str) -> Option<(usize, u64)> {
    let mut parts = body.strip_prefix("~hb~")?.split('~');
    let _us = parts.next()?;
    let k = parts.next()?.parse().ok()?;
    let n = parts.next()?.parse().ok()?;
    Some((k, n))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;

    #[test]
    fn bodies_name_their_sender_and_sequence() {
        assert_eq!(parse_body("~hb~123~2~17~"), Some((2, 17)));
        assert_eq!(parse_body("flood 3"), None);
    }
}
