//! Loading tests: defaults, conversion of every key, and every error class with its key path.
//! Host parsing belongs to `crate::routes`; tests here never depend on it succeeding.

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;
use ipnet::IpNet;

use super::*;
use crate::identity::AuthMethod;
use crate::policy::{ClaimValue, Criterion, PathPattern};
use crate::secrets::SecretRef;

/// The TOML example from the design document's Configuration section, verbatim.
const DESIGN_EXAMPLE: &str = r##"version = 1

[server]
listen = "127.0.0.1:8080"
public_url = "https://gate.corp.example"
admin_listen = "127.0.0.1:9090"
# tls = { cert = "file:certs/gate.pem", key = "file:certs/gate.key" }

[session]
store = "sqlite"                    # memory | sqlite | postgres | redis
url = "sqlite://data/sessions.db"
cookie_name = "portcullis"
idle_timeout = "1h"
absolute_timeout = "12h"

[[providers]]
id = "okta"
preset = "okta"                     # generic | okta | entra | google | keycloak | cognito
issuer = "https://example.okta.com/oauth2/default"
client_id = "0oa..."
client_secret = "aws-sm:portcullis/okta#client_secret"
scopes = ["openid", "email", "profile", "groups"]

[[token_issuers]]                   # bearer tokens for service-to-service calls
issuer = "https://example.okta.com/oauth2/default"
audiences = ["api://billing"]
algorithms = ["RS256", "ES256"]
max_lifetime = "15m"                # refuse tokens whose exp - iat exceeds this
leeway = "30s"

[audit]
url = "sqlite://data/audit.db"      # or postgres://...
durability = "async"                # async | strict (see guarantees)
retention = "90d"
[audit.redact]
headers = ["authorization", "cookie", "x-api-key"]
query = ["token", "code", "access_token", "password", "secret"]
claims = { email = "hmac" }         # keep | drop | hmac | mask
[audit.access]
allow = [{ groups = ["security"] }]

[[routes]]
id = "billing-api"
host = "billing.corp.example"       # optional
path = "/api/"                      # prefix
methods = ["GET", "POST"]           # optional
upstream = ["http://10.0.0.5:8080", "http://10.0.0.6:8080"]
auth = ["session", "bearer"]        # how identity may be presented: session, bearer, none
headers = ["email", "groups"]       # claim headers to send
[routes.policy]
allow = [
  { id = "billing-team", groups = ["billing"] },
  { id = "readonly-staff", email_domains = ["corp.example"], methods = ["GET"] },
  { id = "billing-bot", auth = ["bearer"], scopes = ["billing.read"] },
]
deny = [{ id = "no-contractors", groups = ["contractors"], methods = ["POST"] }]
"##;

const MINIMAL: &str = r#"
version = 1
[[routes]]
id = "app"
upstream = "http://127.0.0.1:9001"
[routes.policy]
allow = [{ public = true }]
"#;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn load_ok(text: &str) -> Config {
    match load_str(text, no_env()) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

fn errors(text: &str) -> Vec<ConfigError> {
    match load_str(text, no_env()) {
        Ok(_) => panic!("expected errors"),
        Err(ConfigErrors(errors)) => errors,
    }
}

/// Asserts there is an error at `path` whose message contains `needle`.
#[track_caller]
fn assert_error(errors: &[ConfigError], path: &str, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.path == path && e.message.contains(needle)),
        "no error at `{path}` containing `{needle}` in:\n{}",
        ConfigErrors(errors.to_vec())
    );
}

/// A minimal file with one route whose body (after `id` and `upstream`) is `route`.
fn with_route(route: &str) -> String {
    format!("version = 1\n[[routes]]\nid = \"r\"\nupstream = \"http://127.0.0.1:9001\"\n{route}")
}

