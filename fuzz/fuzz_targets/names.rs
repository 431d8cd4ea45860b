//! The name and text validators on arbitrary strings: never panic, and whatever they accept
//! validates again to the same value (so a stored name always reloads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_domain::{Email, MessageBody, RoomName, Topic, UserName};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(room) = RoomName::parse(raw) {
        assert_eq!(RoomName::parse(room.as_str()).ok(), Some(room.clone()));
        assert!(room.as_str().len() <= RoomName::MAX_LEN);
    }
    if let Ok(group) = RoomName::parse_group(raw) {
        assert_eq!(
            RoomName::parse_group(group.as_str()).ok(),
            Some(group.clone())
        );
    }
    if let Ok(user) = UserName::parse(raw) {
        assert_eq!(UserName::parse(user.as_str()).ok(), Some(user.clone()));
        assert!((UserName::MIN_LEN..=UserName::MAX_LEN).contains(&user.as_str().len()));
    }
    if let Ok(email) = Email::parse(raw) {
        assert_eq!(Email::parse(email.as_str()).ok(), Some(email.clone()));
    }
    if let Ok(topic) = Topic::parse(raw) {
        assert_eq!(Topic::parse(topic.as_str()).ok(), Some(topic.clone()));
    }
    if let Ok(body) = MessageBody::parse_with_limit(raw, 64) {
        assert!(body.as_str().chars().count() <= 64);
        assert_eq!(
            MessageBody::parse_with_limit(body.as_str(), 64).ok(),
            Some(body.clone())
        );
        assert!(!body.as_str().contains('\0'));
    }
});
