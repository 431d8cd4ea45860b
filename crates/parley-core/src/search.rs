//! Message search (issue 17): what a query means, which rooms it covers, and the highlighted
//! snippet of each result.
//!
//! **Who finds what.** A search covers exactly the rooms the user may *read* now
//! ([`crate::RoomAccess::can_read`]): public rooms and rooms they are a member of, minus
//! rooms they are banned from. Staff status does not widen it (staff never read a private or
//! direct conversation), a removed member finds nothing more of a private room, and a guest
//! finds what a guest may read (public rooms). With `room`, that room is checked first with
//! [`crate::RoomAccess::require_read`], so the refusal is the usual typed one (`not_found`,
//! `not_member`, `banned`). The store runs the query with the same rule as its filter
//! ([`parley_store::SearchQuery::reader`]).
//!
//! **What a query means.** The text is split into words: runs of letters and digits,
//! lower-cased; everything else (quotes, `*`, `:`, `&`, `|`, `-`, `NEAR`, …) is a separator,
//! so nothing a user types is ever read as FTS5 or tsquery syntax. A result contains every
//! word (AND), as a whole word (no stemming, no prefixes). An empty query (no word) or one
//! longer than [`SEARCH_MAX_QUERY_CHARS`] characters or with more than
//! [`SEARCH_MAX_TERMS`] words is refused with `invalid_field`.
//!
//! **Snippets** are computed here, the same on both databases: the message text (or a
//! window of [`SNIPPET_CHARS`] characters around the first hit) as segments, the matching
//! words marked `hit`. No HTML: the client renders each segment as text.

use crate::error::{EngineError, Result};
use crate::rooms::Rooms;
use parley_domain::protocol::ErrorCode;
use parley_domain::{Message, MessageId, RoomName, User};
use parley_store::SearchQuery;
use serde::Serialize;

/// The longest query accepted, in characters.
pub const SEARCH_MAX_QUERY_CHARS: usize = 200;
/// The most words a query may hold.
pub const SEARCH_MAX_TERMS: usize = 16;
/// Results per page when none is asked for.
pub const SEARCH_DEFAULT_LIMIT: u32 = 20;
/// The largest page served (a larger `limit` is capped).
pub const SEARCH_MAX_LIMIT: u32 = 50;
/// A snippet's length in characters (longer messages are cut around the first hit).
pub const SNIPPET_CHARS: usize = 160;

/// What to search for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchRequest {
    /// The text typed.
    pub q: String,
    /// Only this room.
    pub room: Option<RoomName>,
    /// Only messages older than this id (the `next_before` of the previous page).
    pub before: Option<MessageId>,
    /// Page size: default [`SEARCH_DEFAULT_LIMIT`], capped at [`SEARCH_MAX_LIMIT`].
    pub limit: Option<u32>,
}

/// One piece of a snippet: plain text, or a word that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnippetSegment {
    /// The text, verbatim (render it as text, never as HTML).
    pub text: String,
    /// It is a word of the query.
    pub hit: bool,
}

/// One result: the message record (with its room name and the sender's `guest` mark) and
/// its highlighted snippet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    /// The message, as history serves it.
    pub message: Message,
    /// The text around the first hit, in segments.
    pub snippet: Vec<SnippetSegment>,
}

/// One page of results, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    /// The words searched for, as the server read the query.
    pub terms: Vec<String>,
    /// The results, newest first.
    pub results: Vec<SearchHit>,
    /// Older results exist.
    pub has_more: bool,
    /// The `before` of the next page (the last result's id) when there is one.
    pub next_before: Option<MessageId>,
}

/// The words of `text`: runs of letters and digits, lower-cased.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(move |w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
}

/// The terms of a query, or `invalid_field`.
pub fn parse_query(q: &str) -> Result<Vec<String>> {
    if q.chars().count() > SEARCH_MAX_QUERY_CHARS {
        return Err(EngineError::refused(
            ErrorCode::InvalidField,
            format!("q: at most {SEARCH_MAX_QUERY_CHARS} characters"),
        ));
    }
    let mut terms: Vec<String> = Vec::new();
    for (_, w) in words(q) {
        let w = w.to_lowercase();
        if !terms.contains(&w) {
            terms.push(w);
        }
    }
    if terms.is_empty() {
        return Err(EngineError::refused(
            ErrorCode::InvalidField,
            "q: give at least one word to search for",
        ));
    }
    if terms.len() > SEARCH_MAX_TERMS {
        return Err(EngineError::refused(
            ErrorCode::InvalidField,
            format!("q: at most {SEARCH_MAX_TERMS} words"),
        ));
    }
    Ok(terms)
}

