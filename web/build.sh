#!/usr/bin/env bash
# Build the browser version of the app into web/dist/ (index.html, beitlab.js, beitlab_bg.wasm), installing what
# the build needs on a fresh machine: the wasm32 target and wasm-bindgen-cli at the version in Cargo.lock.
#
#   web/build.sh            build web/dist/
#   web/build.sh --serve    build, then serve it on http://127.0.0.1:8080/ (WebGPU needs a secure context;
#                           127.0.0.1 is one)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8080}"

rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
WB_VERSION=$(awk '$0=="name = \"wasm-bindgen\"" {getline; gsub(/version = |"/, ""); print}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WB_VERSION"; then
    echo "installing wasm-bindgen-cli $WB_VERSION (a few minutes, once)"
    cargo install --force wasm-bindgen-cli --version "$WB_VERSION"
fi

cargo build --release --locked --target wasm32-unknown-unknown --bin beitlab
rm -rf web/dist
mkdir -p web/dist
wasm-bindgen --target web --no-typescript --out-dir web/dist --out-name beitlab \
    target/wasm32-unknown-unknown/release/beitlab.wasm
cp web/index.html web/dist/index.html
RAW=$(stat -c %s web/dist/beitlab_bg.wasm)
GZ=$(gzip -9 -c web/dist/beitlab_bg.wasm | wc -c)
echo "web/dist: wasm $((RAW / 1024)) KiB raw, $((GZ / 1024)) KiB gzipped"

if [ "${1:-}" = "--serve" ]; then
    echo "serving http://127.0.0.1:$PORT/ (Ctrl-C to stop)"
    exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory web/dist
fi
