//! File types -> runtime [`Config`]: applies defaults, parses every string value into its
//! type, and gathers every problem with its key path instead of stopping at the first. Route
//! and rule conversion live in [`super::route`] and [`super::rule`]; the sections that later
//! releases use are checked (not converted) in [`super::later`]. Nothing here does I/O.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

use super::duration::{parse_duration, parse_size};
use super::file::{FileConfig, ServerFile, SizeText};
use super::{Config, ConfigError, ServerConfig, TlsConfig};
use crate::secrets::SecretRef;

/// Problems found so far, in the order they were found.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<ConfigError>);

impl Problems {
    /// Records one problem at `path`.
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A value from `parse`, or the default after recording the parse error at `path`. The
    /// default only keeps conversion going; a config with problems is never returned.
    pub(crate) fn parsed<T>(&mut self, path: &str, parsed: Result<T, String>, fallback: T) -> T {
        match parsed {
            Ok(v) => v,
            Err(message) => {
                self.add(path, message);
                fallback
            }
        }
    }
}

/// Converts the whole file; every problem is reported.
pub(crate) fn convert(file: FileConfig) -> Result<Config, Vec<ConfigError>> {
    let mut problems = Problems::default();
    let server = convert_server(&file.server, &mut problems);
    super::later::check_later_sections(&file, &mut problems);
    let routes = super::route::convert_routes(&file.routes, &mut problems);
    let providers = super::provider::convert_providers(&file, &mut problems);
    let session = super::session::convert_session(file.session.as_ref());
    let audit = file
        .audit
        .as_ref()
        .map(|audit| super::audit::convert_audit(audit, &mut problems));
    let token_issuers = super::token_issuer::convert_token_issuers(&file, &mut problems);
    let assertion = super::token_issuer::convert_assertion(file.assertion.as_ref(), &mut problems);
    match server {
        Some(server) if problems.0.is_empty() => Ok(Config {
            server,
            routes,
            providers,
            session,
            audit,
            token_issuers,
            assertion,
        }),
        _ => Err(problems.0),
    }
}

/// `[server]`; None only when a problem was recorded.
fn convert_server(file: &ServerFile, p: &mut Problems) -> Option<ServerConfig> {
    let default_listen = SocketAddr::from(([127, 0, 0, 1], 8080));
    let listen = match &file.listen {
        Some(text) => p.parsed("server.listen", socket_addr(text), default_listen),
        None => default_listen,
    };
    let public_url = match &file.public_url {
        Some(text) => p.parsed_opt("server.public_url", public_url(text)),
        None => p.parsed_opt(
            "server.public_url",
            Url::parse(&format!("http://{listen}")).map_err(|e| e.to_string()),
        ),
    };
    let admin_listen = match file.admin_listen.as_deref() {
        Some("off") => None,
        Some(text) => {
            let addr = p.parsed_opt("server.admin_listen", socket_addr(text));
            // Port 0 asks the kernel for a free port, so two of them never collide.
            if addr == Some(listen) && listen.port() != 0 {
                p.add(
                    "server.admin_listen",
                    format!(
                        "same address as server.listen ({listen}); use another port or \"off\""
                    ),
                );
            }
            addr
        }
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
    };
    let tls = file.tls.as_ref().map(|tls| TlsConfig {
        cert: p.parsed(
            "server.tls.cert",
            SecretRef::parse(&tls.cert),
            placeholder_ref(),
        ),
        key: p.parsed(
            "server.tls.key",
            SecretRef::parse(&tls.key),
            placeholder_ref(),
        ),
    });
    let mut trusted_proxies = Vec::new();
    for (i, text) in file.trusted_proxies.iter().flatten().enumerate() {
        if let Some(net) = p.parsed_opt(&format!("server.trusted_proxies[{i}]"), network(text)) {
            trusted_proxies.push(net);
        }
    }
    let mut allowed_redirect_hosts = Vec::new();
    for (i, host) in file.allowed_redirect_hosts.iter().flatten().enumerate() {
        let path = format!("server.allowed_redirect_hosts[{i}]");
        if let Some(host) = p.parsed_opt(&path, redirect_host(host)) {
            allowed_redirect_hosts.push(host);
        }
    }
    let header_read_timeout = positive_duration(
        p,
        "server.header_read_timeout",
        file.header_read_timeout.as_deref(),
        Duration::from_secs(10),
    );
    let send_timeout = positive_duration(
        p,
        "server.send_timeout",
        file.send_timeout.as_deref(),
        Duration::from_secs(60),
    );
    let max_header_bytes = positive_size(
        p,
        "server.max_header_bytes",
        file.max_header_bytes.as_ref(),
        64 * 1024,
    );
    let max_headers = positive_count(p, "server.max_headers", file.max_headers, 100);
    let max_connections = positive_count(p, "server.max_connections", file.max_connections, 10_000);
    // 0 (or absent) means one worker per core.
    let workers = match file.workers {
        None | Some(0) => None,
        Some(n) if (1..=1024).contains(&n) => usize::try_from(n).ok(),
        Some(n) => {
            p.add(
                "server.workers",
                format!("{n}: expected 0 (one per core) to 1024"),
            );
            None
        }
    };
    let shutdown_grace = positive_duration(
        p,
        "server.shutdown_grace",
        file.shutdown_grace.as_deref(),
        Duration::from_secs(8),
    );
    let data_dir = match file.data_dir.as_deref() {
        Some("") => {
            p.add("server.data_dir", "must not be empty");
            std::path::PathBuf::new()
        }
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from("data"),
    };
    Some(ServerConfig {
        data_dir,
        listen,
        public_url: public_url?,
        admin_listen,
        tls,
        trusted_proxies,
        allowed_redirect_hosts,
        header_read_timeout,
        send_timeout,
        max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
        max_headers,
        workers,
        max_connections,
        shutdown_grace,
    })
}

