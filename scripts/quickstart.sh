#!/usr/bin/env bash
# The main job on the built-in data, on a fresh machine: installs a software Vulkan driver when no driver exists
# (saying so), builds beitlab, then trains the visual tokenizer, pretrains BEiT on its tokens and fine-tunes the
# result on the CPU default preset (mini: 28 px, a 7 x 7 patch grid), printing progress, the masked-token accuracy
# and the final validation accuracy.
#   scripts/quickstart.sh [--steps N] [--runs DIR]
# Defaults: 600 pretraining and 600 fine-tuning steps (the tokenizer trains a third as many), runs/.
# BEITLAB_BIN=path/to/beitlab uses that binary instead of building one.
set -euo pipefail
steps=600
runs=runs
while [ "$#" -gt 0 ]; do
    case "$1" in
        --steps) steps="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        *) echo "unknown option $1 (use --steps N, --runs DIR)" >&2; exit 2 ;;
    esac
done
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/vulkan-setup.sh"
bin="${BEITLAB_BIN:-}"
if [ -z "$bin" ]; then
    (cd "$here" && cargo build --release --locked --bin beitlab)
    bin="$here/target/release/beitlab"
fi
# --overwrite: running the main job again replaces its previous runs.
tokenizer_steps=$(( steps / 3 > 0 ? steps / 3 : 1 ))
"$bin" pretrain --preset mini --tokenizer-steps "$tokenizer_steps" --steps "$steps" --batch 16 --lr 3e-3 \
    --out "$runs/mini" --overwrite
"$bin" finetune --init "$runs/mini" --steps "$steps" --out "$runs/mini-ft" --overwrite
