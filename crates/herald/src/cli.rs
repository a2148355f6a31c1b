//! The `herald-api` command line: `serve` (the default), `migrate`, and the admin `keys`
//! commands that work on the store directly, with no HTTP server involved.

use crate::app::{assemble, App, StartError};
use crate::config::{Config, ConfigError, LogFormat};
use herald_domain::{ApiKeyId, Capabilities, OrgId};
use std::io::Write;
use std::process::ExitCode;

/// What `herald-api` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve the API.
    Serve,
    /// Serve the API and run the dispatcher in-process, also on Postgres (`--with-dispatcher`).
    ServeWithDispatcher,
    /// Run migrations and exit.
    Migrate,
    /// Mint an API key and print its token.
    KeysCreate {
        /// The organization.
        org: String,
        /// A label.
        name: String,
        /// Comma-separated capabilities.
        capabilities: String,
    },
    /// List an organization's keys.
    KeysList {
        /// The organization.
        org: String,
    },
    /// Revoke a key.
    KeysRevoke {
        /// The key id.
        id: String,
    },
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// The usage text.
pub const USAGE: &str = "\
usage:
  herald-api [serve]                       serve the API (HERALD_LISTEN, default 127.0.0.1:8080);
                                           the embedded store also delivers webhooks in-process
  herald-api [serve] --with-dispatcher     also deliver webhooks in-process on Postgres
  herald-api migrate                       bring the database schema up to date
  herald-api keys create --org ORG --name NAME --capabilities manage,send,read[,ingest]
  herald-api keys list --org ORG
  herald-api keys revoke KEY_ID

  herald-api --help | --version

