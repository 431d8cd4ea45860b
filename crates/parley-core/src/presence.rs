//! Who is online in which room, counted per user, merged across server processes.
//!
//! Each process ("node") knows its own connections exactly. Other nodes' users arrive as
//! snapshots carried by the channel layer: one message per node carrying every room it has
//! users in (at each heartbeat, [`NodeSnapshot::full`]) or the rooms that changed since its
//! last message (within [`ANNOUNCE_COALESCE`](crate::engine::ANNOUNCE_COALESCE)). Each is valid
//! for a time to live; nodes resend theirs periodically, so a node that dies drops out of
//! every list within one TTL. The online list of a room is the union of the local users and
//! every live snapshot, on every node, whether or not it has users in the room itself.
//!
//! [`PresenceBook`] is the bookkeeping only (no I/O); the engine feeds it and broadcasts the
//! changes it reports. [`PresenceFolding`] decides when those broadcasts go: at once in a
//! quiet room, folded together while a room changes faster than [`PRESENCE_FOLD`].

use parley_domain::protocol::{PresenceChange, PresenceEvent};
use parley_domain::{RoomName, UserName};
use parley_layer::ChannelName;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// How long after a room's last `presence` frame further changes wait, to go out together.
/// Each frame goes to every member and carries the whole online list, so a frame per change
/// made a join storm quadratic: 5,000 clients rejoining 50 rooms of 100 sent ≈ 250,000
/// frames, queued ahead of chat for seconds. Folded, a room sends at most one frame per
/// interval while it is busy; a quiet room's change still goes at once.
pub const PRESENCE_FOLD: Duration = Duration::from_millis(100);

/// Client-facing `presence` frames per room: which go at once and which wait to be folded.
#[derive(Debug, Default)]
pub struct PresenceFolding {
    rooms: HashMap<RoomName, Folding>,
}

#[derive(Debug)]
struct Folding {
    /// When the room's last frame went.
    sent_at: Instant,
    /// Changes waiting for the next frame, oldest first.
    waiting: Vec<PresenceChange>,
    /// The connection of the latest change when it is a join: it learnt the list from its
    /// `joined` reply, so the frame skips it (as an unfolded frame skips its joiner).
    joiner: Option<ChannelName>,
}

/// What to do with a presence change.
#[derive(Debug, PartialEq, Eq)]
pub enum Fold {
    /// Send its frame now (recorded as sent).
    SendNow,
    /// It waits for [`PresenceFolding::take_due`]; `first` when it is the first waiting
    /// change anywhere, so the caller schedules that flush.
    Wait {
        /// No other change was waiting.
        first: bool,
    },
}

/// A folded frame due: the room, its changes (oldest first) and the connection to skip.
pub type DueFrame = (RoomName, Vec<PresenceChange>, Option<ChannelName>);

impl PresenceFolding {
    /// Records `user`'s change in `room` at `now`; `joiner` is the joining connection.
    pub fn change(
        &mut self,
        room: &RoomName,
        user: &UserName,
        event: PresenceEvent,
        joiner: Option<&ChannelName>,
        now: Instant,
    ) -> Fold {
        let nothing_waiting = self.rooms.values().all(|f| f.waiting.is_empty());
        match self.rooms.get_mut(room) {
            Some(folding)
                if !folding.waiting.is_empty()
                    || now.saturating_duration_since(folding.sent_at) < PRESENCE_FOLD =>
            {
                folding.waiting.push(PresenceChange {
                    user: user.clone(),
                    event,
                });
                folding.joiner = joiner.cloned();
                Fold::Wait {
                    first: nothing_waiting,
                }
            }
            _ => {
                self.rooms.insert(
                    room.clone(),
                    Folding {
                        sent_at: now,
                        waiting: Vec::new(),
                        joiner: None,
                    },
                );
                Fold::SendNow
            }
        }
    }

    /// Takes every room's waiting changes (their frames go now) and forgets the rooms quiet
    /// for longer than [`PRESENCE_FOLD`].
    pub fn take_due(&mut self, now: Instant) -> Vec<DueFrame> {
        let mut due = Vec::new();
        self.rooms.retain(|room, folding| {
            if folding.waiting.is_empty() {
                return now.saturating_duration_since(folding.sent_at) < PRESENCE_FOLD;
            }
            folding.sent_at = now;
            due.push((
                room.clone(),
                std::mem::take(&mut folding.waiting),
                folding.joiner.take(),
            ));
            true
        });
        due
    }
}

