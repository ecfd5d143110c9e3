#!/usr/bin/env bash
# Everything a change must pass before it lands: format, lints (native and wasm32), the wasm32 library build,
# then the test command.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
if rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown; then
    cargo clippy --lib --target wasm32-unknown-unknown --locked -- -D warnings
else
    echo "wasm32-unknown-unknown target unavailable: skipping the wasm32 check" >&2
    exit 1
fi
scripts/test.sh