#[test]
fn minimal_config_gets_every_default() {
    let config = load_ok(MINIMAL);
    let s = &config.server;
    assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
    assert_eq!(s.public_url.as_str(), "http://127.0.0.1:8080/");
    assert_eq!(
        s.admin_listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
    );
    assert!(s.tls.is_none() && s.trusted_proxies.is_empty());
    assert_eq!(s.header_read_timeout, Duration::from_secs(10));
    assert_eq!(s.max_header_bytes, 64 * 1024);
    assert_eq!((s.max_headers, s.max_connections), (100, 10_000));
    assert_eq!(s.shutdown_grace, Duration::from_secs(8));

    let r = &config.routes[0];
    assert_eq!(&*r.id, "app");
    assert!(r.host.is_none() && r.methods.is_none());
    assert_eq!(r.path, "/");
    assert_eq!(r.upstreams.len(), 1);
    assert_eq!(r.auth, vec![AuthMethod::Session, AuthMethod::Bearer]);
    assert_eq!(r.policy.accepts, r.auth);
    assert_eq!(r.audience, "app");
    assert!(r.headers.is_empty());
    assert!(!r.preserve_host && !r.strip_prefix && !r.pass_authorization);
    assert_eq!(r.timeouts.connect, Duration::from_secs(5));
    assert_eq!(r.timeouts.response_header, Duration::from_secs(30));
    assert_eq!(r.timeouts.idle, Duration::from_secs(60));
    assert_eq!(r.max_body, Some(10 * 1024 * 1024));
    assert_eq!(r.retries, 1);
    assert_eq!(r.eject.failures, 3);
    assert_eq!(r.eject.duration, Duration::from_secs(30));
    assert!(r.upstream_ca.is_none());
    assert_eq!(r.policy.allow[0].criteria, vec![Criterion::Public]);
    assert_eq!(&*r.policy.allow[0].id, "allow[0]");
}

#[test]
fn server_keys_convert() {
    let config = load_ok(&format!(
        r#"{MINIMAL}
[server]
listen = "0.0.0.0:8443"
public_url = "https://gate.corp.example"
admin_listen = "off"
tls = {{ cert = "file:certs/gate.pem", key = "env:GATE_KEY" }}
trusted_proxies = ["10.0.0.0/8", "192.168.1.7", "::1"]
allowed_redirect_hosts = ["App.Corp.Example"]
header_read_timeout = "5s"
max_header_bytes = "32KiB"
max_headers = 50
max_connections = 20
shutdown_grace = "1m"
"#
    ));
    let s = &config.server;
    assert_eq!(s.listen.port(), 8443);
    assert_eq!(s.public_url.host_str(), Some("gate.corp.example"));
    assert_eq!(s.admin_listen, None);
    let tls = s.tls.as_ref().unwrap();
    assert_eq!(tls.cert, SecretRef::File("certs/gate.pem".into()));
    assert_eq!(tls.key, SecretRef::Env("GATE_KEY".into()));
    let nets: Vec<IpNet> = ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(s.trusted_proxies, nets);
    assert_eq!(
        s.allowed_redirect_hosts,
        vec!["app.corp.example".to_owned()]
    );
    assert_eq!(s.header_read_timeout, Duration::from_secs(5));
    assert_eq!(s.max_header_bytes, 32 * 1024);
    assert_eq!((s.max_headers, s.max_connections), (50, 20));
    assert_eq!(s.shutdown_grace, Duration::from_secs(60));
}

#[test]
fn admin_listen_must_differ_from_listen() {
    let errs = errors(&format!(
        "{MINIMAL}\n[server]\nlisten = \"127.0.0.1:7000\"\nadmin_listen = \"127.0.0.1:7000\"\n"
    ));
    assert_error(
        &errs,
        "server.admin_listen",
        "same address as server.listen",
    );
    assert_eq!(errs.len(), 1);
}

#[test]
fn route_keys_convert() {
    let config = load_ok(&with_route(
        r#"
path = "/api/"
methods = ["GET", "POST", "PROPFIND"]
auth = ["bearer"]
headers = ["user", "email", "groups"]
audience = "api://billing"
preserve_host = true
strip_prefix = true
pass_authorization = true
connect_timeout = "500ms"
response_timeout = "2m"
idle_timeout = "1h30m"
max_body = "unlimited"
retries = 0
eject_after = 5
eject_for = "10s"
upstream_ca = "file:/etc/ca.pem"
[routes.policy]
allow = [{ auth = ["bearer"], scopes = ["billing.read"] }]
"#,
    ));
    let r = &config.routes[0];
    assert_eq!(r.path, "/api/");
    assert_eq!(
        r.methods,
        Some(vec![
            Method::GET,
            Method::POST,
            Method::from_bytes(b"PROPFIND").unwrap()
        ])
    );
    assert_eq!(r.auth, vec![AuthMethod::Bearer]);
    assert_eq!(r.policy.accepts, vec![AuthMethod::Bearer]);
    assert_eq!(
        r.headers,
        vec![ClaimHeader::User, ClaimHeader::Email, ClaimHeader::Groups]
    );
    assert_eq!(r.audience, "api://billing");
    assert!(r.preserve_host && r.strip_prefix && r.pass_authorization);
    assert_eq!(r.timeouts.connect, Duration::from_millis(500));
    assert_eq!(r.timeouts.response_header, Duration::from_secs(120));
    assert_eq!(r.timeouts.idle, Duration::from_secs(5400));
    assert_eq!(r.max_body, None);
    assert_eq!(r.retries, 0);
    assert_eq!(r.eject.failures, 5);
    assert_eq!(r.eject.duration, Duration::from_secs(10));
    assert_eq!(r.upstream_ca, Some(SecretRef::File("/etc/ca.pem".into())));
}

