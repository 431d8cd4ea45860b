//! Mentions (`@name`, issue 17): the one parser of a message's text.
//!
//! The rule, applied by the server to every `send` (clients only highlight what it found):
//! - a mention is `@` followed by a user name ([`UserName`]'s rules: 3–32 ASCII letters,
//!   digits, `_`, `-`, `.`, starting with a letter; compared lower-case, so `@Ann` is `ann`);
//! - the `@` starts the text or follows a character that cannot be part of a name (space,
//!   punctuation, `(`...): `ann@example.com` mentions nobody;
//! - the name is the longest run of name characters after the `@`, without trailing dots
//!   (`@ann.` at the end of a sentence is `ann`);
//! - a name is counted once however often it appears; only the first
//!   `max_mentions_per_message` distinct names (default 20), in order of appearance, are
//!   looked up, and the rest stay plain text (the message is sent all the same);
//! - of those, only the room's members count, the author never (see
//!   [`parley_store::Store::mention_targets`]); anyone else named stays plain text.
//!
//! A message without `@` costs one byte scan and nothing else: no allocation, no query.

use parley_domain::UserName;

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// The distinct names `body` mentions, in order of first appearance, at most `max` of them.
/// Empty (and unallocated) when `body` has no `@` or `max` is 0.
pub fn mentioned_names(body: &str, max: usize) -> Vec<UserName> {
    if max == 0 || !body.contains('@') {
        return Vec::new();
    }
    let bytes = body.as_bytes();
    let mut names: Vec<UserName> = Vec::new();
    let mut at = 0;
    while let Some(offset) = body[at..].find('@') {
        let sign = at + offset;
        at = sign + 1;
        // `ann@example.com`, `@@ann`: not a mention.
        if sign > 0 && (is_name_char(bytes[sign - 1]) || bytes[sign - 1] == b'@') {
            continue;
        }
        let end = bytes[at..]
            .iter()
            .position(|&c| !is_name_char(c))
            .map_or(bytes.len(), |n| at + n);
        // Name characters are ASCII, so these are character boundaries.
        let candidate = body[at..end].trim_end_matches('.');
        at = end;
        let Ok(name) = UserName::parse(candidate) else {
            continue;
        };
        if !names.contains(&name) {
            names.push(name);
            if names.len() == max {
                break;
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(body: &str, max: usize) -> Vec<String> {
        mentioned_names(body, max)
            .into_iter()
            .map(UserName::into_string)
            .collect()
    }

    #[test]
    fn mentions_follow_the_user_name_rules() {
        assert_eq!(names("hi @ann and @Bob_2!", 20), ["ann", "bob_2"]);
        assert_eq!(names("@ann.", 20), ["ann"]);
        assert_eq!(names("(@guest.ann.x1y2z)", 20), ["guest.ann.x1y2z"]);
        assert_eq!(names("@ann, @ann and @ANN", 20), ["ann"]);
        // Too short, starting with a digit, too long: not names.
        assert!(names("@al @1abc", 20).is_empty());
        assert!(names(&format!("@a{}", "b".repeat(40)), 20).is_empty());
    }

    #[test]
    fn an_at_inside_a_word_is_not_a_mention() {
        assert!(names("mail ann@example.com", 20).is_empty());
        assert!(names("@@ann", 20).is_empty());
        assert!(names("no at sign here", 20).is_empty());
        assert!(names("@", 20).is_empty());
        assert_eq!(names("é@ann", 20), ["ann"]);
    }

    #[test]
    fn only_the_first_distinct_names_count() {
        let body = (0..30)
            .map(|i| format!("@user{i} @user0"))
            .collect::<Vec<_>>();
        let found = names(&body.join(" "), 20);
        assert_eq!(found.len(), 20);
        assert_eq!(found[0], "user0");
        assert_eq!(found[19], "user19");
        assert!(names("@ann", 0).is_empty());
    }

    #[test]
    fn a_message_without_at_allocates_nothing() {
        assert_eq!(mentioned_names("plain text", 20).capacity(), 0);
    }
}
