//! `parley-bench`: Parley's load generator and the bare fan-out reference server.
//!
//! Layout:
//! - `load`: provisioning (accounts, tokens, rooms), connecting, windowed (or paced) sending,
//!   tracking every (member, message) pair and its end-to-end latency, the report;
//! - `bare`: the limit reference, a tokio-tungstenite broadcast server with nothing else;
//! - `http`: a tiny keep-alive HTTP/1.1 client for provisioning;
//! - `procfs`: a server's resident memory from `/proc/<pid>/status`;
//! - `hostile`: hostile clients, one probe after another, against a running server while
//!   bystanders chat (`scripts/hostile.sh` runs it for a before/after table);
//! - `scale`: many server processes, tens of thousands of sockets from several generator
//!   processes, presence, delivery and a rolling restart checked (`scripts/scale.sh`).
//!
//! It is a tool, never part of the server binary, and depends on no Parley crate: it speaks
//! to servers over loopback only, as any client would. Everything it does is bounded in count
//! and time, and it stops by itself. `scripts/bench.sh` runs the whole comparison.

// A command-line tool: its output is the report.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bare;
mod hostile;
mod http;
mod load;
mod procfs;
mod scale;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Parley's load generator.
#[derive(Parser)]
#[command(name = "parley-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one load against a server and print the report (human lines, then one JSON line).
    Run(load::Plan),
    /// Hostile clients against a running server, one probe after another, while bystanders
    /// chat: per probe the bystanders' latency, the server's memory and descriptors, and what
    /// the flood achieved (one JSON line per probe; `--table` adds a markdown table). Exit code
    /// 4 when the server died (the probes after it did not run).
    Hostile(hostile::Plan),
    /// Many server processes of one cluster, many sockets from several generator processes
    /// (each on its own loopback address): every socket joined, presence on every server,
    /// delivery in rooms spanning every process, memory per socket and a rolling restart
    /// checked (progress on stderr, one JSON line on stdout). Exit code 3 when a check failed.
    Scale(scale::Plan),
    /// One generator of `scale` (started by it; commands on stdin, answers on stdout).
    #[command(hide = true)]
    ScaleWorker(scale::worker::WorkerArgs),
    /// Serve the bare fan-out reference (no auth, no JSON, no persistence) until killed.
    BareServer {
        /// Listen address (loopback).
        #[arg(long, default_value = "127.0.0.1:9100")]
        bind: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("parley-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<u8> = rt.block_on(async {
        match cli.command {
            Command::BareServer { bind } => bare::serve(&bind).await.map(|()| 0),
            Command::Hostile(plan) => Ok(if hostile::run(plan).await? { 0 } else { 4 }),
            Command::Scale(plan) => {
                let report = scale::run(plan).await?;
                print_scale(&report);
                println!("{}", serde_json::to_string(&report)?);
                Ok(if report.ok { 0 } else { 3 })
            }
            Command::ScaleWorker(args) => scale::worker::run(args).await.map(|()| 0),
            Command::Run(plan) => {
                let report = load::run(plan).await?;
                print_human(&report);
                println!("{}", serde_json::to_string(&report)?);
                Ok(if report.ok { 0 } else { 3 })
            }
        }
    });
    // Client tasks may still hold sockets: do not wait for them.
    rt.shutdown_background();
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("parley-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_scale(r: &scale::Report) {
    let l = &r.plan.layout;
    eprintln!(
        "scale: {} clients in {} rooms over {} server processes, {} generators",
        l.clients,
        l.rooms,
        l.servers.len(),
        r.plan.generators
    );
    for c in &r.checks {
        eprintln!(
            "  [{}] {}: {}",
            if c.ok { "ok" } else { "FAILED" },
            c.name,
            c.detail
        );
    }
    eprintln!("  result: {}", if r.ok { "OK" } else { "FAILED" });
}

fn print_human(r: &load::Report) {
    let p = &r.plan;
    println!(
        "scenario {} | target {:?} | {} clients, {:?} layout, {} rooms, {} senders x {} messages, window {}{}",
        p.scenario,
        p.target,
        p.clients,
        p.layout,
        p.rooms,
        p.senders,
        p.messages,
        p.window,
        if p.rate > 0.0 {
            format!(", {} msg/s per sender", p.rate)
        } else {
            String::new()
        }
    );
    println!(
        "  connect: {:.1}s total, per connection p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} failed (provisioning {:.1}s, untimed)",
        r.connect_secs,
        r.connect_ms[0],
        r.connect_ms[1],
        r.connect_ms[2],
        r.connect_failures,
        r.provision_secs
    );
    println!(
        "  fan-out: expected {}, received {}, lost {} ({} messages sent); own copies {} of {} (lost {}); duplicates {}, out of order {}, unexpected {}; errors {}",
        r.expected,
        r.received,
        r.lost,
        r.sent,
        r.acks,
        r.sent,
        r.acks_lost,
        r.duplicates,
        r.order_violations,
        r.unexpected,
        r.errors
    );
    println!(
        "  throughput: {:.0} fan-out deliveries/s, {:.0} messages/s over {:.2}s",
        r.deliveries_per_sec, r.messages_per_sec, r.elapsed_secs
    );
    for (what, l) in [("fan-out", &r.latency_ms), ("own copy", &r.ack_latency_ms)] {
        println!(
            "  {what} latency ms (from {}): p50 {:.2}, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}, mean {:.2}",
            r.latency_from, l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
    }
    println!(
        "  server memory: {} KiB before, {} KiB with half connected, {} KiB connected ({} bytes per connection on average, {} marginal over the second half), peak {} KiB",
        r.rss_before_kb,
        r.rss_half_kb,
        r.rss_connected_kb,
        r.bytes_per_connection,
        r.marginal_bytes_per_connection,
        r.peak_rss_kb
    );
    for n in &r.notes {
        println!("  note: {n}");
    }
    println!("  result: {}", if r.ok { "OK" } else { "FAILED" });
}
