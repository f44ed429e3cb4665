use super::*;

fn redactor() -> Redactor {
    let mut claims = BTreeMap::new();
    claims.insert("email".to_owned(), RedactAction::Hmac);
    claims.insert("sub".to_owned(), RedactAction::Mask);
    claims.insert("groups".to_owned(), RedactAction::Drop);
    let config = RedactConfig {
        headers: BTreeMap::from([("X-Tenant-Secret".into(), RedactAction::Drop)]),
        query: BTreeMap::from([
            ("sid".into(), RedactAction::Drop),
            ("Ref".into(), RedactAction::Drop),
        ]),
        claims,
        hmac_key: None,
    };
    Redactor::new(&config, b"test-key".to_vec())
}

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";

#[test]
fn deny_list_hides_credentials_whatever_the_config() {
    let r = Redactor::new(&RedactConfig::default(), Vec::new());
    assert_eq!(
        r.query("a=1&access_token=x&code=y&state=s"),
        "a=1&access_token=[redacted]&code=[redacted]&state=s"
    );
    for name in [
        "id_token",
        "refresh_token",
        "token",
        "logout_token",
        "password",
        "client_secret",
        "api_key",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "csrf_token",
        "db_password",
    ] {
        let out = r.query(&format!("{name}=SECRETVALUE&keep=1"));
        assert!(!out.contains("SECRETVALUE"), "{name}: {out}");
        assert!(out.ends_with("&keep=1"), "{out}");
    }
}

#[test]
fn repeated_parameters_are_each_hidden() {
    let out = redactor().query("token=a1&token=b2&x=1&token=c3");
    assert_eq!(
        out,
        "token=[redacted]&token=[redacted]&x=1&token=[redacted]"
    );
}

#[test]
fn encoded_and_mixed_case_names_are_caught() {
    let r = redactor();
    for query in [
        "%61ccess_token=LEAK",
        "ACCESS_TOKEN=LEAK",
        "Access_Token=LEAK",
        "access%5Ftoken=LEAK",
        "%2561ccess_token=LEAK",
        "access_token%5B%5D=LEAK",
        "access_token[]=LEAK",
        "access_token[0]=LEAK",
        "+access_token+=LEAK",
        "%20code=LEAK",
        "CoDe=LEAK",
        "SID=LEAK",
        "ref=LEAK",
    ] {
        let out = r.query(query);
        assert!(!out.contains("LEAK"), "{query} -> {out}");
        assert!(out.contains(REDACTED), "{query} -> {out}");
    }
}

#[test]
fn other_separators_spaces_and_empty_values() {
    let r = redactor();
    assert_eq!(r.query("a=1;code=2"), "a=1;code=[redacted]");
    assert_eq!(r.query("q=hello+world&code="), "q=hello+world&code=");
    assert_eq!(r.query("flag&code"), "flag&code");
    assert_eq!(r.query("&&code=x&"), "&&code=[redacted]&");
    assert_eq!(r.query(""), "");
    assert_eq!(r.query("a==b&code==x"), "a==b&code=[redacted]");
    assert_eq!(r.query("q=a%20b"), "q=a%20b");
}

#[test]
fn non_utf8_escapes_do_not_panic_or_leak() {
    let r = redactor();
    assert_eq!(r.query("q=%FF%FE&x=%C3"), "q=%FF%FE&x=%C3");
    assert_eq!(r.query("%FFtoken=LEAK"), "%FFtoken=[redacted]");
    assert_eq!(r.query("code%=v"), "code%=v");
    // A truncated escape is kept as text and never panics.
    assert_eq!(r.query("q=%"), "q=%");
    assert_eq!(r.query("q=%4"), "q=%4");
}

#[test]
fn jwt_shaped_values_are_hidden_under_any_name() {
    let r = redactor();
    let out = r.query(&format!("next=/x&whatever={JWT}"));
    assert_eq!(out, "next=/x&whatever=[redacted]");
    let out = r.query(JWT);
    assert_eq!(out, REDACTED);
    assert_eq!(
        r.header("user-agent", format!("Bearer {JWT}").as_bytes()),
        Some(REDACTED.to_owned())
    );
}