/// The snippet of `body` for `terms`: segments, hits marked.
pub fn snippet(body: &str, terms: &[String]) -> Vec<SnippetSegment> {
    let hits: Vec<(usize, usize)> = words(body)
        .filter(|(_, w)| terms.iter().any(|t| *t == w.to_lowercase()))
        .map(|(at, w)| (at, at + w.len()))
        .collect();
    // The window, in bytes, on char boundaries.
    let (mut start, mut end) = (0, body.len());
    if body.chars().count() > SNIPPET_CHARS {
        let first = hits.first().map_or(0, |h| h.0);
        // Up to a quarter of the window before the first hit.
        start = body[..first]
            .char_indices()
            .rev()
            .nth(SNIPPET_CHARS / 4 - 1)
            .map_or(0, |(i, _)| i);
        end = body[start..]
            .char_indices()
            .nth(SNIPPET_CHARS)
            .map_or(body.len(), |(i, _)| start + i);
    }
    let mut out = Vec::new();
    let mut push = |text: &str, hit: bool| {
        if !text.is_empty() {
            out.push(SnippetSegment {
                text: text.to_owned(),
                hit,
            });
        }
    };
    if start > 0 {
        push("…", false);
    }
    let mut at = start;
    for (a, b) in hits {
        if a < start || b > end {
            continue;
        }
        push(&body[at..a], false);
        push(&body[a..b], true);
        at = b;
    }
    push(&body[at..end], false);
    if end < body.len() {
        push("…", false);
    }
    out
}

impl Rooms {
    /// One page of `user`'s search (see the module doc for the rules).
    pub async fn search(&self, user: &User, request: &SearchRequest) -> Result<SearchResults> {
        let terms = parse_query(&request.q)?;
        let room = match &request.room {
            Some(name) => {
                let access = self.access(user, name).await?;
                access.require_read()?;
                Some(access.room().id)
            }
            None => None,
        };
        let limit = request
            .limit
            .unwrap_or(SEARCH_DEFAULT_LIMIT)
            .clamp(1, SEARCH_MAX_LIMIT);
        let page = self
            .inner
            .store
            .search_messages(&SearchQuery {
                reader: user.id,
                terms: terms.clone(),
                room,
                before: request.before,
                limit,
            })
            .await?;
        let next_before = if page.has_more {
            page.messages.last().map(|m| m.id)
        } else {
            None
        };
        let results = page
            .messages
            .into_iter()
            .map(|message| SearchHit {
                snippet: snippet(&message.body, &terms),
                message,
            })
            .collect();
        Ok(SearchResults {
            terms,
            results,
            has_more: page.has_more,
            next_before,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(s: &[SnippetSegment]) -> Vec<&str> {
        s.iter()
            .filter(|g| g.hit)
            .map(|g| g.text.as_str())
            .collect()
    }

    #[test]
    fn syntax_is_only_separators() {
        assert_eq!(
            parse_query("\"Foo\" OR bar* NEAR(x) -baz:1 & |").unwrap(),
            ["foo", "or", "bar", "near", "x", "baz", "1"]
        );
        assert!(parse_query("  *:& \"\" ").is_err());
        assert!(parse_query(&"a ".repeat(150)).is_err());
    }

    #[test]
    fn snippet_marks_whole_words_case_insensitively() {
        let s = snippet("Hello hell, HELLO!", &["hello".into()]);
        assert_eq!(hits(&s), ["Hello", "HELLO"]);
        let text: String = s.iter().map(|g| g.text.as_str()).collect();
        assert_eq!(text, "Hello hell, HELLO!");
    }

    #[test]
    fn long_bodies_are_cut_around_the_first_hit() {
        let body = format!("{} needle {}", "é".repeat(300), "x ".repeat(300));
        let s = snippet(&body, &["needle".into()]);
        assert_eq!(hits(&s), ["needle"]);
        assert_eq!(s.first().unwrap().text, "…");
        assert_eq!(s.last().unwrap().text, "…");
        let len: usize = s.iter().map(|g| g.text.chars().count()).sum();
        assert!(len <= SNIPPET_CHARS + 2);
    }
}
