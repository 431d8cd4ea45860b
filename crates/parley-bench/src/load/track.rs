//! Which member received which message: exact counts of first deliveries, losses, duplicates
//! and order violations, in memory bounded by the messages in flight.
//!
//! **Why this is exact.** Every sender numbers its messages 0, 1, 2, ... and sends them all
//! to its one room. A message stays *open* while some member of that room (the sender
//! included) has not received it, with one bit per member saying who has; once every member
//! has it, it is forgotten. So a copy of message `m` arriving at member `r` is classified
//! from the open messages alone:
//! - `m` is not open although it was sent: every member already had it — a **duplicate**;
//! - `m` is open and `r`'s bit is set: a **duplicate**;
//! - otherwise it is `r`'s **first delivery** of `m`. It is **late** (an order violation:
//!   the protocol promises every member a connection's messages in the order they were
//!   sent) when `r` already has a later message of the same sender: a later one still open
//!   with `r`'s bit set, or a later one already forgotten (which, like every member, `r`
//!   had). A message that never arrives is a loss, not an order violation;
//! - a copy of a message never sent (a sequence not handed out, an unknown sender, a member
//!   of another room) is **unexpected**.
//!
//! What is still open when the run ends is **lost**, member by member. Nothing is counted
//! from totals, so a duplicate at one member can never hide a loss at another, and a
//! duplicate never counts towards the sender's window.
//!
//! **Why this is bounded.** A sender may have at most `window` messages open (its window
//! reopens only when a message is complete), so memory is senders × window × room size bits
//! however long the run: 10,000 clients in one room with one sender and a window of 4 keep
//! 5 KB. A set of every (receiver, message) pair would grow with the run; a last-seen
//! sequence per (receiver, sender) could not tell a duplicate from a late first delivery.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// One message in flight: who in its room has it.
struct Open {
    /// One bit per room member, set once that member received it.
    got: Vec<u64>,
    /// Members still without it.
    missing: u32,
}

impl Open {
    fn new(members: u32) -> Self {
        Self {
            got: vec![0; (members as usize).div_ceil(64)],
            missing: members,
        }
    }

    fn has(&self, member: u32) -> bool {
        let (word, bit) = ((member / 64) as usize, member % 64);
        self.got.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn set(&mut self, member: u32) {
        let (word, bit) = ((member / 64) as usize, member % 64);
        if let Some(w) = self.got.get_mut(word) {
            *w |= 1 << bit;
        }
    }
}

/// One sender's messages.
#[derive(Default)]
struct Flight {
    /// Messages sent and not yet received by every member, by sequence.
    open: BTreeMap<u64, Open>,
    /// The next sequence: messages `0..next` were sent (or are being sent).
    next: u64,
}

/// What one arriving copy was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arrival {
    /// The member's first copy of the message.
    First {
        /// The member is the message's sender (Parley: the acknowledgement; Django and the
        /// bare reference: the broadcast's echo).
        own: bool,
        /// The member already had a later message of the same sender.
        late: bool,
        /// Every member now has it: the sender's window reopens.
        complete: bool,
    },
    /// The member already had it.
    Duplicate,
    /// Not a message this run sent to this member.
    Unexpected,
}

/// The counts at the end of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    /// Senders' first copies of their own messages.
    pub(super) own: u64,
    /// Other members' first copies.
    pub(super) fanout: u64,
    /// Copies of a message the member already had.
    pub(super) duplicates: u64,
    /// First copies that came after a later message of the same sender.
    pub(super) late: u64,
    /// Copies of messages never sent to that member.
    pub(super) unexpected: u64,
    /// Senders that never got their own message back.
    pub(super) own_lost: u64,
    /// Other members' copies that never came.
    pub(super) fanout_lost: u64,
}

/// Every sender's messages in flight and the counts so far.
pub(super) struct Tracker {
    /// Per client: its room and its place among the room's members.
    seats: Vec<(usize, u32)>,
    /// Members per room.
    room_sizes: Vec<u32>,
    /// Per client: its messages (only senders send).
    flights: Vec<Mutex<Flight>>,
    own: AtomicU64,
    fanout: AtomicU64,
    duplicates: AtomicU64,
    late: AtomicU64,
    unexpected: AtomicU64,
}

