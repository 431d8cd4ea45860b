//! The one definition of "the client address of this request", for every per-address limit
//! and the request logs, behind reverse proxies or not.
//!
//! The TCP peer is the client unless it is one of the `trusted_proxies`. When it is, the
//! client is found in the forwarding header the proxy wrote: walking the hops from the
//! right (the proxy nearest to us appends last), the first address that is not itself a
//! trusted proxy. Addresses left of it were written by the client or by proxies nobody
//! vouches for, and are never used: a client cannot pick its own address by sending the
//! header itself.
//!
//! Which header: `X-Forwarded-For` when the request has one (what nginx, HAProxy and most
//! load balancers write), else RFC 7239 `Forwarded` (its `for=` parameters). A proxy that
//! writes only `Forwarded` must therefore remove any `X-Forwarded-For` a client sent (the
//! shipped nginx configuration writes `X-Forwarded-For` and removes `Forwarded`).
//!
//! A header that cannot be read where it matters (not text, a hop that is no address,
//! `for=unknown`, an obfuscated `for=_hidden`) gives the TCP peer: all such requests share
//! the proxy's allowance rather than anyone getting an address of their choosing.

use actix_web::dev::RequestHead;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The networks whose connections are reverse proxies, trusted to say who their client is.
/// Empty (the default): nobody is, and forwarding headers are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts connections from any of `networks` (a single address is a /32 or /128).
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy (an IPv4-mapped IPv6 address counts as its IPv4
    /// address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request that arrived from `peer` with `headers` (`None`
    /// when the peer is unknown).
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.contains(peer) {
            return Some(peer);
        }
        let hops = if headers.contains_key(&X_FORWARDED_FOR) {
            Hops::XForwardedFor(joined(headers, &X_FORWARDED_FOR))
        } else if headers.contains_key(header::FORWARDED) {
            Hops::Forwarded(joined(headers, &header::FORWARDED))
        } else {
            return Some(peer);
        };
        Some(self.rightmost_untrusted(hops).unwrap_or(peer))
    }

    /// Whether the request reached the client over HTTPS: the scheme the nearest proxy
    /// reports (`X-Forwarded-Proto`, else `Forwarded: proto=`) only when the TCP peer is a
    /// trusted proxy; otherwise the connection's own (`tls`). A client cannot make a
    /// plain-HTTP request count as HTTPS by sending the header itself.
    pub fn is_https(&self, head: &RequestHead, tls: bool) -> bool {
        let trusted = head
            .peer_addr
            .is_some_and(|a| self.contains(canonical(a.ip())));
        if !trusted {
            return tls;
        }
        let headers = head.headers();
        let proto = if let Some(v) = joined(headers, &X_FORWARDED_PROTO) {
            // The proxy nearest to us appends last.
            v.rsplit(',').next().map(|p| p.trim().to_ascii_lowercase())
        } else {
            joined(headers, &header::FORWARDED).and_then(|v| {
                v.rsplit(',').next().and_then(|hop| {
                    hop.split(';').find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        k.trim()
                            .eq_ignore_ascii_case("proto")
                            .then(|| v.trim().trim_matches('"').to_ascii_lowercase())
                    })
                })
            })
        };
        proto.map_or(tls, |p| p == "https")
    }

    /// The client of a request (see [`TrustedProxies::client_ip`]).
    pub fn client_of(&self, head: &RequestHead) -> Option<IpAddr> {
        self.client_ip(head.peer_addr.map(|a| a.ip()), head.headers())
    }

    /// The first hop from the right that is not a trusted proxy; the left-most hop when all
    /// are trusted; `None` when a hop that had to be read is not an address (or there is no
    /// hop at all).
    fn rightmost_untrusted(&self, hops: Hops) -> Option<IpAddr> {
        let list = match &hops {
            Hops::XForwardedFor(Some(s)) | Hops::Forwarded(Some(s)) => s.as_str(),
            Hops::XForwardedFor(None) | Hops::Forwarded(None) => return None,
        };
        let mut leftmost = None;
        for hop in list.rsplit(',') {
            let ip = match hops {
                Hops::XForwardedFor(_) => parse_address(hop.trim())?,
                Hops::Forwarded(_) => forwarded_for(hop)?,
            };
            if !self.contains(ip) {
                return Some(ip);
            }
            leftmost = Some(ip);
        }
        leftmost
    }
}

/// A forwarding header's hops, comma-separated, all its lines joined in order (`None`: not
/// text).
enum Hops {
    XForwardedFor(Option<String>),
    Forwarded(Option<String>),
}

