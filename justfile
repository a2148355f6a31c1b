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
