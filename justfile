set shell := ["bash", "-cu"]

# Votes/s through the API and 2xx→WebSocket-frame latency with 100 clients, on Postgres
# (HERALD_TEST_DATABASE_URL). BENCH_BACKEND=sqlite, BENCH_SECONDS, BENCH_WORKERS, BENCH_FANOUT_RATE adjust it.
bench-events:
    cargo run --release -p herald --example bench_events
