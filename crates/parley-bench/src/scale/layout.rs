//! Who is where: the same arithmetic in the conductor and in every generator, so no process
//! has to tell another which client is in which room or on which server.
//!
//! Client `g` (0 ≤ g < clients) is user `<prefix><g>`, in room `g mod rooms`, and is member
//! `g / rooms` of that room. Member `k` of every room starts on server `k mod servers`: with
//! rooms of at least as many members as servers, **every room spans every server process**
//! (rooms of 100 on 7 processes: 14 or 15 members on each), so any room can serve as the
//! "room spanning all processes" check. Generator `j` of `G` holds one contiguous slice of
//! the clients.

use serde::Serialize;
use std::ops::Range;

/// The shared layout of a scale run.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Layout {
    /// Server addresses (`127.0.0.1:8080`), every one a process of the same cluster (one
    /// Redis, one database). Loopback only.
    #[arg(long = "server", required = true)]
    pub servers: Vec<String>,
    /// Clients (authenticated sockets) over all generators.
    #[arg(long, default_value_t = 100_000)]
    pub clients: usize,
    /// Rooms; client g is in room g mod rooms.
    #[arg(long, default_value_t = 1_000)]
    pub rooms: usize,
    /// Account and room name prefix: users `<prefix><g>`, rooms `<prefix>-r<r>`, the
    /// conductor's own account `<prefix>admin`.
    #[arg(long, default_value = "scale")]
    pub prefix: String,
}

impl Layout {
    /// The user name of client `g`.
    pub fn user(&self, g: usize) -> String {
        format!("{}{g}", self.prefix)
    }

    /// The room of client `g`.
    pub fn room_of(&self, g: usize) -> usize {
        g % self.rooms
    }

    /// The name of room `r`.
    pub fn room_name(&self, r: usize) -> String {
        format!("{}-r{r}", self.prefix)
    }

    /// Client `g`'s place among its room's members.
    pub fn member(&self, g: usize) -> usize {
        g / self.rooms
    }

    /// The server client `g` first connects to.
    pub fn home(&self, g: usize) -> usize {
        self.member(g) % self.servers.len()
    }

    /// The clients of room `r`.
    pub fn members(&self, r: usize) -> impl Iterator<Item = usize> {
        (r..self.clients).step_by(self.rooms.max(1))
    }

    /// The clients generator `j` of `generators` holds.
    pub fn slice(&self, j: usize, generators: usize) -> Range<usize> {
        let at = |j: usize| self.clients * j / generators.max(1);
        at(j)..at(j + 1)
    }

    /// Where client `g` goes when the server it was on (`from`) closed it or refused it: one of
    /// the other servers, spread by `g` so the clients of a stopped process share the others
    /// evenly rather than all landing on one. `attempt` moves on past servers that refuse too.
    pub fn next_server(&self, g: usize, from: usize, attempt: usize) -> usize {
        let n = self.servers.len();
        if n < 2 {
            return 0;
        }
        (from + 1 + (g + attempt) % (n - 1)) % n
    }

    /// Whether client `g` sends in the rolling-restart phase: the first `per_room` members
    /// of each of the first `rooms` rooms (with `per_room` = servers, one on each server).
    pub fn is_sender(&self, g: usize, rooms: usize, per_room: usize) -> bool {
        self.room_of(g) < rooms && self.member(g) < per_room
    }

    /// Whether client `g` sends the probe messages of the delivery check: member 0 of each of
    /// the first `rooms` rooms.
    pub fn is_prober(&self, g: usize, rooms: usize) -> bool {
        self.room_of(g) < rooms && self.member(g) == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;

    fn layout(clients: usize, rooms: usize, servers: usize) -> Layout {
        Layout {
            servers: (0..servers)
                .map(|s| format!("127.0.0.1:{}", 9000 + s))
                .collect(),
            clients,
            rooms,
            prefix: "scale".into(),
        }
    }

    #[test]
    fn every_room_of_at_least_as_many_members_as_servers_spans_every_server() {
        let l = layout(100_000, 1_000, 7);
        for r in [0, 1, 499, 999] {
            let mut on = [0usize; 7];
            for g in l.members(r) {
                assert_eq!(l.room_of(g), r);
                on[l.home(g)] += 1;
            }
            assert!(on.iter().all(|&n| n == 14 || n == 15), "room {r}: {on:?}");
            assert_eq!(on.iter().sum::<usize>(), 100);
        }
    }

    #[test]
    fn slices_cover_every_client_once() {
        let l = layout(100_000, 1_000, 7);
        let slices: Vec<_> = (0..8).map(|j| l.slice(j, 8)).collect();
        assert_eq!(slices[0].start, 0);
        assert_eq!(slices[7].end, 100_000);
        for w in slices.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
    }

    #[test]
    fn a_stopped_servers_clients_spread_over_all_the_others() {
        let l = layout(100_000, 1_000, 7);
        let mut to = [0usize; 7];
        for g in (0..100_000).filter(|&g| l.home(g) == 6) {
            to[l.next_server(g, 6, 0)] += 1;
        }
        assert_eq!(to[6], 0, "never back to the stopped one");
        let (min, max) = (to[..6].iter().min().unwrap(), to[..6].iter().max().unwrap());
        assert!(max - min <= max / 10, "{to:?}");
        // Retries walk through every other server before coming back.
        let tried: std::collections::BTreeSet<_> = (0..6).map(|a| l.next_server(5, 6, a)).collect();
        assert_eq!(tried.len(), 6);
        assert!(!tried.contains(&6));
    }

    #[test]
    fn senders_and_probers() {
        let l = layout(1_000, 10, 3);
        let senders: Vec<_> = (0..1_000).filter(|&g| l.is_sender(g, 2, 3)).collect();
        assert_eq!(senders, vec![0, 1, 10, 11, 20, 21]);
        let homes: Vec<_> = senders.iter().map(|&g| l.home(g)).collect();
        assert_eq!(homes, vec![0, 0, 1, 1, 2, 2]);
        let probers: Vec<_> = (0..1_000).filter(|&g| l.is_prober(g, 4)).collect();
        assert_eq!(probers, vec![0, 1, 2, 3]);
    }
}
