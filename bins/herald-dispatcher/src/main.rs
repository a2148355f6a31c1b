//! `herald-dispatcher`: delivers webhooks from the shared Postgres store (any number of
//! replicas may run), serving `/healthz`, `/readyz` and `/metrics` on
//! `HERALD_DISPATCHER_LISTEN`. SIGTERM stops claiming, finishes attempts in flight and gives
//! back the rest. Configuration and wiring only; see the `herald` crate.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    herald::cli::init_logging();
    herald::cli::run_dispatcher(herald::cli::shutdown_signal()).await?;
    Ok(())
}
