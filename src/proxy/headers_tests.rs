//! Request header rewriting as the upstream sees it: hop-by-hop removal followed by
//! [`rewrite_request`], exactly as [`crate::proxy::forward`] runs them.

use std::net::{IpAddr, Ipv4Addr};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use uuid::Uuid;

use super::*;
use crate::config::ClaimHeader;
use crate::identity::{AuthMethod, Identity};
use crate::proxy::hop;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
const DECISION: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    h
}

struct Opts {
    trusted: bool,
    client_ip: IpAddr,
    tls: bool,
    pass_authorization: bool,
    preserve_host: bool,
    authority: Option<Authority>,
    identity: Option<Identity>,
    claims: Vec<ClaimHeader>,
    access_token: Option<HeaderValue>,
}

fn opts() -> Opts {
    Opts {
        trusted: false,
        client_ip: PEER,
        tls: false,
        pass_authorization: false,
        preserve_host: false,
        authority: None,
        identity: None,
        claims: vec![],
        access_token: None,
    }
}

fn rewrite(pairs: &[(&str, &str)], o: &Opts) -> HeaderMap {
    let (mut h, added) = rewrite_split(pairs, o);
    added.apply(&mut h);
    h
}

/// The client's fields as left in the map, and what portcullis adds.
fn rewrite_split(pairs: &[(&str, &str)], o: &Opts) -> (HeaderMap, Added) {
    let mut h = map(pairs);
    let client_host = h.get(header::HOST).cloned();
    hop::strip_request(&mut h);
    let upstream_host = HeaderValue::from_static("backend:8080");
    let rw = RequestRewrite {
        peer: PEER,
        tls: o.tls,
        trusted_peer: o.trusted,
        client_ip: o.client_ip,
        pass_authorization: o.pass_authorization,
        preserve_host: o.preserve_host,
        uri_authority: o.authority.as_ref(),
        upstream_host: &upstream_host,
        decision_id: DECISION,
        identity: o.identity.as_ref(),
        assertion: None,
        access_token: o.access_token.as_ref(),
        claim_headers: &o.claims,
    };
    let added = rewrite_request(&mut h, client_host, &rw);
    (h, added)
}

fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

fn alice() -> Identity {
    Identity {
        subject: "alice-sub".into(),
        issuer: "https://idp".into(),
        email: Some("alice@corp.example".into()),
        groups: vec!["eng".into(), "billing".into()],
        auth: AuthMethod::Session,
        ..Identity::default()
    }
}