#[test]
fn headers_deny_list_and_config() {
    let r = redactor();
    for name in [
        "Authorization",
        "cookie",
        "Set-Cookie",
        "proxy-authorization",
    ] {
        assert_eq!(r.header(name, b"v"), None, "{name}");
    }
    assert_eq!(r.header("x-tenant-secret", b"v"), None);
    assert_eq!(r.header("User-Agent", b"curl/8"), Some("curl/8".into()));
    assert_eq!(r.header("user-agent", b"a\xffb"), Some("a\u{fffd}b".into()));
}

#[test]
fn claims_follow_their_actions() {
    let r = redactor();
    let pseudonym = r.claim("email", "alice@corp.example").unwrap();
    assert!(
        pseudonym.starts_with("hmac:") && pseudonym.len() == 37,
        "{pseudonym}"
    );
    assert_eq!(r.claim("email", "alice@corp.example").unwrap(), pseudonym);
    assert_ne!(r.claim("email", "bob@corp.example").unwrap(), pseudonym);
    let other_key = Redactor::new(&RedactConfig::default(), b"other".to_vec());
    assert_ne!(other_key.pseudonym("alice@corp.example"), pseudonym);
    assert_eq!(r.claim("subject", "00u1abc"), Some("0***".into()));
    assert_eq!(r.claim("groups", "[\"a\"]"), None);
    assert_eq!(r.claim("iss", "https://idp"), Some("https://idp".into()));
}

#[test]
fn masks() {
    assert_eq!(mask("alice@corp.example"), "a***@corp.example");
    assert_eq!(mask("@x"), "***");
    assert_eq!(mask("abc"), "***");
    assert_eq!(mask("abcd"), "a***");
    assert_eq!(mask("élan"), "é***");
    assert_eq!(mask(""), "***");
}

fn with_actions(headers: &[(&str, RedactAction)], query: &[(&str, RedactAction)]) -> Redactor {
    let owned = |pairs: &[(&str, RedactAction)]| {
        pairs
            .iter()
            .map(|(name, action)| ((*name).to_owned(), *action))
            .collect()
    };
    let config = RedactConfig {
        headers: owned(headers),
        query: owned(query),
        ..RedactConfig::default()
    };
    Redactor::new(&config, b"test-key".to_vec())
}

#[test]
fn header_actions() {
    use RedactAction::*;
    let r = with_actions(
        &[
            ("User-Agent", Hmac),
            ("x-tenant", Keep),
            ("x-ticket", Mask),
            ("x-internal", Drop),
        ],
        &[],
    );
    let ua = r.header("user-agent", b"curl/8.5").unwrap();
    assert!(ua.starts_with("hmac:") && ua.len() == 37, "{ua}");
    assert_eq!(r.header("USER-AGENT", b"curl/8.5").unwrap(), ua);
    assert_ne!(r.header("user-agent", b"curl/8.6").unwrap(), ua);
    let other_key = Redactor::new(
        &RedactConfig {
            headers: BTreeMap::from([("user-agent".into(), Hmac)]),
            ..RedactConfig::default()
        },
        b"other-key".to_vec(),
    );
    assert_ne!(other_key.header("user-agent", b"curl/8.5").unwrap(), ua);
    assert_eq!(r.header("X-Tenant", b"acme"), Some("acme".into()));
    assert_eq!(r.header("x-ticket", b"TICKET-42"), Some("T***".into()));
    assert_eq!(r.header("X-Internal", b"v"), None);
    // A JWT under a kept or masked name is still hidden.
    assert_eq!(r.header("x-tenant", JWT.as_bytes()), Some(REDACTED.into()));
    assert_eq!(r.header("x-ticket", JWT.as_bytes()), Some(REDACTED.into()));
}

#[test]
fn never_stored_headers_win_over_any_action() {
    use RedactAction::*;
    // Config load rejects these; the redactor ignores them anyway.
    let r = with_actions(
        &[
            ("Authorization", Keep),
            ("cookie", Hmac),
            ("x-api-key", Mask),
        ],
        &[],
    );
    assert_eq!(r.header("authorization", b"Basic YTpi"), None);
    assert_eq!(r.header("Cookie", b"s=1"), None);
    assert_eq!(r.header("X-Api-Key", b"k"), None);
    assert!(never_stored_header("Proxy-Authorization"));
    assert!(!never_stored_header("user-agent"));
}