#[test]
fn upstream_takes_a_string_or_a_list_and_max_body_a_size_or_bytes() {
    let config = load_ok(
        r#"version = 1
[[routes]]
id = "one"
path = "/one"
upstream = ["http://127.0.0.1:9001", "https://backend.internal:8443/base"]
max_body = 2048
[routes.policy]
allow = [{ public = true }]
[[routes]]
id = "two"
path = "/two"
upstream = "http://127.0.0.1:9002"
max_body = "1GB"
[routes.policy]
allow = [{ public = true }]
"#,
    );
    assert_eq!(config.routes[0].upstreams.len(), 2);
    assert_eq!(config.routes[0].upstreams[1].path(), "/base");
    assert_eq!(config.routes[0].max_body, Some(2048));
    assert_eq!(config.routes[1].upstreams.len(), 1);
    assert_eq!(config.routes[1].max_body, Some(1_000_000_000));
}

#[test]
fn every_criterion_converts() {
    let config = load_ok(&with_route(
        r#"
[routes.policy]
allow = [
  { id = "people", subjects = ["u1"], emails = ["Alice@Corp.Example"], email_domains = ["CORP.example"] },
  { groups = ["eng"], groups_all = ["eng", "oncall"], scopes = ["a", "b"], issuers = ["https://idp"], providers = ["okta"] },
  { claims = { dept = "sales", level = [3, 4], admin = true }, auth = ["session"] },
  { methods = ["GET"], paths = ["/admin", "/api/*/items", "/**/x"], ip = ["10.0.0.0/8", "192.0.2.1"] },
  { public = true, methods = ["GET", "HEAD"] },
]
deny = [{ id = "contractors", groups = ["contractors"] }]
"#,
    ));
    let policy = &config.routes[0].policy;
    assert_eq!(policy.allow.len(), 5);
    assert_eq!(&*policy.allow[0].id, "people");
    assert_eq!(&*policy.allow[1].id, "allow[1]");
    assert_eq!(&*policy.deny[0].id, "contractors");
    assert_eq!(
        policy.allow[0].criteria,
        vec![
            Criterion::Subjects(vec!["u1".into()]),
            Criterion::Emails(vec!["alice@corp.example".into()]),
            Criterion::EmailDomains(vec!["corp.example".into()]),
        ]
    );
    assert_eq!(
        policy.allow[1].criteria,
        vec![
            Criterion::Groups(vec!["eng".into()]),
            Criterion::GroupsAll(vec!["eng".into(), "oncall".into()]),
            Criterion::Scopes(vec!["a".into(), "b".into()]),
            Criterion::Issuers(vec!["https://idp".into()]),
            Criterion::Providers(vec!["okta".into()]),
        ]
    );
    assert_eq!(
        policy.allow[2].criteria,
        vec![
            Criterion::Claims(vec![
                ("admin".into(), vec![ClaimValue::Bool(true)]),
                ("dept".into(), vec![ClaimValue::String("sales".into())]),
                (
                    "level".into(),
                    vec![ClaimValue::Integer(3), ClaimValue::Integer(4)]
                ),
            ]),
            Criterion::Auth(vec![AuthMethod::Session]),
        ]
    );
    assert_eq!(
        policy.allow[3].criteria,
        vec![
            Criterion::Methods(vec![Method::GET]),
            Criterion::Paths(vec![
                PathPattern::Prefix("/admin".into()),
                PathPattern::Glob("/api/*/items".into()),
                PathPattern::Glob("/**/x".into()),
            ]),
            Criterion::Ip(vec![
                "10.0.0.0/8".parse().unwrap(),
                "192.0.2.1/32".parse().unwrap()
            ]),
        ]
    );
    assert_eq!(
        policy.allow[4].criteria,
        vec![
            Criterion::Public,
            Criterion::Methods(vec![Method::GET, Method::HEAD])
        ]
    );
}

