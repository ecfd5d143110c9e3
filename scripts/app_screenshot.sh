#!/usr/bin/env bash
# Start the real app in a virtual X display (Xvfb) on the software Vulkan driver, let it train on the built-in
# data, take a screenshot, and fail if the app died, reported an error, did not train, or the window is blank.
#
#   scripts/app_screenshot.sh [OUT.png] [SECONDS] [VIEW]
#
# Defaults: target/app-screenshot.png, 75 seconds, the masked image modeling view. The README's screenshot is
# made with: scripts/app_screenshot.sh assets/screenshots/app.png 240 (the CPU default phases end in about 220 s)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-target/app-screenshot.png}"
SECONDS_TO_TRAIN="${2:-75}"
VIEW="${3:-mim}"

need=()
command -v Xvfb >/dev/null || need+=(xvfb)
command -v import >/dev/null || need+=(imagemagick)
command -v xdpyinfo >/dev/null || need+=(x11-utils)
compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null || need+=(mesa-vulkan-drivers)
# Libraries winit opens at run time for an X11 window.
for lib in libxkbcommon-x11.so.0 libXcursor.so.1 libXrandr.so.2 libXi.so.6 libX11-xcb.so.1 libvulkan.so.1; do
    ldconfig -p | grep -q "$lib" || need+=("$lib")
done
if [ "${#need[@]}" -gt 0 ]; then
    pkgs=()
    for n in "${need[@]}"; do
        case "$n" in
            libxkbcommon-x11.so.0) pkgs+=(libxkbcommon-x11-0) ;;
            libXcursor.so.1) pkgs+=(libxcursor1) ;;
            libXrandr.so.2) pkgs+=(libxrandr2) ;;
            libXi.so.6) pkgs+=(libxi6) ;;
            libX11-xcb.so.1) pkgs+=(libx11-xcb1) ;;
            libvulkan.so.1) pkgs+=(libvulkan1) ;;
            *) pkgs+=("$n") ;;
        esac
    done
    echo "installing: ${pkgs[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

cargo build --release --locked --bin beitlab
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
WORK="$(mktemp -d)"

# A free display number.
DISPLAY_NUM=90
while [ -e "/tmp/.X11-unix/X$DISPLAY_NUM" ] || [ -e "/tmp/.X$DISPLAY_NUM-lock" ]; do
    DISPLAY_NUM=$((DISPLAY_NUM + 1))
done
export DISPLAY=":$DISPLAY_NUM"
Xvfb "$DISPLAY" -screen 0 1280x800x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
XVFB_PID=$!
APP_PID=""
cleanup() {
    [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null || true
    kill "$XVFB_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.2; done
xdpyinfo >/dev/null 2>&1 || { echo "FAIL: Xvfb did not start"; cat "$WORK/xvfb.log"; exit 1; }

# The app quits by itself a little after the screenshot and writes its report.
# It also saves its view as a PNG a few seconds before the screenshot (the "Save view as PNG" button's path), into
# its working folder.
BIN="$PWD/target/release/beitlab"
(cd "$WORK" && exec "$BIN" app --start --view "$VIEW" --quit-after $((SECONDS_TO_TRAIN + 8)) \
    --save-view-after $((SECONDS_TO_TRAIN - 5)) --report "$WORK/report.json" >"$WORK/app.log" 2>&1) &
APP_PID=$!
sleep "$SECONDS_TO_TRAIN"
if ! kill -0 "$APP_PID" 2>/dev/null; then
    echo "FAIL: the app died before the screenshot"
    cat "$WORK/app.log"
    exit 1
fi
mkdir -p "$(dirname "$OUT")"
import -window root "$OUT"
wait "$APP_PID" || { echo "FAIL: the app exited with an error"; cat "$WORK/app.log"; exit 1; }
APP_PID=""

# Blank window check: a trained app's window has many colours and real contrast.
COLOURS=$(identify -format "%k" "$OUT")
SPREAD=$(convert "$OUT" -colorspace Gray -format "%[fx:standard_deviation*1000]" info: | cut -d. -f1)
echo "screenshot $OUT: $COLOURS colours, grey-level spread $SPREAD / 1000"
if [ "$COLOURS" -lt 64 ] || [ "$SPREAD" -lt 20 ]; then
    echo "FAIL: the window looks blank"
    exit 1
fi

# The view saved by the app itself: a PNG of the view's panel, not blank.
SAVED="$WORK/beitlab-$VIEW.png"
[ -s "$SAVED" ] || { echo "FAIL: the app did not save its view as $SAVED"; cat "$WORK/app.log"; exit 1; }
SAVED_COLOURS=$(identify -format "%k" "$SAVED")
echo "view saved by the app: $(identify -format "%w x %h" "$SAVED"), $SAVED_COLOURS colours"
[ "$SAVED_COLOURS" -ge 32 ] || { echo "FAIL: the saved view looks blank"; exit 1; }
cp "$SAVED" "$(dirname "$OUT")/app-saved-view.png"

python3 - "$WORK/report.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"adapter: {r['adapter']}")
print(f"preset {r['preset']}: steps done (tokenizer, pretrain, fine-tune, segment) {r['steps_done']}, "
      f"{(r['images_per_s'] or 0):.0f} images/s, last MIM loss {r['last_pretrain_loss']}")
print(f"frame time while training over {r['training_frames']} frames: mean {r['frame_ms_mean']:.1f} ms, "
      f"median {r['frame_ms_p50']:.1f} ms, 95th percentile {r['frame_ms_p95']:.1f} ms, max {r['frame_ms_max']:.1f} ms")
mem = r.get("memory") or []
if mem:
    print("memory every 10 s (seconds phase: resident MiB / GPU buffer MiB): " +
          ", ".join(f"{m['seconds']:.0f} {m['phase']}: {m['resident_mib']:.0f} / {m['gpu_buffer_mib']:.1f}" for m in mem))
if r["error"]:
    sys.exit(f"FAIL: the app reported an error: {r['error']}")
if not r["steps_done"] or r["steps_done"][0] == 0:
    sys.exit("FAIL: the app did not train")
EOF
echo "app screenshot check passed"
