set shell := ["bash", "-cu"]

# Webhook delivery benchmark on Postgres (HERALD_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test):
# the real herald-api and herald-dispatcher release binaries, a local keep-alive receiver.
bench-dispatch:
    cargo build --release -p herald-api -p herald-dispatcher -p herald-bench && target/release/herald-bench
