#!/usr/bin/env bash
# The test command. Works on a fresh machine without a GPU: when no Vulkan driver is installed it installs
# Mesa's software driver (lavapipe), then runs every test in release mode (GPU tests are slow unoptimised):
# the library's tests, the end-to-end tests of the `beitlab` binary as a user types it (tests/cli.rs), the
# real app under Xvfb and the browser build in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/vulkan-setup.sh

# Mesa's software driver complains harmlessly when this is unset (the beitlab binary sets its own; the
# end-to-end tests unset it to check that).
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cargo test --release --locked "$@"
# The real app in a virtual display, then the browser build in headless Chromium: each must train, stay alive
# and draw (skipped when a test filter is given).
if [ "$#" -eq 0 ]; then
    scripts/app_screenshot.sh target/app-screenshot.png 60
    web/test.sh target/browser-screenshot.png
    # The kernel tests again on SwiftShader, the software Vulkan driver that comes with Chromium (installed
    # above): the browser's fallback adapter, whose 4-lane subgroups take gemm_regs where llvmpipe takes
    # gemm_lanes (about 100 s).
    SWIFTSHADER=/usr/lib/chromium/vk_swiftshader_icd.json
    if [ ! -f "$SWIFTSHADER" ]; then
        echo "no $SWIFTSHADER: the Chromium package no longer ships SwiftShader's Vulkan driver there" >&2
        exit 1
    fi
    VK_DRIVER_FILES="$SWIFTSHADER" cargo test --release --locked --test kernels
fi
