//! `herald-dispatcher`: delivers webhooks from the shared Postgres store (any number of
//! replicas may run), serving `/healthz`, `/readyz` and `/metrics` on
//! `HERALD_DISPATCHER_LISTEN`. SIGTERM stops claiming, finishes attempts in flight and gives
//! back the rest. Configuration and wiring only; see the `herald` crate.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    herald::cli::dispatcher_main(&args).await
}
