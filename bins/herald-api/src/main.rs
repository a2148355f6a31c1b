//! `herald-api`: serves the Herald API (and, in single-node mode, delivers webhooks), or runs an
//! admin command. Configuration and wiring only; see the `herald` crate.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    herald::cli::api_main(&args).await
}