#[test]
fn query_actions() {
    use RedactAction::*;
    let r = with_actions(
        &[],
        &[
            ("user", Mask),
            ("page", Keep),
            ("email", Hmac),
            ("ssn", Drop),
        ],
    );
    assert_eq!(
        r.query("user=alice&page=2&ssn=123-45-6789&other=x"),
        "user=a***&page=2&ssn=[redacted]&other=x"
    );
    // Masks and pseudonyms are of the decoded value, so encodings agree.
    assert_eq!(
        r.query("user=alice%40corp.example"),
        "user=a***@corp.example"
    );
    assert_eq!(r.query("user=%C3%A9lan"), "user=%C3%A9***");
    assert_eq!(r.query("user=a+b+c+d"), "user=a***");
    let one = r.query("email=alice%40corp.example");
    let two = r.query("email=alice@corp.example");
    assert_eq!(one, two);
    let pseudonym = one.strip_prefix("email=").unwrap();
    assert!(
        pseudonym.starts_with("hmac:") && pseudonym.len() == 37,
        "{one}"
    );
    assert_eq!(pseudonym, r.pseudonym("alice@corp.example"));
    assert_ne!(r.query("email=bob@corp.example"), one);
    let other_key = Redactor::new(
        &RedactConfig {
            query: BTreeMap::from([("email".into(), Hmac)]),
            ..RedactConfig::default()
        },
        b"other-key".to_vec(),
    );
    assert_ne!(other_key.query("email=alice@corp.example"), one);
    // Empty and bare values have nothing to hide.
    assert_eq!(r.query("user=&ssn&email="), "user=&ssn&email=");
}

#[test]
fn query_actions_on_tricky_names() {
    use RedactAction::*;
    let r = with_actions(&[], &[("User", Mask), ("%73sn", Drop), ("ids[]", Hmac)]);
    for (query, expected) in [
        ("USER=alice", "USER=a***"),
        ("%55ser=alice", "%55ser=a***"),
        ("%2555ser=alice", "%2555ser=a***"),
        ("user[]=alice", "user[]=a***"),
        ("user%5B0%5D=alice", "user%5B0%5D=a***"),
        ("+user+=alice", "+user+=a***"),
        (
            "SSN=1&ssn=2&Ssn=3",
            "SSN=[redacted]&ssn=[redacted]&Ssn=[redacted]",
        ),
        (
            "user=alice&user=bobby;user=carol",
            "user=a***&user=b***;user=c***",
        ),
    ] {
        assert_eq!(r.query(query), expected, "{query}");
    }
    let ids = r.query("ids=7&ids[]=7&IDS%5B%5D=7");
    let parts: Vec<&str> = ids
        .split('&')
        .map(|p| p.split_once('=').unwrap().1)
        .collect();
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| *p == r.pseudonym("7")), "{ids}");
}

#[test]
fn never_stored_query_names_win_over_any_action() {
    use RedactAction::*;
    let r = with_actions(
        &[],
        &[
            ("code", Keep),
            ("access_token", Hmac),
            ("db_password", Mask),
            ("next", Keep),
        ],
    );
    assert_eq!(
        r.query("code=abc&Access_Token=t&%64b_password=p&next=/x"),
        "code=[redacted]&Access_Token=[redacted]&%64b_password=[redacted]&next=/x"
    );
    // A JWT is hidden under a kept, masked or hmac'd name alike.
    let r = with_actions(&[], &[("next", Keep), ("m", Mask), ("h", Hmac)]);
    assert_eq!(
        r.query(&format!("next={JWT}&m={JWT}&h={JWT}")),
        "next=[redacted]&m=[redacted]&h=[redacted]"
    );
    assert!(never_stored_query("%2561ccess_token"));
    assert!(never_stored_query("X-Amz-Signature"));
    assert!(!never_stored_query("page"));
}
