//! `parley-server user ...`: the staff account actions from the operator's command line.
//! Each goes through the engine's rules (`parley_core`'s `admin` module) as
//! [`Actor::Cli`], so it is checked, takes effect and is audited (actor `cli`) exactly as the
//! same action over `/api/admin`; it works on SQLite and PostgreSQL while the server runs.

use anyhow::Context;
use clap::Subcommand;
use parley_auth::Password;
use parley_core::{Actor, Engine};
use parley_domain::{Reason, User, UserName};
use parley_server::{Settings, operator_engine};
use std::io::{BufRead, IsTerminal};

/// What `parley-server user` does.
#[derive(Subcommand)]
pub enum UserCommand {
    /// List accounts (no guests, no deleted accounts), in name order.
    List {
        /// Only accounts whose name or e-mail contains this (case-insensitive).
        #[arg(long)]
        search: Option<String>,
        /// Start after this user name.
        #[arg(long)]
        after: Option<String>,
        /// At most this many (1–200, default 50).
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Show one account as JSON: flags, last login, rooms with roles, linked sign-ins.
    Show {
        /// The user name.
        username: String,
    },
    /// Make an account staff.
    Promote(Target),
    /// Take staff rights away.
    Demote(Target),
    /// Deactivate an account: no logins, every token refused, its sockets closed (4005).
    Deactivate(Target),
    /// Reactivate a deactivated account (old tokens stay refused).
    Reactivate(Target),
    /// Set an account's password; asked for on the terminal (without echo), or read from
    /// standard input when that is not a terminal. Every older token is refused.
    ResetPassword {
        #[command(flatten)]
        target: Target,
        /// Read the password from standard input without a prompt (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account, keeping its messages (shown as by `deleted.{id}`).
    Delete(Target),
}

/// The account an action is for, and why.
#[derive(clap::Args)]
pub struct Target {
    /// The user name.
    username: String,
    /// Why, for the audit log (1–500 characters).
    #[arg(long)]
    reason: Option<String>,
}

impl Target {
    fn parse(&self) -> anyhow::Result<(UserName, Option<Reason>)> {
        let name = UserName::parse(&self.username).context("username")?;
        let reason = self
            .reason
            .as_deref()
            .map(Reason::parse)
            .transpose()
            .context("reason")?;
        Ok((name, reason))
    }
}

/// Reads a password: prompted without echo on a terminal, else one line of standard input.
pub fn read_password(prompt: &str, from_stdin: bool) -> anyhow::Result<String> {
    if !from_stdin && std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt).context("reading the password");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Runs `command` against the database (and channel layer) `settings` name.
pub async fn run(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    // The password is read before anything is opened: a prompt must not wait on a database.
    let password = match &command {
        UserCommand::ResetPassword {
            target,
            password_stdin,
        } => Some(Password::new(read_password(
            &format!("new password for {}: ", target.username),
            *password_stdin,
        )?)),
        _ => None,
    };
    let engine = operator_engine(settings).await?;
    let result = execute(&engine, command, password).await;
    engine.shutdown();
    result
}

async fn execute(
    engine: &Engine,
    command: UserCommand,
    password: Option<Password>,
) -> anyhow::Result<()> {
    let cli = Actor::Cli;
    let done = |what: &str, user: &User| {
        println!("{what} {} (id {})", user.username, user.id);
    };
    match command {
        UserCommand::List {
            search,
            after,
            limit,
        } => {
            let after = after
                .as_deref()
                .map(UserName::parse)
                .transpose()
                .context("after")?;
            let page = engine.admin_users(cli, search, after, limit).await?;
            for u in &page.users {
                println!(
                    "{}\tid={}\tstaff={}\tactive={}\temail={}\tlast_login={}",
                    u.username,
                    u.id,
                    u.is_staff,
                    u.is_active,
                    u.email.as_ref().map_or("-", |e| e.as_str()),
                    u.last_login
                        .map_or("-".to_owned(), |t| t.millis().to_string()),
                );
            }
            if let Some(next) = page.next {
                println!("(more: --after {next})");
            }
        }
        UserCommand::Show { username } => {
            let name = UserName::parse(&username).context("username")?;
            let details = engine.admin_user(cli, &name).await?;
            println!("{}", serde_json::to_string_pretty(&details)?);
        }
        UserCommand::Promote(t) => {
            let (name, reason) = t.parse()?;
            done(
                "promoted",
                &engine.set_staff(cli, &name, true, reason.as_ref()).await?,
            );
        }
        UserCommand::Demote(t) => {
            let (name, reason) = t.parse()?;
            done(
                "demoted",
                &engine.set_staff(cli, &name, false, reason.as_ref()).await?,
            );
        }
        UserCommand::Deactivate(t) => {
            let (name, reason) = t.parse()?;
            done(
                "deactivated",
                &engine
                    .set_active(cli, &name, false, reason.as_ref())
                    .await?,
            );
        }
        UserCommand::Reactivate(t) => {
            let (name, reason) = t.parse()?;
            done(
                "reactivated",
                &engine.set_active(cli, &name, true, reason.as_ref()).await?,
            );
        }
        UserCommand::ResetPassword { target, .. } => {
            let (name, reason) = target.parse()?;
            let password = password.context("no password read")?;
            done(
                "new password set for",
                &engine
                    .reset_password(cli, &name, &password, reason.as_ref())
                    .await?,
            );
        }
        UserCommand::Delete(t) => {
            let (name, reason) = t.parse()?;
            let gone = engine.delete_account(cli, &name, reason.as_ref()).await?;
            println!(
                "deleted {name}: its messages stay, shown as by {}",
                gone.username
            );
        }
    }
    Ok(())
}
