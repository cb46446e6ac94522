#!/usr/bin/env python3
"""Golden logits from Hugging Face's DeepseekV3ForCausalLM for a synthetic checkpoint.

Needs torch and a transformers release with DeepSeek-V3 (4.57 or later; both are on the device machine).

    ./cluster model init --preset tiny --out tests/golden/tiny
    python3 tests/golden/make_golden.py --model tests/golden/tiny --out tests/golden/tiny-logits.bin
    ./cluster logits --model tests/golden/tiny --tokens 0,15,27,3,999,512,64,7,1023,200 --out /tmp/ours.bin
    python3 tests/golden/make_golden.py --model tests/golden/tiny --compare /tmp/ours.bin

Writes float32 little-endian logits, row-major [tokens, vocab_size], no header: the layout `cluster logits`
writes, so a test can compare the two files within 1e-3 relative (max |a - b| / max |b|). The model runs in
float32 with eager attention on the CPU, so the result does not depend on a GPU's kernels.
"""
import argparse
import sys

import numpy as np
import torch
from transformers import AutoConfig, DeepseekV3ForCausalLM

TOKENS = [0, 15, 27, 3, 999, 512, 64, 7, 1023, 200]


def logits_of(model_dir: str, tokens: list[int]) -> np.ndarray:
    config = AutoConfig.from_pretrained(model_dir)
    if getattr(config, "quantization_config", None):
        sys.exit(f"{model_dir}: FP8 checkpoint; write the golden fixture from a --weights bf16 checkpoint")
    model = DeepseekV3ForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([tokens], dtype=torch.long), use_cache=False)
    return out.logits[0].to(torch.float32).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint directory written by `cluster model init`")
    p.add_argument("--tokens", default=",".join(map(str, TOKENS)), help="comma-separated token ids")
    p.add_argument("--out", help="where to write the golden logits (.bin)")
    p.add_argument("--compare", help="a `cluster logits` output to check against Hugging Face's logits")
    args = p.parse_args()
    tokens = [int(t) for t in args.tokens.split(",")]
    torch.manual_seed(0)
    reference = logits_of(args.model, tokens)
    if args.out:
        reference.astype("<f4").tofile(args.out)
        print(f"{args.out}: {reference.shape[0]} x {reference.shape[1]} float32 logits")
    if args.compare:
        ours = np.fromfile(args.compare, dtype="<f4")
        if ours.size != reference.size:
            sys.exit(f"{args.compare}: {ours.size} values, expected {reference.size} ({reference.shape[0]} x {reference.shape[1]})")
        ours = ours.reshape(reference.shape)
        rel = float(np.abs(ours - reference).max() / np.abs(reference).max())
        print(f"max relative error {rel:.2e} ({'ok' if rel < 1e-3 else 'FAIL'}: tolerance 1e-3)")
        sys.exit(0 if rel < 1e-3 else 1)


if __name__ == "__main__":
    main()
