set shell := ["bash", "-cu"]

# Serve a gateway on 127.0.0.1:8080 with the embedded store.
run:
    cargo run --release --bin herald-api

# Every test, including the ones against PostgreSQL.
test:
    cargo test --workspace

# Formatting and lints as CI expects them.
check:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Authenticated GET /api/v1/webhooks on SQLite and Postgres vs a do-nothing hyper server
# (BENCH_SECS, BENCH_CONNECTIONS).
bench-api:
    RUST_LOG=warn cargo run --release -p herald-bench --bin bench-api

# What authentication costs: JWT/API-key verifications per second and authenticated
# GET /api/v1/webhooks requests per second on the embedded store (BENCH_SECS, BENCH_CONNECTIONS).
bench-auth:
    RUST_LOG=warn cargo run --release -p herald-bench --bin bench-auth

# The chaos suite against the real herald-api binary on the embedded store: SIGKILL mid-flight with
# an exact count of accepted vs delivered events, and a hanging-receiver mix (see docs/chaos.md).
chaos:
    HERALD_CHAOS=1 cargo test -p herald-api --test chaos -- --nocapture --test-threads=1

# Webhook delivery on Postgres (HERALD_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test):
# the real herald-api and herald-dispatcher release binaries, a local keep-alive receiver.
bench-dispatch:
    cargo build --release -p herald-api -p herald-dispatcher -p herald-bench && target/release/bench-dispatch

# A healthy webhook's 2xx→receiver latency (p50/p99) next to 0, 8 and 50 receivers that never
# answer, on the embedded SQLite store and on Postgres in two-service mode (HERALD_TEST_DATABASE_URL;
# HERALD_BENCH_SECONDS, HERALD_BENCH_HEALTHY_RATE, HERALD_BENCH_HANGING_RATE adjust it).
bench-isolation:
    cargo build --release -p herald-api -p herald-dispatcher -p herald-bench && target/release/bench-isolation

# Herald beside a peer gateway: inbound messages (POST /sessions/{id}/inbound) delivered to local
# keep-alive receivers — closed-loop and paced throughput, 2xx→receiver p50/p99, backlog, CPU per
# event (Herald and Postgres) and peak RSS — for herald-api --with-dispatcher on Postgres, herald-api
# on SQLite and herald-api + herald-dispatcher on Postgres, as one Markdown table (BENCH_SECS,
# BENCH_WARMUP_SECS, BENCH_RUNS, BENCH_SYSTEMS, BENCH_SCENARIOS, BENCH_CONNECTIONS, HERALD_TEST_DATABASE_URL).
bench-peer:
    cargo build --release -p herald-api -p herald-dispatcher -p herald-bench && target/release/bench-peer

# Votes/s through the API and 2xx→WebSocket-frame latency with 100 clients, on Postgres
# (HERALD_TEST_DATABASE_URL). BENCH_BACKEND=sqlite, BENCH_SECONDS, BENCH_WORKERS, BENCH_FANOUT_RATE adjust it.
bench-events:
    cargo run --release -p herald --example bench_events

# WAHA events in through POST /api/v1/engines/waha/events (signed by the WAHA double's emitter,
# 10% duplicates) and out to one webhook: events/s accepted and delivered, and at 500/s the
# send→200 and 200→receiver latency, on SQLite and Postgres (HERALD_TEST_DATABASE_URL), medians
# of BENCH_RUNS (3), after BENCH_WARMUP_EVENTS (1000) unmeasured. BENCH_BACKEND, BENCH_EVENTS,
# BENCH_CONNECTIONS, BENCH_BASELINE adjust it.
bench-engine:
    RUST_LOG=warn cargo run --release -p herald --example bench_engine

# Fuzz the release herald-api against its own OpenAPI document with schemathesis (installed from
# PyPI into target/fuzz-venv on first use; extra arguments go to `schemathesis run`).
fuzz-openapi *ARGS:
    scripts/fuzz-openapi.sh {{ARGS}}