environment: DATABASE_URL (postgres://… or sqlite://path; default ./data/herald.db),
  HERALD_SECRETS_KEY, HERALD_CORS_ORIGINS, HERALD_DELIVERY_TIMEOUT_MS, HERALD_RETENTION_DAYS,
  HERALD_DELIVERY_ALLOW_PRIVATE, HERALD_DELIVERY_WORKERS, HERALD_DELIVERY_PER_WEBHOOK,
  HERALD_JWKS_URL (login JWTs), HERALD_JWT_ISSUER, HERALD_JWT_AUDIENCE, HERALD_JWT_ORG_CLAIM (org),
  HERALD_JWT_ROLE_CLAIM (role), HERALD_JWKS_REFRESH_SECS (300), HERALD_JWKS_MIN_REFETCH_SECS (10),
  HERALD_HTTP_HEADER_TIMEOUT_MS (10000), HERALD_HTTP_IDLE_TIMEOUT_MS (75000),
  HERALD_HTTP_MAX_CONNECTIONS (1024), HERALD_LOG_FORMAT (text or json), RUST_LOG (info)";

/// The usage text of `herald-dispatcher`.
pub const DISPATCHER_USAGE: &str = "\
usage:
  herald-dispatcher              deliver webhooks from the shared Postgres store, serving
                                 /healthz, /readyz and /metrics on HERALD_DISPATCHER_LISTEN
                                 (default 127.0.0.1:8081); SIGTERM stops it gracefully
  herald-dispatcher --help | --version

environment: DATABASE_URL (postgres://…), HERALD_SECRETS_KEY (the API's key),
  HERALD_DELIVERY_TIMEOUT_MS, HERALD_DELIVERY_ALLOW_PRIVATE, HERALD_DELIVERY_WORKERS,
  HERALD_DELIVERY_PER_WEBHOOK, HERALD_RETENTION_DAYS, HERALD_DB_POOL_SIZE,
  HERALD_HTTP_HEADER_TIMEOUT_MS, HERALD_HTTP_IDLE_TIMEOUT_MS, HERALD_HTTP_MAX_CONNECTIONS,
  HERALD_LOG_FORMAT (text or json), RUST_LOG (info)";

/// What `herald-api` and `herald-dispatcher` print for `--version`.
pub fn version_line(program: &str) -> String {
    format!("{program} {}", env!("CARGO_PKG_VERSION"))
}

fn flag(args: &[String], name: &str) -> Result<String, String> {
    let at = args
        .iter()
        .position(|a| a == name)
        .ok_or_else(|| format!("missing {name}"))?;
    args.get(at + 1)
        .filter(|v| !v.starts_with("--"))
        .cloned()
        .ok_or_else(|| format!("{name} needs a value"))
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["--with-dispatcher"] | ["serve", "--with-dispatcher"] => Ok(Command::ServeWithDispatcher),
        [] | ["serve"] => Ok(Command::Serve),
        ["migrate"] => Ok(Command::Migrate),
        ["help" | "--help" | "-h"] => Ok(Command::Help),
        ["version" | "--version" | "-V"] => Ok(Command::Version),
        ["keys", "create", ..] => Ok(Command::KeysCreate {
            org: flag(args, "--org")?,
            name: flag(args, "--name")?,
            capabilities: flag(args, "--capabilities")?,
        }),
        ["keys", "list", ..] => Ok(Command::KeysList {
            org: flag(args, "--org")?,
        }),
        ["keys", "revoke", id] => Ok(Command::KeysRevoke { id: id.to_string() }),
        _ => Err(format!("unknown command: {}", args.join(" "))),
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments.
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    /// Start-up failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The command itself failed.
    #[error("{0}")]
    Failed(String),
}

/// What a binary's exit code says.
const EXIT_FAILED: u8 = 1;
/// Bad arguments or configuration (as `sysexits`' `EX_USAGE` would, but in the common 2).
const EXIT_USAGE: u8 = 2;

/// `herald-api`'s whole life: `--help`, `--version` and bad arguments are answered before
/// anything is read or created; then logging starts and the command runs. Returns the exit
/// code.
pub async fn api_main(args: &[String]) -> ExitCode {
    let command = match parse(args) {
        Ok(Command::Help) => return print_and_exit(USAGE),
        Ok(Command::Version) => return print_and_exit(&version_line("herald-api")),
        Ok(command) => command,
        Err(message) => return usage_error(&message, USAGE),
    };
    if let Err(code) = start_logging() {
        return code;
    }
    match run_api(command, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// `herald-dispatcher`'s whole life, as [`api_main`]: it takes no arguments besides `--help`
/// and `--version`.
pub async fn dispatcher_main(args: &[String]) -> ExitCode {
    match args {
        [] => {}
        [flag] if matches!(flag.as_str(), "--help" | "-h" | "help") => {
            return print_and_exit(DISPATCHER_USAGE)
        }
        [flag] if matches!(flag.as_str(), "--version" | "-V" | "version") => {
            return print_and_exit(&version_line("herald-dispatcher"))
        }
        _ => {
            return usage_error(
                &format!("unknown arguments: {}", args.join(" ")),
                DISPATCHER_USAGE,
            )
        }
    }
    if let Err(code) = start_logging() {
        return code;
    }
    match run_dispatcher(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn print_and_exit(text: &str) -> ExitCode {
    // A closed pipe (`--help | head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    ExitCode::SUCCESS
}

fn usage_error(message: &str, usage: &str) -> ExitCode {
    eprintln!("{message}\n\n{usage}");
    ExitCode::from(EXIT_USAGE)
}

fn fail(error: &CliError) -> ExitCode {
    eprintln!("error: {error}");
    match error {
        CliError::Usage(_) | CliError::Start(StartError::Config(_)) => ExitCode::from(EXIT_USAGE),
        _ => ExitCode::from(EXIT_FAILED),
    }
}

/// Starts logging in the configured format, or says why it cannot.
fn start_logging() -> Result<(), ExitCode> {
    match LogFormat::from_env() {
        Ok(format) => {
            init_logging_as(format);
            Ok(())
        }
        Err(error) => {
            eprintln!("error: {error}");
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// Runs a parsed `herald-api` command; `shutdown` resolves on SIGTERM/Ctrl-C when serving.
pub async fn run_api(
    command: Command,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), CliError> {
    let config = Config::from_env().map_err(StartError::from)?;
    match command {
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Version => {
            println!("{}", version_line("herald-api"));
            Ok(())
        }
        Command::Serve => {
            let app = App::start(config).await?;
            app.serve_until(shutdown).await;
            Ok(())
        }
        Command::ServeWithDispatcher => {
            let mut config = config;
            config.with_dispatcher = true;
            let app = App::start(config).await?;
            app.serve_until(shutdown).await;
            Ok(())
        }
        Command::Migrate => {
            herald_store::migrate(&config.database)
                .await
                .map_err(StartError::from)?;
            println!("migrations applied to {}", config.database.describe());
            Ok(())
        }
        Command::KeysCreate {
            org,
            name,
            capabilities,
        } => {
            let org = OrgId::parse(&org)
                .ok_or_else(|| CliError::Usage("--org must be a non-empty id".into()))?;
            let capabilities = Capabilities::parse_list(&capabilities).map_err(|bad| {
                CliError::Usage(format!(
                    "unknown capability `{bad}` (use read, send, manage, ingest)"
                ))
            })?;
            if capabilities.is_empty() {
                return Err(CliError::Usage(
                    "--capabilities must name at least one capability".into(),
                ));
            }
            let parts = assemble(&config).await?;
            let minted = parts
                .gateway
                .mint_api_key(org, &name, capabilities)
                .await
                .map_err(|e| CliError::Failed(e.to_string()))?;
            eprintln!(
                "created API key {} ({}) for {} with {}; the token is shown only now:",
                minted.key.id,
                minted.key.name,
                minted.key.organization_id,
                minted.key.capabilities.to_list()
            );
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", minted.token).map_err(|e| CliError::Failed(e.to_string()))?;
            Ok(())
        }
        Command::KeysList { org } => {
            let org = OrgId::parse(&org)
                .ok_or_else(|| CliError::Usage("--org must be a non-empty id".into()))?;
            let parts = assemble(&config).await?;
            let keys = parts
                .store
                .list_api_keys(&org)
                .await
                .map_err(|e| CliError::Failed(e.to_string()))?;
            for key in keys {
                println!(
                    "{}\t{}\t{}\tcreated {}\tlast used {}",
                    key.id,
                    key.name,
                    key.capabilities.to_list(),
                    key.created_at,
                    key.last_used_at
                        .map_or_else(|| "never".to_owned(), |t| t.to_string())
                );
            }
            Ok(())
        }
        Command::KeysRevoke { id } => {
            let key = ApiKeyId::parse(&id)
                .ok_or_else(|| CliError::Failed(format!("no such key: {id}")))?;
            let parts = assemble(&config).await?;
            let now = parts.gateway.clock.now_ms();
            if parts
                .store
                .revoke_api_key(None, &key, now)
                .await
                .map_err(|e| CliError::Failed(e.to_string()))?
            {
                println!("revoked {id}");
                Ok(())
            } else {
                Err(CliError::Failed(format!("no such live key: {id}")))
            }
        }
    }
}

/// Installs the log subscriber in the format `HERALD_LOG_FORMAT` names (text when unset or
/// unusable), filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    init_logging_as(LogFormat::from_env().unwrap_or_default());
}

/// Installs the log subscriber, writing to stderr: text (with colours only when stderr is a
/// terminal), or one JSON object per line whose request lines carry the request's id, route
/// and organization (the `request` span's fields, under `span`).
pub fn init_logging_as(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

impl From<ConfigError> for CliError {
    fn from(error: ConfigError) -> Self {
        Self::Start(error.into())
    }
}

/// Runs `herald-dispatcher`: configuration from the environment, delivery until `shutdown`
/// (SIGTERM/Ctrl-C) resolves.
pub async fn run_dispatcher(
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), CliError> {
    let config = Config::from_env().map_err(StartError::from)?;
    crate::dispatch::run_dispatcher(config, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse(&[]), Ok(Command::Serve));
        assert_eq!(parse(&args("migrate")), Ok(Command::Migrate));
        assert_eq!(
            parse(&args(
                "keys create --org org_a --name ops --capabilities manage,read"
            )),
            Ok(Command::KeysCreate {
                org: "org_a".into(),
                name: "ops".into(),
                capabilities: "manage,read".into()
            })
        );
        assert_eq!(
            parse(&args("keys revoke key_1")),
            Ok(Command::KeysRevoke { id: "key_1".into() })
        );
        assert!(parse(&args("keys create --org")).is_err());
        assert!(parse(&args("frobnicate")).is_err());
        assert!(parse(&args("--frobnicate")).is_err());
        assert_eq!(parse(&args("--help")), Ok(Command::Help));
        assert_eq!(parse(&args("--version")), Ok(Command::Version));
        assert_eq!(
            parse(&args("--with-dispatcher")),
            Ok(Command::ServeWithDispatcher)
        );
        assert_eq!(
            parse(&args("serve --with-dispatcher")),
            Ok(Command::ServeWithDispatcher)
        );
    }
}