/// Every line of header `name`, joined with commas (`None` if one is not visible ASCII).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let lines = headers
        .get_all(name)
        .map(|v| v.to_str().ok())
        .collect::<Option<Vec<_>>>()?;
    Some(lines.join(","))
}

/// An IPv4-mapped IPv6 address as its IPv4 address; others unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, `192.0.2.1:4711` or `[2001:db8::1]:4711`.
fn parse_address(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// The address in the `for=` parameter of one `Forwarded` element
/// (`for=192.0.2.60;proto=https`, `For="[2001:db8::17]:4711"`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim())
    })?;
    let value = match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => value,
    };
    parse_address(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            nets.iter()
                .map(|n| {
                    n.parse()
                        .unwrap_or_else(|_| IpNet::from(n.parse::<IpAddr>().unwrap()))
                })
                .collect(),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    const PROXY: &str = "10.0.0.1";

    fn client(proxies: &TrustedProxies, pairs: &[(&str, &[u8])]) -> Option<IpAddr> {
        proxies.client_ip(Some(ip(PROXY)), &headers(pairs))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let nobody = TrustedProxies::default();
        assert_eq!(
            client(&nobody, &[("x-forwarded-for", b"203.0.113.9")]),
            Some(ip(PROXY))
        );
        let others = trusted(&["192.168.0.0/16"]);
        assert_eq!(
            client(&others, &[("forwarded", b"for=203.0.113.9")]),
            Some(ip(PROXY))
        );
        assert_eq!(nobody.client_ip(None, &HeaderMap::new()), None);
    }

    #[test]
    fn a_trusted_peer_gives_the_rightmost_untrusted_hop() {
        let proxies = trusted(&["10.0.0.0/8"]);
        // What the client wrote (left) is passed over.
        let xff: &[u8] = b"198.51.100.1, 203.0.113.9, 10.0.0.7";
        assert_eq!(
            client(&proxies, &[("x-forwarded-for", xff)]),
            Some(ip("203.0.113.9"))
        );
        // Several lines are one list, in order.
        assert_eq!(
            client(
                &proxies,
                &[
                    ("x-forwarded-for", b"198.51.100.1"),
                    ("x-forwarded-for", b"203.0.113.9")
                ]
            ),
            Some(ip("203.0.113.9"))
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            client(&proxies, &[("x-forwarded-for", b"10.1.1.1, 10.0.0.7")]),
            Some(ip("10.1.1.1"))
        );
        // No header: the proxy itself.
        assert_eq!(client(&proxies, &[]), Some(ip(PROXY)));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let proxies = trusted(&[PROXY]);
        let forwarded: &[u8] =
            b"for=198.51.100.1, For=\"[2001:db8:cafe::17]:4711\";proto=https;by=10.0.0.1";
        assert_eq!(
            client(&proxies, &[("forwarded", forwarded)]),
            Some(ip("2001:db8:cafe::17"))
        );
        assert_eq!(
            client(&proxies, &[("forwarded", b"for=\"192.0.2.43:47011\"")]),
            Some(ip("192.0.2.43"))
        );
        // Both: X-Forwarded-For wins.
        assert_eq!(
            client(
                &proxies,
                &[
                    ("forwarded", b"for=198.51.100.1"),
                    ("x-forwarded-for", b"203.0.113.9")
                ]
            ),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn unreadable_hops_give_the_peer_but_only_where_they_matter() {
        let proxies = trusted(&[PROXY]);
        for bad in [
            &b"not-an-address"[..],
            b"",
            b" , ",
            b"203.0.113.9, garbage",
            b"300.1.1.1",
            b"\xff\xfe",
        ] {
            assert_eq!(
                client(&proxies, &[("x-forwarded-for", bad)]),
                Some(ip(PROXY)),
                "{bad:?}"
            );
        }
        for bad in [
            &b"for=unknown"[..],
            b"for=_hidden",
            b"proto=https",
            b"for=\"192.0.2.1",
            b"for",
        ] {
            assert_eq!(
                client(&proxies, &[("forwarded", bad)]),
                Some(ip(PROXY)),
                "{bad:?}"
            );
        }
        // Garbage left of the client's hop is never read.
        assert_eq!(
            client(&proxies, &[("x-forwarded-for", b"garbage, 203.0.113.9")]),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn mapped_addresses_count_as_ipv4() {
        let proxies = trusted(&["127.0.0.1"]);
        assert!(proxies.contains(ip("::ffff:127.0.0.1")));
        assert_eq!(
            proxies.client_ip(
                Some(ip("::ffff:127.0.0.1")),
                &headers(&[("x-forwarded-for", b"::ffff:203.0.113.9")])
            ),
            Some(ip("203.0.113.9"))
        );
    }
}
