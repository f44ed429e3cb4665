//! `portcullis audit query` and `portcullis audit verify`: argument types and what they do.
//! Both read `[audit]` from the config file and talk to the store directly (no running
//! proxy needed); neither writes anything.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::event::{DECISIONS, check_filter_value, kind};
use super::query::{self, Format};
use super::store::AuditFilter;
use super::{Store, verify};
use crate::config::{self, AuditConfig};

/// `portcullis audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Search the audit trail (newest first).
    Query(Box<QueryArgs>),
    /// Check every hash chain; exit non-zero naming the first broken event.
    Verify {
        /// Config file (TOML).
        #[arg(long, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
    },
}

/// `audit query` filters and output.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Config file (TOML).
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub config: PathBuf,
    /// Events at or after: a duration ago (`15m`, `7d`) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Events before: a duration ago or an RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
    /// Exact subject (as stored, i.e. after redaction).
    #[arg(long)]
    pub subject: Option<String>,
    /// Exact email (as stored).
    #[arg(long)]
    pub email: Option<String>,
    /// Route id.
    #[arg(long)]
    pub route: Option<String>,
    /// allow, deny, login or error.
    #[arg(long)]
    pub decision: Option<String>,
    /// HTTP status.
    #[arg(long)]
    pub status: Option<i64>,
    /// Event kind (request, outcome, config_load, config_reload, retention, audit_access,
    /// login, logout, session_expired).
    #[arg(long)]
    pub kind: Option<String>,
    /// Decision id: the `X-Portcullis-Decision-Id` sent upstream, the request id on
    /// portcullis's pages.
    #[arg(long)]
    pub decision_id: Option<String>,
    /// Case-insensitive text anywhere in path, query, identity, rule, reasons, detail...
    #[arg(long)]
    pub text: Option<String>,
    /// Most events printed.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Runs one `audit` subcommand.
pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Query(args) => run_query(*args).await,
        AuditCommand::Verify { config } => {
            let store = open(&config).await?;
            let report = verify::verify(&store).await?;
            match report.broken {
                None => {
                    println!(
                        "audit trail OK: {} events in {} chain{}",
                        report.events,
                        report.instances,
                        if report.instances == 1 { "" } else { "s" }
                    );
                    Ok(())
                }
                Some(broken) => anyhow::bail!("audit trail broken: {broken}"),
            }
        }
    }
}

async fn run_query(args: QueryArgs) -> anyhow::Result<()> {
    let store = open(&args.config).await?;
    let now = jiff::Timestamp::now();
    let time = |t: &Option<String>| -> anyhow::Result<Option<String>> {
        t.as_deref()
            .map(|t| query::parse_time(t, now).map_err(anyhow::Error::msg))
            .transpose()
    };
    for (name, value, allowed) in [
        ("--decision", &args.decision, &DECISIONS[..]),
        ("--kind", &args.kind, &kind::ALL[..]),
    ] {
        if let Some(value) = value {
            check_filter_value(name, value, allowed).map_err(anyhow::Error::msg)?;
        }
    }
    let filter = AuditFilter {
        since: time(&args.since).context("--since")?,
        until: time(&args.until).context("--until")?,
        subject: args.subject,
        email: args.email,
        route: args.route,
        decision: args.decision,
        status: args.status,
        kind: args.kind,
        decision_id: args.decision_id,
        text: args.text,
    };
    let events = query::collect(&store, &filter, args.limit).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    query::render(&events, args.format, &mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

async fn open(path: &std::path::Path) -> anyhow::Result<Store> {
    let config = config::load(path)
        .map_err(|errors| anyhow::anyhow!("invalid config {}:\n{errors}", path.display()))?;
    let audit: AuditConfig = config
        .audit
        .with_context(|| format!("{}: no [audit] section", path.display()))?;
    Ok(Store::open(&audit.url).await?)
}
