set shell := ["bash", "-cu"]

# What authentication costs: JWT/API-key verifications per second and authenticated
# GET /api/v1/webhooks requests per second on the embedded store (BENCH_SECS, BENCH_CONNECTIONS).
bench-auth:
    cargo run --release -p herald-bench --bin bench-auth
