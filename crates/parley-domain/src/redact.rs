//! Hiding secrets in text that goes to logs, errors and `check-config`.

/// `url` with the password of its user-info replaced by `***`
/// (`postgres://u:pw@h/db` → `postgres://u:***@h/db`, `redis://:pw@h` → `redis://:***@h`).
/// Anything that is not a URL with a password comes back unchanged. The one redactor of
/// every crate, so a database URL and a Redis URL are hidden alike.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The authority ends at the first '/', '?' or '#'; a password may contain none of them
    // unescaped, but may contain '@', so the host starts after the last '@'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_and_the_rest_kept() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("redis://:s3cret@h:6379/0"),
            "redis://:***@h:6379/0"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            redact_url("sqlite://parley.sqlite3"),
            "sqlite://parley.sqlite3"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        // An '@' after the authority (in the path or query) is not user-info.
        assert_eq!(
            redact_url("postgres://h/db?user=a@b"),
            "postgres://h/db?user=a@b"
        );
    }
}