impl Tracker {
    /// Clients in the rooms `room_of` gives (client `i` is in room `room_of[i]`).
    pub(super) fn new(room_of: &[usize]) -> Self {
        let rooms = room_of.iter().max().map_or(0, |r| r + 1);
        let mut room_sizes = vec![0u32; rooms];
        let seats = room_of
            .iter()
            .map(|&r| {
                let place = room_sizes[r];
                room_sizes[r] += 1;
                (r, place)
            })
            .collect();
        Self {
            seats,
            room_sizes,
            flights: room_of.iter().map(|_| Mutex::default()).collect(),
            own: AtomicU64::new(0),
            fanout: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            late: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
        }
    }

    /// Members of `sender`'s room, the sender included.
    pub(super) fn room_size(&self, sender: usize) -> u64 {
        self.seats
            .get(sender)
            .map_or(0, |&(room, _)| u64::from(self.room_sizes[room]))
    }

    /// Hands out `sender`'s next sequence and opens it (before the message is sent, so no
    /// copy can arrive first).
    pub(super) fn open(&self, sender: usize) -> u64 {
        let members = self.room_size(sender) as u32;
        let mut flight = self.flights[sender].lock();
        let seq = flight.next;
        flight.next += 1;
        flight.open.insert(seq, Open::new(members));
        seq
    }

    /// The message `open` just handed out could not be sent: forget it (the sender stops).
    pub(super) fn unsent(&self, sender: usize, seq: u64) {
        let mut flight = self.flights[sender].lock();
        flight.open.remove(&seq);
        if flight.next == seq + 1 {
            flight.next = seq;
        }
    }

