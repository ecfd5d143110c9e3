#!/usr/bin/env bash
# The GPU measurements beitlab's speed section is made of, in one run on one card, each printed as it finishes:
#   1. the kernel table at BEiT-base and tiny sizes (f32 products, attention composed and fused, the
#      cooperative-matrix rows where the card has them);
#   2. one training step of tiny32 b128, tiny224 b64 and base224 b64: f32 with the defaults (tuned kernels,
#      fused attention), f32 with the attention kept (BEITLAB_ATTENTION=composed), f32 by the rules alone
#      (BEITLAB_TUNE=off), and mixed precision; each as one JSON line (images/s, step, dispatches, memory,
#      precision and attention that ran, what the tuner timed);
#   3. the tuning table the run made.
# The tuning table goes to a fresh folder, so the first run of each shape is timed (its seconds are printed and
# are not part of the step times).
#
#   scripts/gpu_check.sh [BINARY] [PEAK_TFLOPS]    # defaults: target/release/beitlab, 67 (an H100's fp32 peak)
set -euo pipefail
bin="${1:-target/release/beitlab}"
peak="${2:-67}"
steps="${BEITLAB_CHECK_STEPS:-10}"
table="$(mktemp -d)"
export BEITLAB_TUNE_DIR="$table"

echo "## adapter"
"$bin" info

echo "## kernels"
"$bin" bench kernels --preset base --batch 64 --peak-tflops "$peak"
"$bin" bench kernels --preset tiny --batch 128 --peak-tflops "$peak"

echo "## training steps (one JSON line each)"
configs=(
    "tiny32 --preset tiny --image-size 32 --patch-size 4 --batch 128"
    "tiny224 --preset tiny --image-size 224 --patch-size 16 --batch 64"
    "base224 --preset base --image-size 224 --patch-size 16 --batch 64"
)
for config in "${configs[@]}"; do
    read -r name args <<<"$config"
    # shellcheck disable=SC2086
    {
        echo "$name f32 default: $("$bin" bench train $args --steps "$steps" --json)"
        echo "$name f32 attention kept: $(BEITLAB_ATTENTION=composed "$bin" bench train $args --steps "$steps" --json)"
        echo "$name f32 rules only: $(BEITLAB_TUNE=off "$bin" bench train $args --steps "$steps" --json)"
        echo "$name mixed default: $("$bin" bench train $args --steps "$steps" --precision mixed --json)"
    }
done

echo "## tuning table"
if compgen -G "$table/*.json" >/dev/null; then
    cat "$table"/*.json
else
    echo "(none: this adapter follows the rules; BEITLAB_TUNE=on tunes it too)"
fi
