//! Message-append throughput: N concurrent writers appending to one room for a fixed time,
//! on a fresh PostgreSQL schema (at `DATABASE_URL`) and/or a fresh SQLite file.
//!
//! ```text
//! cargo run --release -p parley-store --features testing --example append_bench -- \
//!     --backend both --mode both --writers 1,8,64 --seconds 5
//! ```
//!
//! `single`: each append is one `Store::append_message` with a unique client id
//! (`INSERT ... ON CONFLICT DO NOTHING RETURNING`: one round trip, one commit).
//! `batch`: the same appends through an `AppendBatcher` (group commit, default options).

#![allow(clippy::print_stdout)]

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use parley_domain::{ClientMsgId, MessageBody, RoomKind, RoomName, Topic, UserName};
use parley_store::testing::TestDb;
use parley_store::{
    AppendBatcher, BatchOptions, NewMessage, NewRoom, NewUser, Store, StoreOptions,
};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
struct Args {
    /// `postgres`, `sqlite` or `both`.
    #[arg(long, default_value = "both")]
    backend: String,
    /// Comma-separated writer counts.
    #[arg(long, default_value = "1,8,64", value_delimiter = ',')]
    writers: Vec<usize>,
    /// Seconds per run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Connection pool size (the store's default is 16).
    #[arg(long, default_value_t = 16)]
    pool: usize,
    /// `single` (`Store::append_message`), `batch` (`AppendBatcher`, group commit) or `both`.
    #[arg(long, default_value = "both")]
    mode: String,
    /// Batch mode: writer tasks (batches in flight at once).
    #[arg(long, default_value_t = BatchOptions::default().writers)]
    batch_writers: usize,
    /// Batch mode: append directly while fewer than this many appends are under way.
    #[arg(long, default_value_t = BatchOptions::default().direct_below)]
    direct_below: usize,
    /// Batch mode: most messages per statement.
    #[arg(long, default_value_t = BatchOptions::default().max_batch)]
    max_batch: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let opts = StoreOptions {
        max_connections: args.pool,
        ..StoreOptions::default()
    };
    println!(
        "| backend | mode | writers | pool | appends | appends/s | p50 ms | p99 ms | max ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let modes: &[bool] = match args.mode.as_str() {
        "single" => &[false],
        "batch" => &[true],
        _ => &[false, true],
    };
    let bopts = BatchOptions {
        writers: args.batch_writers,
        max_batch: args.max_batch,
        direct_below: args.direct_below,
        ..BatchOptions::default()
    };
    for &batch in modes {
        for &writers in &args.writers {
            if matches!(args.backend.as_str(), "postgres" | "both") {
                let db = TestDb::postgres_with(&opts).await.context("PostgreSQL")?;
                run(
                    "postgres",
                    db.store(),
                    batch.then_some(bopts),
                    writers,
                    args.pool,
                    args.seconds,
                )
                .await?;
            }
            if matches!(args.backend.as_str(), "sqlite" | "both") {
                let db = TestDb::sqlite_with(&opts).await.context("SQLite")?;
                run(
                    "sqlite",
                    db.store(),
                    batch.then_some(bopts),
                    writers,
                    args.pool,
                    args.seconds,
                )
                .await?;
            }
        }
    }
    Ok(())
}

async fn run(
    backend: &str,
    store: &Store,
    batch: Option<BatchOptions>,
    writers: usize,
    pool: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let mut users = Vec::new();
    for i in 0..writers {
        users.push(
            store
                .create_user(&NewUser {
                    username: UserName::parse(&format!("writer{i}"))?,
                    email: None,
                    display_name: None,
                    password_hash: "x".into(),
                    is_staff: false,
                    is_guest: false,
                })
                .await?,
        );
    }
    let room = store
        .create_room(&NewRoom {
            name: RoomName::parse("bench")?,
            kind: RoomKind::Public,
            creator: users[0].id,
            topic: Topic::default(),
        })
        .await?;
    // Warm the pool so connection set-up is not measured.
    store.ping().await?;
    let batcher = batch.map(|opts| AppendBatcher::spawn(store.clone(), opts));

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let body = MessageBody::parse("a chat message of a typical length, some sixty characters")?;
    let tasks: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(w, user)| {
            let store = store.clone();
            let room = room.clone();
            let body = body.clone();
            let batcher = batcher.clone();
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new(3)?;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let msg = NewMessage {
                        room_id: room.id,
                        room: room.name.clone(),
                        sender_id: user.id,
                        sender: user.username.clone(),
                        sender_display_name: None,
                        sender_is_guest: false,
                        body: body.clone(),
                        client_id: Some(ClientMsgId::parse(&format!("w{w}-{n}"))?),
                        reply_to: None,
                        mentions: Vec::new(),
                    };
                    let t = Instant::now();
                    match &batcher {
                        Some(b) => b.append(msg).await?,
                        None => store.append_message(&msg).await?,
                    };
                    hist.record(t.elapsed().as_micros() as u64)?;
                    n += 1;
                }
                anyhow::Ok(hist)
            })
        })
        .collect();
    let started = Instant::now();
    let mut total = Histogram::<u64>::new(3)?;
    for t in tasks {
        total.add(t.await??)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ms = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "| {backend} | {} | {writers} | {pool} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
        batch.map_or_else(
            || "single".to_owned(),
            |b| format!(
                "batch (≤{} × {}, direct <{})",
                b.max_batch, b.writers, b.direct_below
            )
        ),
        total.len(),
        total.len() as f64 / elapsed,
        ms(0.5),
        ms(0.99),
        total.max() as f64 / 1000.0
    );
    Ok(())
}