    /// A copy of `sender`'s message `seq` arrived at client `me`.
    pub(super) fn arrived(&self, me: usize, sender: usize, seq: u64) -> Arrival {
        let copy = self.classify(me, sender, seq);
        let counter = match copy {
            Arrival::First { own: true, .. } => &self.own,
            Arrival::First { own: false, .. } => &self.fanout,
            Arrival::Duplicate => &self.duplicates,
            Arrival::Unexpected => &self.unexpected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Arrival::First { late: true, .. } = copy {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        copy
    }

    fn classify(&self, me: usize, sender: usize, seq: u64) -> Arrival {
        let (Some(&(room, place)), Some(&(sender_room, _)), Some(flight)) = (
            self.seats.get(me),
            self.seats.get(sender),
            self.flights.get(sender),
        ) else {
            return Arrival::Unexpected;
        };
        if room != sender_room {
            return Arrival::Unexpected;
        }
        let mut flight = flight.lock();
        if seq >= flight.next {
            return Arrival::Unexpected;
        }
        let later = flight.open.range(seq + 1..);
        let (later_open, later_here) = later.fold((0u64, false), |(n, here), (_, m)| {
            (n + 1, here || m.has(place))
        });
        // Later messages that are no longer open were complete: `me` had them too.
        let late = later_here || later_open < flight.next - seq - 1;
        let Some(message) = flight.open.get_mut(&seq) else {
            return Arrival::Duplicate;
        };
        if message.has(place) {
            return Arrival::Duplicate;
        }
        message.set(place);
        message.missing -= 1;
        let complete = message.missing == 0;
        if complete {
            flight.open.remove(&seq);
        }
        Arrival::First {
            own: me == sender,
            late,
            complete,
        }
    }

    /// The counts so far; what is still open counts as lost.
    pub(super) fn tally(&self) -> Tally {
        let (mut own_lost, mut fanout_lost) = (0, 0);
        for (sender, flight) in self.flights.iter().enumerate() {
            let own_place = self.seats[sender].1;
            for message in flight.lock().open.values() {
                let own_missing = u64::from(!message.has(own_place));
                own_lost += own_missing;
                fanout_lost += u64::from(message.missing) - own_missing;
            }
        }
        Tally {
            own: self.own.load(Ordering::Relaxed),
            fanout: self.fanout.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            unexpected: self.unexpected.load(Ordering::Relaxed),
            own_lost,
            fanout_lost,
        }
    }

    /// True while some member still lacks some message.
    pub(super) fn in_flight(&self) -> bool {
        self.flights.iter().any(|f| !f.lock().open.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rooms of three: clients 0, 2, 4 in room 0 and 1, 3, 5 in room 1.
    fn tracker() -> Tracker {
        Tracker::new(&[0, 1, 0, 1, 0, 1])
    }

    fn first(own: bool, late: bool, complete: bool) -> Arrival {
        Arrival::First {
            own,
            late,
            complete,
        }
    }

    #[test]
    fn a_duplicate_at_one_member_never_hides_a_loss_at_another() {
        let t = tracker();
        let m = t.open(0);
        assert_eq!(t.arrived(0, 0, m), first(true, false, false));
        assert_eq!(t.arrived(2, 0, m), first(false, false, false));
        // Member 2 gets it twice, member 4 never: by totals the run would look whole.
        assert_eq!(t.arrived(2, 0, m), Arrival::Duplicate);
        let tally = t.tally();
        assert_eq!((tally.own, tally.fanout), (1, 1));
        assert_eq!(
            (tally.duplicates, tally.fanout_lost, tally.own_lost),
            (1, 1, 0)
        );
        // The duplicate did not complete the message (the window stays shut).
        assert_eq!(t.arrived(4, 0, m), first(false, false, true));
        // Once complete it is forgotten, and a later copy is still a duplicate.
        assert_eq!(t.arrived(4, 0, m), Arrival::Duplicate);
        let tally = t.tally();
        assert_eq!(
            (tally.fanout, tally.duplicates, tally.fanout_lost),
            (2, 2, 0)
        );
    }

    #[test]
    fn a_first_copy_after_a_later_message_is_late_and_a_gap_alone_is_a_loss() {
        let t = tracker();
        let (m0, m1, m2) = (t.open(0), t.open(0), t.open(0));
        // Member 2 gets m1 before m0: m0 is late when it comes.
        assert_eq!(t.arrived(2, 0, m1), first(false, false, false));
        assert_eq!(t.arrived(2, 0, m0), first(false, true, false));
        // Member 4 gets m0 and m2 but never m1: a loss, not an order violation.
        assert_eq!(t.arrived(4, 0, m0), first(false, false, false));
        assert_eq!(t.arrived(4, 0, m2), first(false, false, false));
        // m2 complete (and forgotten) before the sender's own m1 arrives: still late.
        assert_eq!(t.arrived(2, 0, m2), first(false, false, false));
        assert_eq!(t.arrived(0, 0, m0), first(true, false, true));
        assert_eq!(t.arrived(0, 0, m2), first(true, false, true));
        assert_eq!(t.arrived(0, 0, m1), first(true, true, false));
        let tally = t.tally();
        assert_eq!((tally.late, tally.fanout_lost, tally.own_lost), (2, 1, 0));
        assert_eq!(tally.duplicates, 0);
    }

    #[test]
    fn copies_of_messages_never_sent_to_that_member_are_unexpected() {
        let t = tracker();
        let m = t.open(0);
        assert_eq!(
            t.arrived(1, 0, m),
            Arrival::Unexpected,
            "another room's member"
        );
        assert_eq!(t.arrived(2, 0, m + 1), Arrival::Unexpected, "never sent");
        assert_eq!(t.arrived(2, 9, 0), Arrival::Unexpected, "no such sender");
        assert_eq!(t.arrived(9, 0, m), Arrival::Unexpected, "no such member");
        // A message that could not be sent is no loss.
        let unsent = t.open(0);
        t.unsent(0, unsent);
        assert_eq!(t.arrived(2, 0, unsent), Arrival::Unexpected);
        let tally = t.tally();
        assert_eq!(
            (tally.unexpected, tally.fanout_lost, tally.own_lost),
            (5, 2, 1)
        );
    }

    #[test]
    fn rooms_larger_than_one_word_of_bits() {
        let t = Tracker::new(&[0; 130]);
        assert_eq!(t.room_size(0), 130);
        let m = t.open(0);
        for me in 0..130 {
            let copy = t.arrived(me, 0, m);
            assert_eq!(copy, first(me == 0, false, me == 129), "member {me}");
        }
        assert_eq!(t.arrived(129, 0, m), Arrival::Duplicate);
        assert_eq!(t.tally().fanout, 129);
    }
}
