//! `parley-server`: run the chat server, or an operator command.

// The commands print their results for the operator.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use parley_auth::{Password, hash_password};
use parley_domain::{Email, UserName};
use parley_server::{Application, Settings, open_store, telemetry};
use parley_store::NewUser;
use std::path::PathBuf;
use std::process::ExitCode;

mod user_cmd;

/// mimalloc: with tens of thousands of connections each holding small, long-lived allocations
/// next to short-lived per-request ones, glibc's per-thread arenas fragment and hold on to
/// freed memory; measured in docs/benchmarks.md (idle connections).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Parley's chat server. With no arguments: `serve` on 127.0.0.1:8080 with SQLite in the
/// working directory. Settings come from `parley.toml` (or --config), then DATABASE_URL and
/// REDIS_URL, then PARLEY_<SETTING> variables.
#[derive(Parser)]
#[command(name = "parley-server", version, about)]
struct Cli {
    /// A TOML configuration file (default: ./parley.toml when it exists).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and WebSocket clients (the default).
    Serve,
    /// Run the database migrations and exit.
    Migrate,
    /// Create an account; the password is asked for on the terminal (without echo), or read
    /// from standard input when that is not a terminal.
    CreateUser {
        /// The user name.
        username: String,
        /// Make the account staff (may manage any room, edit or delete any message).
        #[arg(long)]
        staff: bool,
        /// An e-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Read the password from standard input without a prompt (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Copy the database to PATH while the server may be running: a consistent SQLite file.
    /// For PostgreSQL it says which pg_dump command to run instead.
    Backup {
        /// Where the copy goes (must not exist).
        path: PathBuf,
    },
    /// Validate the configuration and print the effective settings (secrets hidden).
    CheckConfig,
    /// Staff account actions: list, show, promote, demote, deactivate, reactivate,
    /// reset-password, delete (audited as `cli`; work while the server runs).
    #[command(subcommand)]
    User(user_cmd::UserCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("parley-server: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format, &settings.log_level);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::CreateUser {
            username,
            staff,
            email,
            password_stdin,
        } => {
            create_user(
                &settings,
                &username,
                staff,
                email.as_deref(),
                password_stdin,
            )
            .await
        }
        Command::Backup { path } => backup(&settings, &path).await,
        Command::User(command) => user_cmd::run(&settings, command).await,
        Command::CheckConfig => {
            println!(
                "{}",
                serde_json::to_string_pretty(&settings.redacted()).unwrap_or_default()
            );
            println!("configuration OK");
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, through the log (a JSON line in JSON mode), with each cause once.
            tracing::error!("{}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each said once: a cause whose text the error already includes
/// (`bind: Address in use` over `Address in use`) is not repeated.
fn describe(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::debug!(settings = %settings.redacted(), "starting");
    let app = Application::build(settings).await?;
    let shutdown = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    wait_for_signal().await?;
    shutdown.shutdown().await;
    server.await.context("server task")??;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("SIGINT handler")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("Ctrl-C handler")?;
    tracing::info!("signal received");
    Ok(())
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = open_store(settings)?;
    store.migrate().await.context("migrations")?;
    println!("migrations applied");
    Ok(())
}

async fn create_user(
    settings: &Settings,
    username: &str,
    staff: bool,
    email: Option<&str>,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let username = UserName::parse_account(username).context("username")?;
    let email = email.map(Email::parse).transpose().context("email")?;
    let password = user_cmd::read_password(&format!("password for {username}: "), password_stdin)?;
    let password = Password::new(password);
    password.check_rules(&username)?;
    let store = open_store(settings)?;
    store.migrate().await.context("migrations")?;
    let password_hash = hash_password(&password, settings.bcrypt_cost).await?;
    let user = store
        .create_user(&NewUser {
            username,
            email,
            display_name: None,
            password_hash,
            is_staff: staff,
            is_guest: false,
        })
        .await
        .context("creating the user")?;
    // As a registration would: the default rooms (those that exist; `serve` creates them).
    store
        .join_rooms(user.id, &settings.default_rooms()?)
        .await
        .context("joining the default rooms")?;
    println!(
        "created user {} (id {}{})",
        user.username,
        user.id,
        if staff { ", staff" } else { "" }
    );
    Ok(())
}

async fn backup(settings: &Settings, path: &std::path::Path) -> anyhow::Result<()> {
    let store = open_store(settings)?;
    store.backup_to(path).await.context("backup")?;
    println!("database copied to {}", path.display());
    Ok(())
}
