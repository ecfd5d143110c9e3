#!/usr/bin/env python3
"""Converts the public DALL-E discrete VAE checkpoints into safetensors files for beitlab.

OpenAI publishes the tokenizer used by BEiT as two pickles,
  https://cdn.openai.com/dall-e/encoder.pkl
  https://cdn.openai.com/dall-e/decoder.pkl
each holding a whole `dall_e.encoder.Encoder` / `dall_e.decoder.Decoder` module, loadable with `dall_e.load_model`
or `torch.load` while the `dall_e` package is installed. This script loads them (with weights_only=False, which
torch >= 2.6 needs for whole modules; only load pickles you trust), takes the state_dict, casts every tensor to
float32 and writes it with the package's tensor names (blocks.input.w, blocks.group_1.block_1.res_path.conv_1.w,
..., blocks.output.conv.b).

Needs torch, safetensors and DALL-E (module `dall_e`) from PyPI. A pickle holding a plain state_dict is accepted
too.

Usage: python tools/dalle_to_safetensors.py --encoder encoder.pkl --decoder decoder.pkl --out-dir DIR
writes DIR/dalle_encoder.safetensors and DIR/dalle_decoder.safetensors; either of --encoder / --decoder may be
left out, but not both.
"""
import argparse
import os
import re
import sys

import torch
from safetensors.torch import save_file

try:
    import dall_e  # noqa: F401  (the pickles refer to its classes)
except ImportError:
    dall_e = None


def load_state_dict(path):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # torch older than 1.13 has no weights_only
        obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SystemExit(f"{path}: expected a dall_e module or a state_dict, got {type(obj).__name__}")
    return {k: v.detach().to(torch.float32).contiguous() for k, v in obj.items()}


def blocks_per_group(sd):
    found = {int(m.group(1)) for k in sd for m in [re.match(r"blocks\.group_1\.block_(\d+)\.", k)] if m}
    return max(found) if found else 0


def describe(kind, sd):
    """The architecture the tensors imply."""
    for name in ("blocks.input.w", "blocks.output.conv.w"):
        if name not in sd:
            raise SystemExit(f"{kind}: no tensor named {name}; is this a dall_e {kind}?")
    inp, out = sd["blocks.input.w"], sd["blocks.output.conv.w"]
    if kind == "encoder":
        if inp.shape[2] != 7:
            raise SystemExit(f"encoder: blocks.input.w has shape {tuple(inp.shape)}, expected a 7x7 conv")
        return (f"n_hid {inp.shape[0]}, {blocks_per_group(sd)} blocks per group, input channels {inp.shape[1]}, "
                f"vocabulary {out.shape[0]}")
    if inp.shape[2] != 1:
        raise SystemExit(f"decoder: blocks.input.w has shape {tuple(inp.shape)}, expected a 1x1 conv")
    return (f"n_init {inp.shape[0]}, n_hid {out.shape[1]}, {blocks_per_group(sd)} blocks per group, "
            f"output channels {out.shape[0] // 2}, vocabulary {inp.shape[1]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", help="encoder.pkl")
    ap.add_argument("--decoder", help="decoder.pkl")
    ap.add_argument("--out-dir", required=True, help="folder for dalle_encoder.safetensors / dalle_decoder.safetensors")
    args = ap.parse_args()
    if not args.encoder and not args.decoder:
        ap.error("give --encoder, --decoder or both")
    if dall_e is None:
        print("warning: the dall_e package is not installed; loading a pickled module will fail", file=sys.stderr)

    os.makedirs(args.out_dir, exist_ok=True)
    for kind, path in (("encoder", args.encoder), ("decoder", args.decoder)):
        if not path:
            continue
        sd = load_state_dict(path)
        info = describe(kind, sd)
        out = os.path.join(args.out_dir, f"dalle_{kind}.safetensors")
        save_file(sd, out)
        print(f"wrote {out}: {len(sd)} tensors, {sum(v.numel() for v in sd.values())} parameters; {info}")


if __name__ == "__main__":
    main()