/// One node's presence bookkeeping.
#[derive(Debug, Default)]
pub struct PresenceBook {
    /// Connections per user per room on this node (a user with two tabs counts 2 here, but is
    /// one user online).
    local: HashMap<RoomName, HashMap<UserName, usize>>,
    /// Other nodes' users per room, with the instant each snapshot stops counting.
    remote: HashMap<RoomName, HashMap<String, (BTreeSet<UserName>, Instant)>>,
    /// Other nodes heard from, with the instant their last message stops counting: the nodes
    /// this one's changes must reach, users or not.
    nodes: HashMap<String, Instant>,
}

/// Another node's presence message, parsed: its users in some rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// The node's channel name.
    pub node: String,
    /// Its users per room; an empty set means none left there.
    pub rooms: Vec<(RoomName, BTreeSet<UserName>)>,
    /// Every room the node has users in (a heartbeat): its rooms not listed are empty.
    pub full: bool,
}

/// How a local connection changed a room's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalChange {
    /// The user came online in the room, or went offline, across every node (the room hears
    /// "joined" or "left").
    pub everywhere: bool,
    /// The user's first connection in the room on this node opened, or its last closed: this
    /// node's snapshot of the room changed (the other nodes hear of it).
    pub here: bool,
}

/// How a room's union changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OnlineChange {
    /// Users now online who were not.
    pub joined: Vec<UserName>,
    /// Users no longer online anywhere.
    pub left: Vec<UserName>,
}

impl OnlineChange {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty() && self.left.is_empty()
    }
}

impl PresenceBook {
    /// A connection of `user` on this node entered `room`.
    pub fn local_join(&mut self, room: &RoomName, user: &UserName) -> LocalChange {
        let was_online = self.is_online(room, user);
        let count = self
            .local
            .entry(room.clone())
            .or_default()
            .entry(user.clone())
            .or_insert(0);
        *count += 1;
        LocalChange {
            everywhere: !was_online,
            here: *count == 1,
        }
    }

    /// A connection of `user` on this node left `room`.
    pub fn local_leave(&mut self, room: &RoomName, user: &UserName) -> LocalChange {
        let unchanged = LocalChange {
            everywhere: false,
            here: false,
        };
        let Some(users) = self.local.get_mut(room) else {
            return unchanged;
        };
        let Some(count) = users.get_mut(user) else {
            return unchanged;
        };
        *count -= 1;
        let here = *count == 0;
        if here {
            users.remove(user);
            if users.is_empty() {
                self.local.remove(room);
            }
        }
        LocalChange {
            everywhere: !self.is_online(room, user),
            here,
        }
    }

    /// True when `user` has a connection in `room` on any live node.
    pub fn is_online(&self, room: &RoomName, user: &UserName) -> bool {
        self.local.get(room).is_some_and(|u| u.contains_key(user))
            || self.remote.get(room).is_some_and(|nodes| {
                let now = Instant::now();
                nodes
                    .values()
                    .any(|(users, until)| *until > now && users.contains(user))
            })
    }

    /// The room's online users, sorted, each once.
    pub fn online(&self, room: &RoomName) -> Vec<UserName> {
        self.union(room).into_iter().collect()
    }

    /// At most `limit` of the room's online users, `first` leading when online and then the
    /// others sorted, with the number of users online in all (each counted once). Names are
    /// not copied beyond the `limit` returned, so this stays cheap in rooms of thousands.
    pub fn online_sample(
        &self,
        room: &RoomName,
        first: &UserName,
        limit: usize,
    ) -> (Vec<UserName>, usize) {
        let mut all: BTreeSet<&UserName> = self
            .local
            .get(room)
            .map(|u| u.keys().collect())
            .unwrap_or_default();
        if let Some(nodes) = self.remote.get(room) {
            let now = Instant::now();
            for (users, until) in nodes.values() {
                if *until > now {
                    all.extend(users.iter());
                }
            }
        }
        let total = all.len();
        let lead = all.contains(first).then_some(first);
        let sample = lead
            .into_iter()
            .chain(all.into_iter().filter(|u| *u != first))
            .take(limit)
            .cloned()
            .collect();
        (sample, total)
    }

