//! `herald-api`: serves the Herald API (and, in single-node mode, delivers webhooks), or runs an
//! admin command. Configuration and wiring only; see the `herald` crate.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    herald::cli::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    herald::cli::run_api(&args, herald::cli::shutdown_signal()).await?;
    Ok(())
}
