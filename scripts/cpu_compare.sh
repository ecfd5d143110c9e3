#!/usr/bin/env bash
# The software driver's speed figure: beitlab's tiny32 pretraining step against PyTorch eager's (HuggingFace BEiT,
# 2 threads) on the same CPU, in paired rounds (beitlab, then PyTorch, then again), with the ratio of each round
# and their median. Timings on shared 2-core machines drift by up to 30% from minute to minute, so only ratios
# from the same round are compared.
#
#   scripts/cpu_compare.sh BEITLAB_BINARY BENCH_TORCH_PY [ROUNDS (default 5)]
#
# BENCH_TORCH_PY: the PyTorch benchmark script (`bench_torch.py --configs tiny32 --batch 16 --threads 2 --device
# cpu` is what runs), which needs python3 with torch and transformers (`pip install torch transformers`).
# beitlab runs on whatever Vulkan driver is installed (lavapipe on a machine without a GPU).
set -euo pipefail
bin=${1:?usage: cpu_compare.sh BEITLAB_BINARY BENCH_TORCH_PY [ROUNDS]}
torch_py=${2:?usage: cpu_compare.sh BEITLAB_BINARY BENCH_TORCH_PY [ROUNDS]}
rounds=${3:-5}
# Each round's JSON lines, and the runtime folder Mesa wants where none is set; removed at the end.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$work}"
python3 -c "import torch, transformers" 2>/dev/null || {
    echo "python3 cannot import torch and transformers: pip install torch transformers" >&2
    exit 1
}
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
for round in $(seq 1 "$rounds"); do
    ours=$("$bin" bench train --preset tiny --image-size 32 --patch-size 4 --batch 16 --steps 3 --json 2>/dev/null |
        grep '^{') || { echo "round $round: $bin bench train failed" >&2; exit 1; }
    theirs=$(python3 "$torch_py" --configs tiny32 --batch 16 --threads 2 --device cpu 2>/dev/null | grep '^{') ||
        { echo "round $round: $torch_py failed" >&2; exit 1; }
    echo "$ours" >>"$work/beitlab.jsonl"
    echo "$theirs" >>"$work/torch.jsonl"
done
python3 - "$work/beitlab.jsonl" "$work/torch.jsonl" <<'PY'
import json, statistics, sys

def rows(path):
    return [json.loads(line) for line in open(path)]

ours, theirs = rows(sys.argv[1]), rows(sys.argv[2])
print(f"beitlab on {ours[0]['adapter']}; PyTorch {theirs[0].get('torch', '?')} on {theirs[0]['torch_threads']} threads")
print(f"{'round':>5} {'beitlab img/s':>14} {'step ms':>8} {'PyTorch img/s':>14} {'ratio':>6}")
ratios = []
for i, (o, t) in enumerate(zip(ours, theirs), 1):
    r = o["images_per_s"] / t["images_per_s"]
    ratios.append(r)
    print(f"{i:5} {o['images_per_s']:14.1f} {o['step_ms_median']:8.0f} {t['images_per_s']:14.1f} {r:6.2f}")
print(f"ratio median {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f}) over {len(ratios)} rounds")
PY
