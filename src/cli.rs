//! The command line: `serve`, `check`, `demo`, `audit query|verify` (and the hidden `upstream` used by the
//! benchmark). It parses arguments, sets up logging and the runtime, and calls into the
//! library; it holds no logic of its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;
use crate::telemetry::{self, LogFormat};

/// portcullis: an identity-aware access proxy.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Serve {
        /// Config file (TOML).
        #[arg(long, env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file: print `config OK: N routes` or every error with its key path.
    Check {
        /// Config file (TOML).
        #[arg(long = "config", value_name = "FILE")]
        config_flag: Option<PathBuf>,
        /// Config file (TOML), as a positional argument.
        #[arg(value_name = "FILE", conflicts_with = "config_flag")]
        config: Option<PathBuf>,
    },
    /// Everything on embedded defaults, for a first look.
    Demo {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where sessions, the audit trail and the provider's client secret are kept
        /// (created when missing).
        #[arg(long, value_name = "DIR", default_value = "data/demo")]
        data: PathBuf,
    },
    /// Search or verify the audit trail.
    Audit {
        #[command(subcommand)]
        command: crate::audit::cli::AuditCommand,
    },
    /// A fast built-in HTTP upstream (echo, or `--fixed` 200 ok) for benchmarks and tests.
    #[command(hide = true)]
    Upstream {
        /// Where to listen.
        #[arg(long)]
        listen: SocketAddr,
        /// Answer every request with `200 ok` instead of echoing it.
        #[arg(long)]
        fixed: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        Command::Check {
            config_flag,
            config,
        } => {
            let Some(path) = config_flag.or(config) else {
                eprintln!("usage: portcullis check --config FILE");
                return ExitCode::from(2);
            };
            check(&path)
        }
        command => {
            telemetry::init(cli.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    // Once: a JSON log line for collectors, a plain line for people (the
                    // human log line said the same, so it was printed twice).
                    match cli.log_format {
                        LogFormat::Json => tracing::error!("{error:#}"),
                        LogFormat::Human => eprintln!("error: {error:#}"),
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config: path } => {
            let config = config::load(&path).map_err(|errors| {
                anyhow::anyhow!("invalid config {}:\n{errors}", path.display())
            })?;
            crate::app::serve(config, Some(path)).await
        }
        Command::Demo { listen, data } => {
            crate::demo::run(crate::demo::DemoOptions { listen, data }).await
        }
        Command::Audit { command } => crate::audit::cli::run(command).await,
        Command::Upstream { listen, fixed } => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            crate::demo::echo_upstream(listener, fixed).await;
            Ok(())
        }
        Command::Check { .. } => Ok(()),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            println!("config OK: {} routes", config.routes.len());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!(
                "{}: {} error{}",
                path.display(),
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            );
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}