impl Problems {
    /// Like [`Problems::parsed`] for values that are simply left out when bad.
    pub(crate) fn parsed_opt<T>(&mut self, path: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(message) => {
                self.add(path, message);
                None
            }
        }
    }
}

/// A placeholder secret reference for values already reported as wrong.
pub(crate) fn placeholder_ref() -> SecretRef {
    SecretRef::Env(String::new())
}

/// `ip:port`, e.g. `127.0.0.1:8080` or `[::1]:8080`.
pub(crate) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("`{text}` is not an IP address and port like \"127.0.0.1:8080\" or \"[::1]:8080\"")
    })
}

/// The public origin: http(s), a host, no path, query or fragment.
fn public_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("`{text}`: must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}`: needs a host"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}`: must be an origin without a path, query or fragment, e.g. \"https://gate.corp.example\""
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{text}`: must not contain credentials"));
    }
    Ok(url)
}

/// A CIDR (`10.0.0.0/8`), or a bare address meaning just that address (/32 or /128).
pub(crate) fn network(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{text}` is not an IP network like \"10.0.0.0/8\" or an address"))
}

/// A host name (no scheme, port or path), lowercased.
fn redirect_host(text: &str) -> Result<String, String> {
    let host = text.to_ascii_lowercase();
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '*');
    if valid {
        Ok(host)
    } else {
        Err(format!(
            "`{text}` is not a host name; write just the host, e.g. \"app.corp.example\""
        ))
    }
}

/// A duration that must be more than zero; `default` when absent.
pub(crate) fn positive_duration(
    p: &mut Problems,
    path: &str,
    text: Option<&str>,
    default: Duration,
) -> Duration {
    let Some(text) = text else {
        return default;
    };
    match parse_duration(text) {
        Ok(d) if d.is_zero() => {
            p.add(path, "must be more than zero");
            default
        }
        Ok(d) => d,
        Err(message) => {
            p.add(path, message);
            default
        }
    }
}

/// A byte size that must be more than zero; `default` when absent.
fn positive_size(p: &mut Problems, path: &str, text: Option<&SizeText>, default: u64) -> u64 {
    let Some(SizeText(text)) = text else {
        return default;
    };
    match parse_size(text) {
        Ok(0) => {
            p.add(path, "must be more than zero");
            default
        }
        Ok(n) => n,
        Err(message) => {
            p.add(path, message);
            default
        }
    }
}

/// A count that must be at least 1; `default` when absent.
fn positive_count(p: &mut Problems, path: &str, value: Option<i64>, default: usize) -> usize {
    match value {
        None => default,
        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            p.add(path, format!("must be at least 1 (got {n})"));
            default
        }
    }
}
