//! The config file as written: serde structs that mirror the TOML one to one, with
//! `deny_unknown_fields` so a typo is an error instead of a silently ignored key. Values that
//! need parsing (durations, URLs, CIDRs, secret references, addresses, methods, paths) stay
//! strings here, so that conversion can report every bad value at once with its key path. No
//! defaults and no validation live here; [`super::convert`] owns both.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Format version. Checked (must be 1) on the raw table before deserializing; kept here
    /// so `deny_unknown_fields` accepts the key.
    #[allow(dead_code, reason = "checked before deserialization")]
    pub version: i64,
    #[serde(default)]
    pub server: ServerFile,
    /// Used from the release that adds browser sessions.
    pub session: Option<SessionFile>,
    /// Used from the release that adds OIDC login.
    #[serde(default)]
    pub providers: Vec<ProviderFile>,
    /// Used from the release that adds bearer tokens.
    #[serde(default)]
    pub token_issuers: Vec<TokenIssuerFile>,
    /// Used from the release that adds the audit trail.
    pub audit: Option<AuditFile>,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
    pub assertion: Option<AssertionFile>,
}

/// `[server]`. Key meanings and defaults: [`super::ServerConfig`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub admin_listen: Option<String>,
    pub tls: Option<TlsFile>,
    pub trusted_proxies: Option<Vec<String>>,
    pub allowed_redirect_hosts: Option<Vec<String>>,
    pub header_read_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub max_header_bytes: Option<SizeText>,
    pub max_headers: Option<i64>,
    pub max_connections: Option<i64>,
    pub shutdown_grace: Option<String>,
    pub workers: Option<i64>,
    pub data_dir: Option<String>,
}

/// `[server.tls]` or `tls = { cert = .., key = .. }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert: String,
    pub key: String,
}

/// One `[[routes]]` entry. Key meanings and defaults: [`super::RouteConfig`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub id: String,
    pub host: Option<String>,
    pub path: Option<String>,
    pub methods: Option<Vec<String>>,
    pub upstream: StringList,
    pub auth: Option<Vec<String>>,
    pub headers: Option<Vec<String>>,
    pub audience: Option<String>,
    #[serde(default)]
    pub preserve_host: bool,
    #[serde(default)]
    pub strip_prefix: bool,
    pub rewrite_redirects: Option<bool>,
    #[serde(default)]
    pub case_insensitive_paths: bool,
    #[serde(default)]
    pub pass_authorization: bool,
    pub bearer_query_param: Option<String>,
    #[serde(default)]
    pub pass_access_token: bool,
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_body: Option<SizeText>,
    pub retries: Option<i64>,
    pub eject_after: Option<i64>,
    pub eject_for: Option<String>,
    pub upstream_ca: Option<String>,
    /// Provider ids whose logins this route accepts (default: every provider).
    pub providers: Option<Vec<String>>,
    pub policy: Option<PolicyFile>,
}

/// `[routes.policy]` and `[audit.access]`: allow rules, deny rules.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub allow: Vec<RuleFile>,
    #[serde(default)]
    pub deny: Vec<RuleFile>,
}

/// One rule table: every key present is one criterion, all must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub id: Option<String>,
    pub public: Option<bool>,
    pub subjects: Option<Vec<String>>,
    pub emails: Option<Vec<String>>,
    pub email_domains: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub groups_all: Option<Vec<String>>,
    /// Claim name -> a string, integer or bool, or an array of those (checked in conversion).
    pub claims: Option<BTreeMap<String, toml::Value>>,
    pub scopes: Option<Vec<String>>,
    pub issuers: Option<Vec<String>>,
    pub providers: Option<Vec<String>>,
    pub auth: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub ip: Option<Vec<String>>,
    pub time: Option<Vec<TimeWindowFile>>,
}

/// `{ days = ["mon", "tue"], from = "09:00", to = "18:00", tz = "Europe/Berlin" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindowFile {
    /// Day names (`mon`..`sun`, `weekdays`, `weekend`, `all`); default every day.
    pub days: Option<Vec<String>>,
    pub from: String,
    pub to: String,
    /// IANA zone; default UTC.
    pub tz: Option<String>,
}

