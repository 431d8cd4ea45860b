//! The domain rules as properties: direct-room keys, room and user name normalization, the
//! group/direct name split, and the message body's acceptance rule, each stated once as an
//! oracle and checked on generated inputs (the protocol's round trips are in
//! `properties.rs`).

// Strategies may unwrap too: a panic is a failed case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use parley_domain::{DirectKey, DomainError, MessageBody, RoomName, UserId, UserName};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn direct_keys_are_order_independent_and_name_a_direct_room(a in 1i64..1_000_000, b in 1i64..1_000_000) {
        let (a, b) = (UserId(a), UserId(b));
        if a == b {
            prop_assert_eq!(DirectKey::new(a, b), Err(DomainError::DirectWithSelf));
            return Ok(());
        }
        let ab = DirectKey::new(a, b).unwrap();
        prop_assert_eq!(ab, DirectKey::new(b, a).unwrap());
        prop_assert!(ab.low() < ab.high());
        prop_assert!(ab.contains(a) && ab.contains(b));
        prop_assert_eq!(ab.other(a), Some(b));
        prop_assert_eq!(ab.other(b), Some(a));
        let name = ab.room_name();
        prop_assert!(name.is_direct());
        // A direct name is a valid room name but can never be taken by a group room.
        prop_assert_eq!(RoomName::parse(name.as_str()).unwrap(), name.clone());
        prop_assert!(RoomName::parse_group(name.as_str()).is_err());
        // Distinct pairs, distinct rooms.
        let shifted = DirectKey::new(UserId(a.0 + 1_000_000), b).unwrap();
        prop_assert_ne!(shifted.room_name(), name);
    }

    #[test]
    fn room_names_are_case_insensitive_and_normalized(raw in "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}") {
        let name = RoomName::parse(&raw).unwrap();
        prop_assert_eq!(name.as_str(), raw.to_ascii_lowercase());
        prop_assert_eq!(RoomName::parse(&raw.to_ascii_uppercase()).unwrap(), name.clone());
        prop_assert_eq!(name.is_direct(), raw.to_ascii_lowercase().starts_with("dm."));
        prop_assert_eq!(RoomName::parse_group(&raw).is_ok(), !name.is_direct());
    }

    #[test]
    fn room_names_outside_the_alphabet_or_length_are_refused(
        prefix in "[a-z0-9]{1,10}",
        bad in "[^a-zA-Z0-9_.-]",
        long in "[a-z]{65,100}",
    ) {
        let raw = format!("{prefix}{bad}");
        prop_assert!(RoomName::parse(&raw).is_err());
        prop_assert!(RoomName::parse(&long).is_err());
        prop_assert!(RoomName::parse("").is_err());
    }

    #[test]
    fn user_names_follow_their_rule(raw in "\\PC{0,40}") {
        let len = raw.chars().count();
        let rule = (UserName::MIN_LEN..=UserName::MAX_LEN).contains(&len)
            && raw.starts_with(|c: char| c.is_ascii_alphabetic())
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        let parsed = UserName::parse(&raw);
        prop_assert_eq!(parsed.is_ok(), rule, "{:?}", raw);
        if let Ok(name) = parsed {
            prop_assert_eq!(name.as_str(), raw.to_ascii_lowercase());
        }
    }

    #[test]
    fn bodies_are_accepted_exactly_by_the_rule(raw in "(\\PC|\\s|\u{0}){0,40}", max in 1usize..50) {
        let rule = !raw.trim().is_empty() && !raw.contains('\0') && raw.chars().count() <= max;
        let parsed = MessageBody::parse_with_limit(&raw, max);
        prop_assert_eq!(parsed.is_ok(), rule, "{:?} max {}", raw, max);
        // Kept verbatim: no trimming, no normalization.
        if let Ok(body) = parsed {
            prop_assert_eq!(body.as_str(), raw.as_str());
        }
    }
}
