//! Flood limits: every client frame type draws on one budget of its user, shared by all of
//! that user's connections on this process (sixteen sockets do not get sixteen allowances,
//! and reconnecting does not refill one). The defaults are in [`crate::EngineConfig`];
//! `docs/protocol.md` ("Limits") lists them in one table.

use crate::config::EngineConfig;
use crate::rate::{RateLimit, TokenBucket};
use parley_domain::protocol::FrameType;
use std::time::Duration;
use tokio::time::Instant;

/// What a frame costs: the budget it draws one token from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    /// `send`, `edit`, `delete`.
    Messages,
    /// `join`, `leave` (each may announce presence to a whole room).
    Joins,
    /// `typing`.
    Typing,
    /// `history` (a database query of up to 100 messages).
    History,
    /// `read` (a database write, and a frame to every member when the marker moves).
    Read,
    /// `signal` (a frame to every connection of another user).
    Signals,
    /// `ping`.
    Pings,
    /// `renew` (a token check and a user lookup).
    Renewals,
    /// `react`, `unreact` (a database write and a frame to the whole room).
    Reactions,
    /// Rooms created (not a frame: `POST /api/rooms`, and the tutorial endpoint's first
    /// connection to a room that does not exist).
    RoomCreations,
}

impl Budget {
    /// Every budget.
    pub const ALL: [Self; 10] = [
        Self::Messages,
        Self::Joins,
        Self::Typing,
        Self::History,
        Self::Read,
        Self::Signals,
        Self::Pings,
        Self::Renewals,
        Self::Reactions,
        Self::RoomCreations,
    ];

    /// The budget a frame type draws on.
    pub const fn of(frame: FrameType) -> Self {
        match frame {
            FrameType::Send | FrameType::Edit | FrameType::Delete => Self::Messages,
            FrameType::Join | FrameType::Leave => Self::Joins,
            FrameType::Typing => Self::Typing,
            FrameType::History => Self::History,
            FrameType::Read => Self::Read,
            FrameType::Signal => Self::Signals,
            FrameType::Ping => Self::Pings,
            FrameType::Renew => Self::Renewals,
            FrameType::React | FrameType::Unreact => Self::Reactions,
        }
    }

    /// What the refusal says is coming too fast ("too many joins").
    pub const fn what(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::Joins => "joins and leaves",
            Self::Typing => "typing frames",
            Self::History => "history requests",
            Self::Read => "read markers",
            Self::Signals => "signals",
            Self::Pings => "pings",
            Self::Renewals => "renewals",
            Self::Reactions => "reactions",
            Self::RoomCreations => "new rooms",
        }
    }

    /// This budget's limit in `config` for a guest (`guest`) or an account: guests have
    /// budgets of their own for messages and joins (`config.guests`).
    pub const fn limit_for(self, config: &EngineConfig, guest: bool) -> RateLimit {
        match self {
            Self::Messages if guest => config.guests.message_rate,
            Self::Joins if guest => config.guests.join_rate,
            other => other.limit(config),
        }
    }

    /// This budget's limit in `config`.
    pub const fn limit(self, config: &EngineConfig) -> RateLimit {
        match self {
            Self::Messages => config.message_rate,
            Self::Joins => config.join_rate,
            Self::Typing => config.typing_rate,
            Self::History => config.history_rate,
            Self::Read => config.read_rate,
            Self::Signals => config.signal_rate,
            Self::Pings => config.ping_rate,
            Self::Renewals => config.renew_rate,
            Self::Reactions => config.reaction_rate,
            Self::RoomCreations => config.room_create_rate,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// One user's budgets on this process.
pub(crate) struct Budgets {
    buckets: [TokenBucket; Budget::ALL.len()],
}

impl Budgets {
    /// Full budgets, a guest's (`guest`) or an account's.
    pub(crate) fn new(config: &EngineConfig, guest: bool) -> Self {
        Self {
            buckets: Budget::ALL.map(|b| TokenBucket::new(b.limit_for(config, guest))),
        }
    }

    /// Takes one token of `budget`; on refusal, how long until there is one.
    pub(crate) fn take(&mut self, budget: Budget) -> Result<(), Duration> {
        self.buckets[budget.index()].try_take()
    }
}

/// How long a user's budgets are kept after their last connection closed: until every one
/// has refilled, so that reconnecting gains nothing.
pub(crate) fn keep_after_last_connection(config: &EngineConfig) -> Duration {
    Budget::ALL
        .iter()
        .flat_map(|b| [b.limit_for(config, false), b.limit_for(config, true)])
        .map(|limit| Duration::from_secs_f64((limit.burst / limit.per_second).min(3600.0)))
        .max()
        .unwrap_or_default()
}

/// When a user without connections may be forgotten.
pub(crate) fn forget_at(config: &EngineConfig) -> Instant {
    Instant::now() + keep_after_last_connection(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_type_draws_on_a_budget_and_every_budget_is_used() {
        let mut used: Vec<Budget> = FrameType::ALL.iter().map(|&t| Budget::of(t)).collect();
        used.push(Budget::RoomCreations);
        for budget in Budget::ALL {
            assert!(used.contains(&budget), "{budget:?} is not used");
            assert_eq!(Budget::ALL[budget.index()], budget);
        }
    }

    #[test]
    fn budgets_are_kept_until_they_have_refilled() {
        let config = EngineConfig {
            join_rate: RateLimit::new(5.0, 50.0),
            ..EngineConfig::default()
        };
        assert!(keep_after_last_connection(&config) >= Duration::from_secs(10));
    }
}