/// `[session]` (not yet active).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    pub store: Option<String>,
    pub url: Option<String>,
    pub cookie_name: Option<String>,
    pub idle_timeout: Option<String>,
    pub absolute_timeout: Option<String>,
}

/// One `[[providers]]` entry (not yet active).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub id: String,
    pub preset: Option<String>,
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// Claim holding the groups; a dotted path reaches into objects (`realm_access.roles`).
    pub groups_claim: Option<String>,
    /// Name shown on the login chooser.
    pub display_name: Option<String>,
    /// Merge the userinfo endpoint's claims into the identity at login.
    pub userinfo: Option<bool>,
    /// Entra only: an endpoint that lists a user's groups when the token carries a groups
    /// overage marker instead of the groups.
    pub groups_endpoint: Option<String>,
}

/// One `[[token_issuers]]` entry (not yet active).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenIssuerFile {
    pub issuer: String,
    pub jwks_uri: Option<String>,
    pub audiences: Vec<String>,
    pub algorithms: Option<Vec<String>>,
    pub max_lifetime: Option<String>,
    pub leeway: Option<String>,
    pub required_claims: Option<Vec<String>>,
    pub groups_claim: Option<String>,
}

/// `[assertion]`: the key that signs `X-Portcullis-Jwt-Assertion`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionFile {
    pub key: Option<String>,
    pub previous_keys: Option<Vec<String>>,
    pub lifetime: Option<String>,
}

/// `[audit]`. Key meanings and defaults: [`super::AuditConfig`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    pub url: Option<String>,
    pub durability: Option<String>,
    pub retention: Option<String>,
    pub instance: Option<String>,
    pub spool_dir: Option<String>,
    pub hmac_key: Option<String>,
    pub queue_capacity: Option<i64>,
    pub batch_size: Option<i64>,
    pub redact: Option<RedactFile>,
    pub access: Option<PolicyFile>,
}

/// `[audit.redact]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactFile {
    /// `["x-a", ...]` (each hidden) or `{ "x-a" = "hmac", ... }`.
    pub headers: Option<NameActions>,
    /// `["user", ...]` (each hidden) or `{ user = "mask", ... }`.
    pub query: Option<NameActions>,
    /// Claim name -> `keep | drop | hmac | mask`.
    pub claims: Option<BTreeMap<String, String>>,
}

/// `audit.redact.headers` / `.query`: a list of names (the short form, each meaning "hide
/// the value") or a table of name -> action. Written by hand rather than `untagged` so a
/// wrong type names both accepted forms instead of "did not match any variant".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameActions {
    /// `["a", "b"]`, in file order (errors name `[i]`).
    List(Vec<String>),
    /// `{ a = "keep", b = "hmac" }`, actions still unparsed.
    Table(BTreeMap<String, String>),
}

impl<'de> Deserialize<'de> for NameActions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameActionsVisitor;
        impl<'de> Visitor<'de> for NameActionsVisitor {
            type Value = NameActions;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of names or a table of name = \"keep|drop|mask|hmac\"")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NameActions, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(NameActions::List(names))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NameActions, A::Error> {
                let mut table = BTreeMap::new();
                while let Some((name, action)) = map.next_entry::<String, String>()? {
                    table.insert(name, action);
                }
                Ok(NameActions::Table(table))
            }
        }
        deserializer.deserialize_any(NameActionsVisitor)
    }
}

/// A string or an array of strings (`upstream = "http://a"` or `upstream = ["http://a"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(StringList(items))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

/// A byte size as written: an integer of bytes or a string like `"10MiB"` or `"unlimited"`.
/// Kept as text (integers are turned into their digits) and parsed in conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeText(pub String);

impl<'de> Deserialize<'de> for SizeText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = SizeText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes or a size like \"10MiB\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SizeText, E> {
                Ok(SizeText(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SizeText, E> {
                Ok(SizeText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SizeText, E> {
                Ok(SizeText(v.to_string()))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}
