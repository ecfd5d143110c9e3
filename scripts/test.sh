#!/usr/bin/env bash
# The test command. Works on a fresh machine without a GPU: when no Vulkan driver is installed it installs
# Mesa's software driver (lavapipe), then runs every test in release mode (GPU tests are slow unoptimised).
set -euo pipefail
cd "$(dirname "$0")/.."

have_vulkan_driver() {
    [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && return 0
    compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null && return 0
    compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null && return 0
    return 1
}

if ! have_vulkan_driver; then
    echo "No Vulkan driver found: installing Mesa's software driver (mesa-vulkan-drivers)."
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq mesa-vulkan-drivers >/dev/null
fi

# Mesa's software driver complains about this harmlessly when it is unset.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo test --release --locked "$@"
# The real app in a virtual display, then the browser build in headless Chromium: each must train, stay alive
# and draw (skipped when a test filter is given).
if [ "$#" -eq 0 ]; then
    scripts/app_screenshot.sh target/app-screenshot.png 60
    web/test.sh target/browser-screenshot.png
fi