#[test]
fn time_windows_convert() {
    use jiff::civil::{Time, Weekday};
    let config = load_ok(&with_route(
        r#"
[routes.policy]
allow = [{ time = [
  { days = ["weekdays", "sat"], from = "09:00", to = "18:30", tz = "Europe/Berlin" },
  { days = ["Sun", "sunday"], from = "22:00", to = "24:00" },
  { from = "00:00", to = "24:00" },
] }]
"#,
    ));
    let Criterion::Time(windows) = &config.routes[0].policy.allow[0].criteria[0] else {
        panic!("expected a time criterion");
    };
    assert_eq!(windows[0].days.len(), 6);
    assert_eq!(windows[0].days[5], Weekday::Saturday);
    assert_eq!(windows[0].start, Time::new(9, 0, 0, 0).unwrap());
    assert_eq!(windows[0].end, Time::new(18, 30, 0, 0).unwrap());
    assert_eq!(windows[0].tz.iana_name(), Some("Europe/Berlin"));
    assert_eq!(windows[1].days, vec![Weekday::Sunday]);
    assert_eq!(windows[1].end, Time::midnight());
    assert_eq!(windows[1].tz, jiff::tz::TimeZone::UTC);
    assert_eq!(windows[2].days.len(), 7);
}

#[test]
fn server_errors_are_all_reported_together() {
    let errs = errors(&format!(
        r#"{MINIMAL}
[server]
listen = "localhost:8080"
public_url = "https://gate.corp.example/app?x=1"
admin_listen = "9090"
tls = {{ cert = "file:cert.pem", key = "-----BEGIN PRIVATE KEY-----" }}
trusted_proxies = ["10.0.0.0/8", "10.0.0.300"]
allowed_redirect_hosts = ["https://app.corp.example/"]
header_read_timeout = "0s"
max_header_bytes = "lots"
max_headers = 0
max_connections = -1
shutdown_grace = "8"
"#
    ));
    assert_error(&errs, "server.listen", "not an IP address and port");
    assert_error(
        &errs,
        "server.public_url",
        "without a path, query or fragment",
    );
    assert_error(&errs, "server.admin_listen", "not an IP address and port");
    assert_error(&errs, "server.tls.key", "use \"env:NAME\" or \"file:PATH\"");
    assert_error(&errs, "server.trusted_proxies[1]", "not an IP network");
    assert_error(&errs, "server.allowed_redirect_hosts[0]", "not a host name");
    assert_error(&errs, "server.header_read_timeout", "more than zero");
    assert_error(&errs, "server.max_header_bytes", "expected a number");
    assert_error(&errs, "server.max_headers", "at least 1");
    assert_error(&errs, "server.max_connections", "at least 1");
    assert_error(&errs, "server.shutdown_grace", "missing unit");
    assert_eq!(errs.len(), 11, "{}", ConfigErrors(errs.clone()));
    // The secret itself never reaches an error message.
    assert!(!ConfigErrors(errs).to_string().contains("BEGIN PRIVATE KEY"));
}