    fn union(&self, room: &RoomName) -> BTreeSet<UserName> {
        let mut all: BTreeSet<UserName> = self
            .local
            .get(room)
            .map(|u| u.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(nodes) = self.remote.get(room) {
            let now = Instant::now();
            for (users, until) in nodes.values() {
                if *until > now {
                    all.extend(users.iter().cloned());
                }
            }
        }
        all
    }

    /// At least the number of users online in `room` (users on several nodes count once per
    /// node): cheap, for size thresholds.
    pub fn online_upper_bound(&self, room: &RoomName) -> usize {
        let local = self.local.get(room).map_or(0, HashMap::len);
        let now = Instant::now();
        let remote: usize = self.remote.get(room).map_or(0, |nodes| {
            nodes
                .values()
                .filter(|(_, until)| *until > now)
                .map(|(users, _)| users.len())
                .sum()
        });
        local + remote
    }

    /// Whether another node was heard from within its time to live (with users or not):
    /// while none is, this node's changes need not go anywhere.
    pub fn has_other_nodes(&self) -> bool {
        let now = Instant::now();
        self.nodes.values().any(|until| *until > now)
    }

    /// This node's users in `room` (what it tells the other nodes).
    pub fn local_users(&self, room: &RoomName) -> Vec<UserName> {
        let mut users: Vec<UserName> = self
            .local
            .get(room)
            .map(|u| u.keys().cloned().collect())
            .unwrap_or_default();
        users.sort();
        users
    }

    /// This node's users in every room it has a connection in (its full snapshot).
    pub fn local_snapshot(&self) -> Vec<(RoomName, Vec<UserName>)> {
        self.local
            .keys()
            .map(|room| (room.clone(), self.local_users(room)))
            .collect()
    }

    /// True when this node has a connection in `room`.
    pub fn has_local(&self, room: &RoomName) -> bool {
        self.local.contains_key(room)
    }

    /// Another node's message, valid until `until`: its users in the rooms it lists and, when
    /// `full`, nobody in the rooms it does not. Nothing is compared: the sender told the
    /// rooms' clients of its joins and leaves itself, and at 1,000 rooms over 7 processes a
    /// diff per room per message was most of a node's work.
    pub fn apply_node(&mut self, snapshot: NodeSnapshot, until: Instant) {
        let NodeSnapshot { node, rooms, full } = snapshot;
        self.nodes.insert(node.clone(), until);
        if full {
            let listed: HashSet<&RoomName> = rooms.iter().map(|(room, _)| room).collect();
            self.remote.retain(|room, nodes| {
                if !listed.contains(room) {
                    nodes.remove(&node);
                }
                !nodes.is_empty()
            });
        }
        for (room, users) in rooms {
            if users.is_empty() {
                if let Some(nodes) = self.remote.get_mut(&room) {
                    nodes.remove(&node);
                    if nodes.is_empty() {
                        self.remote.remove(&room);
                    }
                }
            } else {
                self.remote
                    .entry(room)
                    .or_default()
                    .insert(node.clone(), (users, until));
            }
        }
    }

    /// Forgets the nodes not heard from within their time to live (they died, or lost the
    /// layer) and returns their channel names.
    pub fn expire_nodes(&mut self, now: Instant) -> Vec<String> {
        let mut silent = Vec::new();
        self.nodes.retain(|node, until| {
            let live = *until > now;
            if !live {
                silent.push(node.clone());
            }
            live
        });
        silent
    }

    /// Drops snapshots whose time ran out (their node died or lost the layer); returns the
    /// rooms whose union shrank and who left them.
    pub fn expire(&mut self, now: Instant) -> Vec<(RoomName, OnlineChange)> {
        let stale_rooms: Vec<RoomName> = self
            .remote
            .iter()
            .filter(|(_, nodes)| nodes.values().any(|(_, until)| *until <= now))
            .map(|(room, _)| room.clone())
            .collect();
        let mut changes = Vec::new();
        for room in stale_rooms {
            // `union` already ignores stale snapshots, so compare with them counted.
            let before: BTreeSet<UserName> = {
                let mut all = self.union(&room);
                if let Some(nodes) = self.remote.get(&room) {
                    for (users, _) in nodes.values() {
                        all.extend(users.iter().cloned());
                    }
                }
                all
            };
            if let Some(nodes) = self.remote.get_mut(&room) {
                nodes.retain(|_, (_, until)| *until > now);
                if nodes.is_empty() {
                    self.remote.remove(&room);
                }
            }
            let change = diff(&before, &self.union(&room));
            if !change.is_empty() {
                changes.push((room, change));
            }
        }
        changes
    }

    /// True when nothing is tracked (every connection left and every snapshot expired).
    pub fn is_empty(&self) -> bool {
        self.local.is_empty() && self.remote.is_empty() && self.nodes.is_empty()
    }
}

fn diff(before: &BTreeSet<UserName>, after: &BTreeSet<UserName>) -> OnlineChange {
    OnlineChange {
        joined: after.difference(before).cloned().collect(),
        left: before.difference(after).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomName {
        RoomName::parse("lobby").unwrap()
    }
    fn user(n: &str) -> UserName {
        UserName::parse(n).unwrap()
    }

    /// A snapshot of `node` listing `rooms` (each with its users).
    fn snapshot(node: &str, rooms: &[(&str, &[&str])], full: bool) -> NodeSnapshot {
        NodeSnapshot {
            node: node.to_owned(),
            rooms: rooms
                .iter()
                .map(|(r, users)| {
                    (
                        RoomName::parse(r).unwrap(),
                        users.iter().map(|u| user(u)).collect(),
                    )
                })
                .collect(),
            full,
        }
    }

    const BOTH: LocalChange = LocalChange {
        everywhere: true,
        here: true,
    };
    const NEITHER: LocalChange = LocalChange {
        everywhere: false,
        here: false,
    };

    #[tokio::test(start_paused = true)]
    async fn two_tabs_are_one_user() {
        let mut book = PresenceBook::default();
        assert_eq!(book.local_join(&room(), &user("alice")), BOTH);
        assert_eq!(
            book.local_join(&room(), &user("alice")),
            NEITHER,
            "second tab is not a new join"
        );
        assert_eq!(book.online(&room()), vec![user("alice")]);
        assert_eq!(
            book.local_leave(&room(), &user("alice")),
            NEITHER,
            "one tab still open"
        );
        assert_eq!(book.local_leave(&room(), &user("alice")), BOTH);
        assert!(book.online(&room()).is_empty());
        assert!(book.is_empty(), "no leftovers once everyone left");
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_online_elsewhere_still_changes_this_nodes_snapshot() {
        let mut book = PresenceBook::default();
        let until = Instant::now() + Duration::from_secs(15);
        book.apply_node(snapshot("node-b", &[("lobby", &["alice"])], true), until);
        let here_only = LocalChange {
            everywhere: false,
            here: true,
        };
        assert_eq!(book.local_join(&room(), &user("alice")), here_only);
        assert_eq!(book.local_snapshot(), vec![(room(), vec![user("alice")])]);
        assert_eq!(book.local_leave(&room(), &user("alice")), here_only);
        assert!(book.local_snapshot().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn union_with_other_nodes_and_expiry_of_dead_ones() {
        let mut book = PresenceBook::default();
        book.local_join(&room(), &user("alice"));
        assert!(!book.has_other_nodes(), "only this node so far");
        let until = Instant::now() + Duration::from_secs(15);
        book.apply_node(
            snapshot("node-b", &[("lobby", &["bob", "alice"])], false),
            until,
        );
        assert_eq!(book.online(&room()), vec![user("alice"), user("bob")]);
        assert!(book.has_other_nodes());
        // Alice's last local tab closes, but she is still online on node b.
        assert!(!book.local_leave(&room(), &user("alice")).everywhere);
        tokio::time::advance(Duration::from_secs(16)).await;
        assert!(!book.has_other_nodes(), "node b's snapshot ran out");
        assert_eq!(book.expire_nodes(Instant::now()), vec!["node-b".to_owned()]);
        let expired = book.expire(Instant::now());
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].1.left, vec![user("alice"), user("bob")]);
        assert!(book.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn online_samples_lead_with_the_given_user_and_count_everyone_once() {
        let mut book = PresenceBook::default();
        for name in ["dave", "alice", "carol"] {
            book.local_join(&room(), &user(name));
        }
        let until = Instant::now() + Duration::from_secs(15);
        // Alice is on node b as well: counted once.
        book.apply_node(
            snapshot("node-b", &[("lobby", &["bob", "alice"])], false),
            until,
        );
        let (sample, total) = book.online_sample(&room(), &user("dave"), 3);
        assert_eq!(total, 4);
        assert_eq!(sample, vec![user("dave"), user("alice"), user("bob")]);
        let (sample, total) = book.online_sample(&room(), &user("carol"), 10);
        assert_eq!(total, 4);
        assert_eq!(
            sample,
            vec![user("carol"), user("alice"), user("bob"), user("dave")]
        );
        // Someone not online does not lead; a limit of 0 lists nobody but still counts.
        let (sample, _) = book.online_sample(&room(), &user("zed"), 2);
        assert_eq!(sample, vec![user("alice"), user("bob")]);
        assert_eq!(book.online_sample(&room(), &user("dave"), 0), (vec![], 4));
        // Dead nodes' users neither appear nor count.
        tokio::time::advance(Duration::from_secs(16)).await;
        let (sample, total) = book.online_sample(&room(), &user("dave"), 10);
        assert_eq!((sample.len(), total), (3, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_room_or_a_full_snapshot_without_it_removes_the_node_there() {
        let mut book = PresenceBook::default();
        let until = Instant::now() + Duration::from_secs(15);
        let other = RoomName::parse("other").unwrap();
        book.apply_node(
            snapshot(
                "node-b",
                &[("lobby", &["bob"]), ("other", &["carol"])],
                true,
            ),
            until,
        );
        book.apply_node(snapshot("node-c", &[("other", &["dave"])], true), until);
        // An update names only what changed: the other rooms stay.
        book.apply_node(snapshot("node-b", &[("lobby", &[])], false), until);
        assert!(book.online(&room()).is_empty());
        assert_eq!(book.online(&other), vec![user("carol"), user("dave")]);
        // A full snapshot lists every room the node has users in: Carol left "other".
        book.apply_node(snapshot("node-b", &[], true), until);
        assert_eq!(book.online(&other), vec![user("dave")]);
        assert!(
            book.has_other_nodes(),
            "a node with no users is still known"
        );
        tokio::time::advance(Duration::from_secs(16)).await;
        book.expire(Instant::now());
        let mut silent = book.expire_nodes(Instant::now());
        silent.sort();
        assert_eq!(silent, vec!["node-b".to_owned(), "node-c".to_owned()]);
        assert!(book.is_empty());
    }

    fn change(u: &str, event: PresenceEvent) -> PresenceChange {
        PresenceChange {
            user: user(u),
            event,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_room_folds_its_changes_and_a_quiet_one_sends_at_once() {
        let mut folding = PresenceFolding::default();
        let other = RoomName::parse("other").unwrap();
        let (bob, carol) = (
            ChannelName::parse("c.bob").unwrap(),
            ChannelName::parse("c.carol").unwrap(),
        );
        let joined = PresenceEvent::Joined;
        let t0 = Instant::now();
        assert_eq!(
            folding.change(&room(), &user("alice"), joined, None, t0),
            Fold::SendNow
        );
        // Within the interval: the changes wait; only the first anywhere asks for a flush.
        let t1 = t0 + PRESENCE_FOLD / 2;
        assert_eq!(
            folding.change(&room(), &user("bob"), joined, Some(&bob), t1),
            Fold::Wait { first: true }
        );
        assert_eq!(
            folding.change(&room(), &user("alice"), PresenceEvent::Left, None, t1),
            Fold::Wait { first: false }
        );
        assert_eq!(
            folding.change(&room(), &user("carol"), joined, Some(&carol), t1),
            Fold::Wait { first: false }
        );
        // Another room is quiet: at once.
        assert_eq!(
            folding.change(&other, &user("dave"), joined, None, t1),
            Fold::SendNow
        );
        let t2 = t1 + PRESENCE_FOLD;
        assert_eq!(
            folding.take_due(t2),
            vec![(
                room(),
                vec![
                    change("bob", joined),
                    change("alice", PresenceEvent::Left),
                    change("carol", joined)
                ],
                Some(carol)
            )]
        );
        // The folded frame counts as sent: a change right after it waits again...
        assert_eq!(
            folding.change(&room(), &user("erin"), PresenceEvent::Left, None, t2),
            Fold::Wait { first: true }
        );
        // ...and the last change is a leave: nobody is skipped.
        assert_eq!(
            folding.take_due(t2 + PRESENCE_FOLD),
            vec![(room(), vec![change("erin", PresenceEvent::Left)], None)]
        );
        // Quiet for an interval: forgotten, and the next change goes at once.
        let t3 = t2 + PRESENCE_FOLD * 3;
        assert!(folding.take_due(t3).is_empty());
        assert!(folding.rooms.is_empty(), "quiet rooms are not kept");
        assert_eq!(
            folding.change(&room(), &user("frank"), joined, None, t3),
            Fold::SendNow
        );
    }
}
