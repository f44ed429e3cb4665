//! The client address policy and audit see. `X-Forwarded-For` is believed only as far as a
//! chain of trusted proxies vouches for it: walking from the right, the first address that is
//! not a trusted proxy is the client. Anything a client wrote further left is ignored.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

use super::headers::X_FORWARDED_FOR;

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// Whether the TCP peer is one of `server.trusted_proxies` (an IPv4-mapped IPv6 peer counts
/// as its IPv4 address, as in [`client_ip`]). The one check the gateway, forward-auth and
/// `client_ip` share, so they never disagree about the same peer.
pub fn is_trusted_peer(peer: IpAddr, trusted: &[IpNet]) -> bool {
    is_trusted(peer.to_canonical(), trusted)
}

/// The peer (IPv4-mapped IPv6 as IPv4); when the peer is trusted, the right-most
/// `X-Forwarded-For` entry that is not itself trusted. An unparseable entry stops the walk:
/// the last good address wins (a trusted proxy's own address, at worst the peer).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted_peer(peer, trusted) {
        return peer;
    }
    let mut last_good = peer;
    let entries = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|value| value.as_bytes().rsplit(|&b| b == b','));
    for entry in entries {
        let entry = entry.trim_ascii();
        let Some(ip) = std::str::from_utf8(entry).ok().and_then(parse_entry) else {
            return last_good;
        };
        if !is_trusted(ip, trusted) {
            return ip;
        }
        last_good = ip;
    }
    last_good
}

/// An address as proxies write it: plain, or `[v6]` (some add brackets).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    entry.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn a_mapped_ipv4_peer_is_trusted_like_its_ipv4_address() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert!(is_trusted_peer(mapped, &trusted));
        assert!(!is_trusted_peer(
            "::ffff:11.1.2.3".parse().unwrap(),
            &trusted
        ));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let h = xff(&["1.2.3.4"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &nets(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &[]), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_peer_without_header_is_the_client() {
        let t = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &t),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn walks_from_the_right_past_trusted_proxies() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["6.6.6.6, 198.51.100.4, 10.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("198.51.100.4"));
    }

    #[test]
    fn spans_several_header_lines() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["6.6.6.6, 198.51.100.4", "10.2.2.2", " 10.1.1.1 "]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("198.51.100.4"));
    }

    #[test]
    fn all_trusted_returns_the_left_most() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["10.3.3.3, 10.2.2.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.3.3.3"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_good_address() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["198.51.100.4, unknown, 10.2.2.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.2.2.2"));
        let h = xff(&["198.51.100.4, not-an-ip"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.1"));
        let h = xff(&["198.51.100.4,,10.2.2.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.2.2.2"));
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["::ffff:198.51.100.4"]);
        assert_eq!(client_ip(ip("::ffff:10.0.0.1"), &h, &t), ip("198.51.100.4"));
        assert_eq!(
            client_ip(ip("::ffff:203.0.113.9"), &h, &t),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv6_entries_with_and_without_brackets() {
        let t = nets(&["fd00::/8"]);
        let h = xff(&["2001:db8::7, [fd00::2]"]);
        assert_eq!(client_ip(ip("fd00::1"), &h, &t), ip("2001:db8::7"));
    }
}