#[test]
fn sets_forwarded_headers_for_an_untrusted_peer() {
    let h = rewrite(
        &[
            ("host", "app.corp.example"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=1.2.3.4"),
        ],
        &opts(),
    );
    assert_eq!(get(&h, "x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(get(&h, "x-forwarded-host"), Some("app.corp.example"));
    assert_eq!(get(&h, "forwarded"), None);
    assert_eq!(get(&h, "host"), Some("backend:8080"));
    assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
}

#[test]
fn extends_forwarded_headers_from_a_trusted_peer() {
    let o = Opts {
        trusted: true,
        tls: true,
        ..opts()
    };
    let h = rewrite(
        &[
            ("host", "internal-lb"),
            ("x-forwarded-for", "198.51.100.1, 10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "app.corp.example"),
            ("forwarded", "for=198.51.100.1"),
        ],
        &o,
    );
    assert_eq!(
        get(&h, "x-forwarded-for"),
        Some("198.51.100.1, 10.0.0.1, 10.0.0.2, 203.0.113.7")
    );
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(get(&h, "x-forwarded-host"), Some("app.corp.example"));
    assert_eq!(get(&h, "forwarded"), Some("for=198.51.100.1"));
}

#[test]
fn trusted_peer_without_forwarded_headers_gets_ours() {
    let o = Opts {
        trusted: true,
        tls: true,
        ..opts()
    };
    let h = rewrite(&[("host", "app.corp.example")], &o);
    assert_eq!(get(&h, "x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));
    assert_eq!(get(&h, "x-forwarded-host"), Some("app.corp.example"));
}

#[test]
fn connection_cannot_remove_headers_portcullis_sets() {
    let h = rewrite(
        &[
            ("host", "app.corp.example"),
            (
                "connection",
                "x-forwarded-for, x-forwarded-proto, x-forwarded-host, host, x-portcullis-decision-id",
            ),
        ],
        &Opts {
            identity: Some(alice()),
            claims: vec![ClaimHeader::User],
            ..opts()
        },
    );
    assert_eq!(get(&h, "x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(get(&h, "x-forwarded-host"), Some("app.corp.example"));
    assert_eq!(get(&h, "host"), Some("backend:8080"));
    assert!(h.contains_key("x-portcullis-decision-id"));
    assert_eq!(get(&h, "x-portcullis-user"), Some("alice-sub"));
    assert!(!h.contains_key("connection"));
}

#[test]
fn drops_every_identity_looking_header() {
    let spoofed = [
        ("x-portcullis-user", "root"),
        ("X-Portcullis-Email", "root@corp.example"),
        ("x-portcullis-groups", "admin"),
        ("x-portcullis-jwt-assertion", "forged"),
        ("x-portcullis-decision-id", "forged"),
        ("x-portcullis-anything", "x"),
        ("x-forwarded-user", "root"),
        ("x-forwarded-email", "root@corp.example"),
        ("x-forwarded-groups", "admin"),
        ("x-forwarded-preferred-username", "root"),
        ("x-auth-request-user", "root"),
        ("x-auth-request-email", "root@corp.example"),
        ("remote-user", "root"),
        ("x-remote-user", "root"),
        ("x_portcullis_user", "root"),
        ("remote_user", "root"),
        ("x-custom_thing", "1"),
    ];
    let h = rewrite(&spoofed, &opts());
    for (name, _) in spoofed {
        let lower = name.to_ascii_lowercase();
        if lower == "x-portcullis-decision-id" {
            assert_eq!(get(&h, &lower), Some(DECISION.to_string().as_str()));
        } else {
            assert!(
                !h.contains_key(lower.as_str()),
                "{name} reached the upstream"
            );
        }
    }
}

#[test]
fn keeps_ordinary_headers() {
    let h = rewrite(
        &[
            ("accept", "text/html"),
            ("x-request-id", "abc"),
            ("cookie", "a=1"),
            ("user-agent", "test"),
        ],
        &opts(),
    );
    for name in ["accept", "x-request-id", "cookie", "user-agent"] {
        assert!(h.contains_key(name), "{name} was dropped");
    }
}

#[test]
fn authorization_is_kept_only_with_pass_authorization() {
    let pairs = [("authorization", "Bearer t")];
    assert!(!rewrite(&pairs, &opts()).contains_key("authorization"));
    let o = Opts {
        pass_authorization: true,
        ..opts()
    };
    assert_eq!(get(&rewrite(&pairs, &o), "authorization"), Some("Bearer t"));
}

#[test]
fn expect_is_never_forwarded() {
    let h = rewrite(&[("expect", "100-continue")], &opts());
    assert!(!h.contains_key("expect"));
}

#[test]
fn host_is_the_upstreams_unless_preserved() {
    let pairs = [("host", "app.corp.example")];
    assert_eq!(get(&rewrite(&pairs, &opts()), "host"), Some("backend:8080"));
    let o = Opts {
        preserve_host: true,
        ..opts()
    };
    assert_eq!(get(&rewrite(&pairs, &o), "host"), Some("app.corp.example"));
}

#[test]
fn http2_host_comes_from_the_uri_authority() {
    let o = Opts {
        preserve_host: true,
        tls: true,
        authority: Some(Authority::from_static("h2.corp.example")),
        ..opts()
    };
    let h = rewrite(&[], &o);
    assert_eq!(get(&h, "host"), Some("h2.corp.example"));
    assert_eq!(get(&h, "x-forwarded-host"), Some("h2.corp.example"));
    assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));
}

#[test]
fn no_host_at_all_means_no_forwarded_host() {
    let h = rewrite(
        &[("x-forwarded-host", "evil")],
        &Opts {
            preserve_host: true,
            ..opts()
        },
    );
    assert!(!h.contains_key("x-forwarded-host"));
    assert_eq!(get(&h, "host"), Some("backend:8080"));
}

#[test]
fn claim_headers_follow_the_route() {
    let all = Opts {
        identity: Some(alice()),
        claims: vec![ClaimHeader::User, ClaimHeader::Email, ClaimHeader::Groups],
        ..opts()
    };
    let h = rewrite(&[], &all);
    assert_eq!(get(&h, "x-portcullis-user"), Some("alice-sub"));
    assert_eq!(get(&h, "x-portcullis-email"), Some("alice@corp.example"));
    assert_eq!(get(&h, "x-portcullis-groups"), Some("eng,billing"));
    assert_eq!(
        get(&h, "x-portcullis-decision-id"),
        Some(DECISION.to_string().as_str())
    );

    let email_only = Opts {
        identity: Some(alice()),
        claims: vec![ClaimHeader::Email],
        ..opts()
    };
    let h = rewrite(&[], &email_only);
    assert!(!h.contains_key("x-portcullis-user"));
    assert!(!h.contains_key("x-portcullis-groups"));

    let anonymous = Opts {
        claims: vec![ClaimHeader::User],
        ..opts()
    };
    assert!(!rewrite(&[("x-portcullis-user", "x")], &anonymous).contains_key("x-portcullis-user"));
}

#[test]
fn invalid_claim_values_are_skipped_and_utf8_is_kept() {
    let odd = Identity {
        subject: "bad\nsubject".into(),
        email: Some("zoë@corp.example".into()),
        groups: vec![],
        ..alice()
    };
    let o = Opts {
        identity: Some(odd),
        claims: vec![ClaimHeader::User, ClaimHeader::Email, ClaimHeader::Groups],
        ..opts()
    };
    let h = rewrite(&[], &o);
    assert!(!h.contains_key("x-portcullis-user"));
    assert_eq!(
        h.get("x-portcullis-email").unwrap().as_bytes(),
        "zoë@corp.example".as_bytes()
    );
    assert!(!h.contains_key("x-portcullis-groups"));
}

#[test]
fn ipv6_peer_is_written_plainly() {
    let mut h = HeaderMap::new();
    let upstream_host = HeaderValue::from_static("u");
    let rw = RequestRewrite {
        peer: "2001:db8::1".parse().unwrap(),
        tls: false,
        trusted_peer: false,
        client_ip: "2001:db8::1".parse().unwrap(),
        pass_authorization: false,
        preserve_host: false,
        uri_authority: None,
        upstream_host: &upstream_host,
        decision_id: DECISION,
        identity: None,
        assertion: None,
        access_token: None,
        claim_headers: &[],
    };
    rewrite_request(&mut h, None, &rw).apply(&mut h);
    assert_eq!(get(&h, "x-forwarded-for"), Some("2001:db8::1"));
}

#[test]
fn removes_only_the_session_cookie() {
    let mut h = map(&[
        ("cookie", "a=1; portcullis=secret; b=2"),
        ("cookie", "portcullis=x"),
    ]);
    remove_cookies(&mut h, &["portcullis"]);
    assert_eq!(get(&h, "cookie"), Some("a=1; b=2"));
    assert_eq!(h.get_all("cookie").iter().count(), 1);

    let mut h = map(&[("cookie", "portcullis=secret")]);
    remove_cookies(&mut h, &["portcullis"]);
    assert!(!h.contains_key("cookie"));

    let mut h = map(&[("cookie", "portcullis_other=1;portcullisx=2")]);
    remove_cookies(&mut h, &["portcullis"]);
    assert_eq!(get(&h, "cookie"), Some("portcullis_other=1;portcullisx=2"));

    // Both of portcullis's cookies in one pass.
    let mut h = map(&[("cookie", "portcullis_login=l; a=1; portcullis=s")]);
    remove_cookies(&mut h, &["portcullis", "portcullis_login"]);
    assert_eq!(get(&h, "cookie"), Some("a=1"));
}

#[test]
fn several_cookie_fields_become_one_for_http1_upstreams() {
    // HTTP/2 clients send one field per cookie (RFC 9113 8.2.3: join with "; ").
    let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]);
    remove_cookies(&mut h, &["portcullis"]);
    assert_eq!(h.get_all("cookie").iter().count(), 1);
    assert_eq!(get(&h, "cookie"), Some("a=1; b=2; c=3"));
}

#[test]
fn upstream_set_cookies_for_portcullis_cookies_are_removed_and_others_kept() {
    let mut h = HeaderMap::new();
    for value in [
        "theme=dark; Path=/",
        "portcullis=planted; Path=/; HttpOnly",
        " portcullis =spaced",
        "portcullis_login=x; Path=/.portcullis/",
        "Portcullis=other-case",
        "portcullis",
        "lang=en; Comment=portcullis=x",
    ] {
        h.append(header::SET_COOKIE, HeaderValue::from_static(value));
    }
    remove_set_cookies(&mut h, &["portcullis", "portcullis_login"]);
    let left: Vec<_> = h
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        left,
        [
            "theme=dark; Path=/",
            "Portcullis=other-case",
            "portcullis",
            "lang=en; Comment=portcullis=x",
        ]
    );
    // Nothing to remove: untouched.
    let mut h = HeaderMap::new();
    h.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
    remove_set_cookies(&mut h, &["portcullis"]);
    assert_eq!(h.get_all(header::SET_COOKIE).iter().count(), 1);
}

#[test]
fn x_real_ip_is_always_ours_and_client_address_claims_need_a_trusted_peer() {
    let claims = [
        ("x-real-ip", "10.9.9.9"),
        ("true-client-ip", "10.9.9.9"),
        ("x-client-ip", "10.9.9.9"),
        ("x-cluster-client-ip", "10.9.9.9"),
        ("cf-connecting-ip", "10.9.9.9"),
        ("fastly-client-ip", "10.9.9.9"),
        ("x-original-forwarded-for", "10.9.9.9"),
    ];
    // An untrusted peer: every claim dropped, X-Real-IP is the peer.
    let h = rewrite(&claims, &opts());
    assert_eq!(get(&h, "x-real-ip"), Some("203.0.113.7"));
    assert_eq!(h.get_all("x-real-ip").iter().count(), 1);
    for (name, _) in &claims[1..] {
        assert_eq!(get(&h, name), None, "{name} passed from an untrusted peer");
    }
    // A trusted proxy: its claims pass, X-Real-IP is the client it vouched for.
    let trusted = Opts {
        trusted: true,
        client_ip: "198.51.100.4".parse().unwrap(),
        ..opts()
    };
    let h = rewrite(&claims, &trusted);
    assert_eq!(get(&h, "x-real-ip"), Some("198.51.100.4"));
    for (name, value) in &claims[1..] {
        assert_eq!(
            get(&h, name),
            Some(*value),
            "{name} dropped from a trusted peer"
        );
    }
}

#[test]
fn path_and_method_overrides_are_dropped_even_from_trusted_proxies() {
    let overrides = [
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-http-method-override", "DELETE"),
        ("x-http-method", "DELETE"),
        ("x-method-override", "DELETE"),
    ];
    for trusted in [false, true] {
        let h = rewrite(&overrides, &Opts { trusted, ..opts() });
        for (name, _) in &overrides {
            assert_eq!(
                get(&h, name),
                None,
                "{name} passed (trusted peer: {trusted})"
            );
        }
    }
}

#[test]
fn forwarding_claims_need_a_trusted_peer() {
    let claims = [
        ("x-forwarded-port", "8443"),
        ("x-forwarded-prefix", "/evil"),
        ("x-forwarded-server", "evil.example"),
        ("x-forwarded-scheme", "https"),
        ("x-forwarded-ssl", "on"),
        ("x-forwarded-uri", "/admin"),
        ("x-original-host", "evil.example"),
        ("x-host", "evil.example"),
        ("x-http-host-override", "evil.example"),
        ("x-url-scheme", "https"),
        ("x-scheme", "https"),
        ("front-end-https", "on"),
        ("x-original-uri", "/admin"),
    ];
    let h = rewrite(&claims, &opts());
    for (name, _) in &claims {
        assert_eq!(get(&h, name), None, "{name} passed from an untrusted peer");
    }
    // What portcullis sets itself is still there, with its own values.
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(get(&h, "x-forwarded-for"), Some("203.0.113.7"));
    let trusted = Opts {
        trusted: true,
        ..opts()
    };
    let h = rewrite(&claims, &trusted);
    for (name, value) in &claims {
        assert_eq!(
            get(&h, name),
            Some(*value),
            "{name} dropped from a trusted proxy"
        );
    }
}

/// The own HTTP/1 client writes portcullis's fields beside the client's instead of inserting
/// them: the upstream must see exactly the fields an insert would have left, in every case
/// the rewrite distinguishes.
#[test]
fn the_own_clients_request_head_carries_exactly_the_rewritten_fields() {
    let spoofing = [
        ("host", "app.example"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
        ("x-real-ip", "6.6.6.6"),
        ("x-portcullis-user", "admin"),
        ("authorization", "Bearer client"),
        ("forwarded", "for=6.6.6.6"),
        ("expect", "100-continue"),
        ("accept", "*/*"),
        ("cookie", "a=b"),
    ];
    let trusted = Opts {
        trusted: true,
        client_ip: "198.51.100.2".parse().unwrap(),
        ..opts()
    };
    let passing = Opts {
        pass_authorization: true,
        preserve_host: true,
        tls: true,
        ..opts()
    };
    let signed_in = Opts {
        identity: Some(alice()),
        claims: vec![ClaimHeader::User, ClaimHeader::Email, ClaimHeader::User],
        access_token: Some(HeaderValue::from_static("Bearer route-token")),
        pass_authorization: true,
        ..opts()
    };
    let cases: [(&[(&str, &str)], &Opts); 6] = [
        (&spoofing, &opts()),
        (&spoofing, &trusted),
        (&spoofing, &passing),
        (&spoofing, &signed_in),
        (&[("accept", "*/*")], &trusted),
        (&[], &passing),
    ];
    for (i, (pairs, o)) in cases.into_iter().enumerate() {
        let (h, added) = rewrite_split(pairs, o);
        let method = http::Method::GET;
        let head = crate::proxy::h1::encode(&crate::proxy::h1::Outgoing {
            method: &method,
            target: crate::proxy::target::Target::whole("/"),
            headers: &h,
            added: &added,
        });
        let head = String::from_utf8(head).unwrap();
        let mut written: Vec<(String, String)> = head
            .trim_end()
            .lines()
            .skip(1)
            .map(|line| {
                let (name, value) = line.split_once(": ").unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect();
        assert!(
            head.lines().nth(1).unwrap().starts_with("host: "),
            "case {i}: {head}"
        );
        let mut inserted: Vec<(String, String)> = rewrite(pairs, o)
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        written.sort();
        inserted.sort();
        assert_eq!(written, inserted, "case {i}");
    }
}
