#!/usr/bin/env bash
# The browser test: build the page (web/build.sh), serve it on 127.0.0.1, and drive it in headless Chromium with
# WebGPU on SwiftShader (web/test/e2e.mjs): training must report steps with a finite loss, a click in the attention
# view must select a patch, dropped and picked images and a picked class folder must become data, a saved checkpoint
# must download and load back, and no console error or uncaught exception may occur. Installs Chromium and the node
# packages when missing.
#
#   web/test.sh [SCREENSHOT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
SHOT="${1:-target/browser-screenshot.png}"

if ! command -v chromium >/dev/null; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq chromium >/dev/null
fi
(cd web && npm ci --no-audit --no-fund --silent)
web/build.sh

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory web/dist >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/')" 2>/dev/null && break
    sleep 0.2
done
mkdir -p "$(dirname "$SHOT")"
node web/test/e2e.mjs "http://127.0.0.1:$PORT/?start=1&view=attention" "$SHOT"