#[test]
fn route_errors_are_all_reported_together() {
    let errs = errors(
        r#"version = 1
[[routes]]
id = "Billing API"
host = "not a host!"
path = "api"
methods = ["get", "GE T"]
upstream = ["ftp://10.0.0.5", "http://10.0.0.6:8080/?q=1", "http://user:pw@10.0.0.7", "nope", "http://10.0.0.8:0", "http:///x"]
auth = ["session", "none", "cookie"]
headers = ["user", "phone"]
audience = ""
connect_timeout = "5"
response_timeout = "-1s"
idle_timeout = "0ms"
max_body = 0
retries = -1
eject_after = 0
eject_for = "30 s"
upstream_ca = "just-a-pem"
[[routes]]
id = "dup"
upstream = []
[routes.policy]
allow = []
[[routes]]
id = "dup"
upstream = "http://127.0.0.1:9001"
methods = []
max_body = "10 parsecs"
"#,
    );
    assert_error(&errs, "routes[0].id", "lowercase letters, digits");
    assert_error(&errs, "routes[0].host", "not a host!");
    assert_error(&errs, "routes[0].path", "must start with `/`");
    assert_error(&errs, "routes[0].methods[0]", "uppercase (\"GET\")");
    assert_error(&errs, "routes[0].methods[1]", "not an HTTP method");
    assert_error(&errs, "routes[0].upstream[0]", "not an http(s) URL");
    assert_error(&errs, "routes[0].upstream[1]", "no query or fragment");
    assert_error(&errs, "routes[0].upstream[2]", "credentials");
    assert_error(&errs, "routes[0].upstream[3]", "not a URL");
    assert_error(&errs, "routes[0].upstream[4]", "port 0");
    assert_error(&errs, "routes[0].upstream[5]", "no host after");
    assert_error(&errs, "routes[0].auth", "`none` cannot be combined");
    assert_error(
        &errs,
        "routes[0].auth[2]",
        "expected session, bearer or none",
    );
    assert_error(
        &errs,
        "routes[0].headers[1]",
        "expected user, email or groups",
    );
    assert_error(&errs, "routes[0].audience", "must not be empty");
    assert_error(&errs, "routes[0].connect_timeout", "missing unit");
    assert_error(&errs, "routes[0].response_timeout", "negative");
    assert_error(&errs, "routes[0].idle_timeout", "more than zero");
    assert_error(&errs, "routes[0].max_body", "\"unlimited\"");
    assert_error(&errs, "routes[0].retries", "0 or more");
    assert_error(&errs, "routes[0].eject_after", "at least 1");
    assert_error(&errs, "routes[0].eject_for", "unknown unit");
    assert_error(&errs, "routes[0].upstream_ca", "not a secret reference");
    assert_error(&errs, "routes[0].policy", "missing");
    assert_error(&errs, "routes[1].upstream", "at least one upstream");
    assert_error(&errs, "routes[1].policy.allow", "denies everyone");
    assert_error(&errs, "routes[2].id", "duplicate route id `dup`");
    assert_error(&errs, "routes[2].methods", "empty list");
    assert_error(&errs, "routes[2].max_body", "unknown size unit");
    assert_error(&errs, "routes[2].policy", "missing");
    assert_eq!(errs.len(), 30, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn rule_errors_name_the_rule_and_the_entry() {
    let errs = errors(&with_route(
        r#"
[routes.policy]
allow = [
  {},
  { ip = ["10.0.0.0/8", "10.0.0.0/33"] },
  { public = false },
  { id = "x", emails = ["alice"], email_domains = ["@corp.example"], paths = ["admin"] },
  { id = "x", groups = [], claims = { dept = [{ a = 1 }], level = 1.5, "" = "x" } },
  { time = [{ days = ["funday"], from = "9am", to = "18:00", tz = "Mars/Olympus" }] },
  { time = [{ from = "09:00", to = "09:00" }], auth = ["none", "bearer"], methods = ["post"] },
]
deny = [{ id = "x", subjects = [""] }]
"#,
    ));
    let at = "routes[0].policy";
    assert_error(&errs, &format!("{at}.allow[0]"), "at least one criterion");
    assert_error(
        &errs,
        &format!("{at}.allow[4].claims.\"\""),
        "claim name must not be empty",
    );
    assert_error(&errs, &format!("{at}.allow[1].ip[1]"), "not an IP network");
    assert_error(
        &errs,
        &format!("{at}.allow[2].public"),
        "alone matches nothing",
    );
    assert_error(
        &errs,
        &format!("{at}.allow[3].emails[0]"),
        "not an email address",
    );
    assert_error(
        &errs,
        &format!("{at}.allow[3].email_domains[0]"),
        "without `@`",
    );
    assert_error(
        &errs,
        &format!("{at}.allow[3].paths[0]"),
        "must start with `/`",
    );
    assert_error(&errs, &format!("{at}.allow[4].id"), "duplicate rule id `x`");
    assert_error(&errs, &format!("{at}.allow[4].groups"), "empty list");
    assert_error(
        &errs,
        &format!("{at}.allow[4].claims.dept[0]"),
        "string, integer or boolean",
    );
    assert_error(
        &errs,
        &format!("{at}.allow[4].claims.level"),
        "string, integer or boolean",
    );
    assert_error(&errs, &format!("{at}.allow[5].time[0].days[0]"), "mon..sun");
    assert_error(
        &errs,
        &format!("{at}.allow[5].time[0].from"),
        "like \"09:00\"",
    );
    assert_error(
        &errs,
        &format!("{at}.allow[5].time[0].tz"),
        "IANA time zone",
    );
    assert_error(
        &errs,
        &format!("{at}.allow[6].time[0].to"),
        "same as `from`",
    );
    assert_error(&errs, &format!("{at}.allow[6].auth"), "cannot be combined");
    assert_error(&errs, &format!("{at}.allow[6].methods[0]"), "uppercase");
    assert_error(&errs, &format!("{at}.deny[0].id"), "duplicate rule id `x`");
    assert_error(
        &errs,
        &format!("{at}.deny[0].subjects[0]"),
        "must not be empty",
    );
    assert_eq!(errs.len(), 19, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn later_section_errors_have_paths() {
    let errs = errors(&format!(
        r#"{MINIMAL}
[session]
store = "mongodb"
cookie_name = "my cookie"
idle_timeout = "forever"
[[providers]]
id = "okta"
client_id = ""
client_secret = "s3cr3t"
scopes = ["email"]
[[providers]]
id = "okta"
preset = "auth0"
issuer = "https://idp.example"
client_id = "abc"
[[token_issuers]]
issuer = "not a url"
audiences = []
algorithms = ["RS256", "HS256", "none"]
max_lifetime = "0s"
[audit]
url = "mysql://db/audit"
durability = "eventually"
retention = "90"
redact = {{ headers = ["bad header"], claims = {{ email = "rot13" }} }}
access = {{ allow = [{{ groups = [] }}] }}
"#
    ));
    assert_error(&errs, "session.store", "expected one of memory, sqlite");
    assert_error(&errs, "session.cookie_name", "letters, digits");
    assert_error(&errs, "session.idle_timeout", "expected a number");
    assert_error(&errs, "providers[0].issuer", "required");
    assert_error(&errs, "providers[0].client_id", "must not be empty");
    assert_error(
        &errs,
        "providers[0].client_secret",
        "not a secret reference",
    );
    assert_error(&errs, "providers[0].scopes", "openid");
    assert_error(&errs, "providers[1].id", "duplicate provider id");
    assert_error(&errs, "providers[1].preset", "expected one of generic");
    assert_error(&errs, "token_issuers[0].issuer", "not a URL");
    assert_error(&errs, "token_issuers[0].audiences", "at least one");
    assert_error(&errs, "token_issuers[0].algorithms[1]", "`HS256`");
    assert_error(&errs, "token_issuers[0].algorithms[2]", "`none`");
    assert_error(&errs, "token_issuers[0].max_lifetime", "more than zero");
    assert_error(&errs, "audit.url", "sqlite or postgres");
    assert_error(&errs, "audit.durability", "async, strict");
    assert_error(&errs, "audit.retention", "missing unit");
    assert_error(&errs, "audit.redact.headers[0]", "not a header name");
    assert_error(&errs, "audit.redact.claims.email", "keep, drop, hmac, mask");
    assert_error(&errs, "audit.access.allow[0].groups", "empty list");
    assert!(!ConfigErrors(errs).to_string().contains("s3cr3t"));
}

#[test]
fn unknown_fields_and_wrong_types_name_the_key() {
    let errs = errors(&with_route(
        "bogus = 1\n[routes.policy]\nallow = [{ public = true }]",
    ));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "routes[0].bogus");
    assert!(
        errs[0].message.contains("unknown field `bogus`"),
        "{}",
        errs[0]
    );

    let errs = errors(&format!("{MINIMAL}\n[server]\nlisten = 8080\n"));
    assert_eq!(errs[0].path, "server.listen");
    assert!(errs[0].message.contains("expected a string"), "{}", errs[0]);

    let errs = errors(&with_route(
        "[routes.policy]\nallow = [{ public = true }, { groupz = [\"a\"] }]",
    ));
    assert_eq!(errs[0].path, "routes[0].policy.allow[1].groupz");

    let errs = errors("version = 1\n[sesion]\nstore = \"memory\"\n");
    assert_eq!(errs[0].path, "sesion");

    let errs = errors("version = 1\n[[routes]]\nupstream = \"http://x\"\n");
    assert_eq!(errs[0].path, "routes[0]");
    assert!(
        errs[0].message.contains("missing field `id`"),
        "{}",
        errs[0]
    );
}

#[test]
fn version_is_required_and_must_be_one() {
    let errs = errors("[server]\nlisten = \"127.0.0.1:1\"\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "version");
    assert!(errs[0].message.contains("missing"));

    let errs = errors("version = 2\n[future]\nthing = true\n");
    assert_eq!(errs.len(), 1, "the version error hides unknown-field noise");
    assert_eq!(errs[0].path, "version");
    assert!(errs[0].message.contains("unsupported version 2"));

    let errs = errors("version = \"1\"\n");
    assert_eq!(errs[0].path, "version");
}

#[test]
fn toml_syntax_errors_have_no_path_but_a_location() {
    let errs = errors("version = 1\n[server\nlisten = 1\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "");
    assert!(errs[0].message.contains("line 2"), "{}", errs[0]);
}

#[test]
fn env_overrides_apply_before_validation() {
    let env = vec![
        (
            "PORTCULLIS__SERVER__LISTEN".to_owned(),
            "0.0.0.0:9999".to_owned(),
        ),
        (
            "PORTCULLIS__ROUTES__0__UPSTREAM".to_owned(),
            r#"["http://10.0.0.1:1", "http://10.0.0.2:2"]"#.to_owned(),
        ),
        ("PORTCULLIS__ROUTES__0__RETRIES".to_owned(), "3".to_owned()),
        ("PORTCULLIS_CONFIG".to_owned(), "/elsewhere.toml".to_owned()),
    ];
    let config = load_str(MINIMAL, env).unwrap();
    assert_eq!(config.server.listen.port(), 9999);
    assert_eq!(config.routes[0].upstreams.len(), 2);
    assert_eq!(config.routes[0].retries, 3);

    // An overridden value is validated like a written one, at the same key path.
    let env = vec![(
        "PORTCULLIS__SERVER__SHUTDOWN_GRACE".to_owned(),
        "soon".to_owned(),
    )];
    let errs = load_str(MINIMAL, env).unwrap_err().0;
    assert_error(&errs, "server.shutdown_grace", "expected a number");

    let env = vec![("PORTCULLIS__ROUTES__7__ID".to_owned(), "x".to_owned())];
    let errs = load_str(MINIMAL, env).unwrap_err().0;
    assert_error(&errs, "PORTCULLIS__ROUTES__7__ID", "past the end of routes");
}

#[test]
fn load_names_a_missing_file() {
    let errs = load(Path::new("/nonexistent/portcullis.toml"))
        .unwrap_err()
        .0;
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].message.contains("/nonexistent/portcullis.toml"),
        "{}",
        errs[0]
    );
}

#[test]
fn load_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(load(&path).unwrap().routes.len(), 1);
}

/// Errors other than host parsing (a stub in this branch; `crate::routes` owns it).
fn non_host_errors(result: Result<Config, ConfigErrors>) -> Vec<ConfigError> {
    match result {
        Ok(_) => Vec::new(),
        Err(ConfigErrors(errors)) => errors
            .into_iter()
            .filter(|e| !(e.path.starts_with("routes[") && e.path.ends_with("].host")))
            .collect(),
    }
}

#[test]
fn design_example_parses_into_file_types() {
    let file = parse_file(DESIGN_EXAMPLE, no_env()).unwrap();
    assert_eq!(file.routes.len(), 1);
    assert_eq!(file.providers.len(), 1);
    assert_eq!(file.token_issuers.len(), 1);
    assert!(file.session.is_some() && file.audit.is_some());
    let errs = non_host_errors(load_str(DESIGN_EXAMPLE, no_env()));
    assert!(errs.is_empty(), "{}", ConfigErrors(errs));
}

#[test]
fn shipped_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let errs = non_host_errors(load(&path));
    assert!(errs.is_empty(), "{}", ConfigErrors(errs));
    // Also check the parts that do not depend on host parsing converted as documented.
    let file = parse_file(&std::fs::read_to_string(&path).unwrap(), no_env()).unwrap();
    assert!(file.routes.len() >= 4);
}
