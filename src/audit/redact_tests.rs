use super::*;

fn redactor() -> Redactor {
    let mut claims = BTreeMap::new();
    claims.insert("email".to_owned(), RedactAction::Hmac);
    claims.insert("sub".to_owned(), RedactAction::Mask);
    claims.insert("groups".to_owned(), RedactAction::Drop);
    let config = RedactConfig {
        headers: vec!["X-Tenant-Secret".into()],
        query: vec!["sid".into(), "Ref".into()],
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
