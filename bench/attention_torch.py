#!/usr/bin/env python3
"""The established implementation kvtier-bench attention is compared with: PyTorch's
scaled_dot_product_attention on the same Llama-3-8B decode shapes (32 query heads, 8 KV
heads, head_dim 128, bf16, one new token per sequence), with K/V already gathered into
contiguous [batch, kv_heads, context, head_dim] tensors, the layout SDPA wants (the gather
itself is not timed, which favours PyTorch). Prints one JSON object per shape with the
same fields as kvtier-bench attention: K/V bytes read per second.

  python3 bench/attention_torch.py --device=cuda --batches=1,16,64 --contexts=1024,4096,32768
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

Q_HEADS, KV_HEADS, DIM = 32, 8, 128


def parse_list(text):
    return [int(x) for x in text.split(",") if x]


def time_per_call(fn, device, iterations):
    fn()  # warm-up
    if device == "cuda":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iterations):
            fn()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / 1e3 / iterations
    best = float("inf")
    for _ in range(iterations):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--contexts", default="1024,4096,32768")
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(1)
    for batch in parse_list(args.batches):
        for context in parse_list(args.contexts):
            shape = (batch, KV_HEADS, context, DIM)
            k = torch.empty(shape, dtype=torch.bfloat16, device=args.device).uniform_(-1, 1)
            v = torch.empty(shape, dtype=torch.bfloat16, device=args.device).uniform_(-1, 1)
            q = torch.full((batch, Q_HEADS, 1, DIM), 0.1, dtype=torch.bfloat16, device=args.device)
            seconds = time_per_call(
                lambda: F.scaled_dot_product_attention(q, k, v, scale=DIM**-0.5, enable_gqa=True),
                args.device, args.iterations)
            kv_bytes = 2 * k.numel() * k.element_size()
            print(json.dumps({
                "bench": "attention", "device": args.device, "implementation": "torch_sdpa",
                "torch": torch.__version__, "batch": batch, "context": context,
                "q_heads": Q_HEADS, "kv_heads": KV_HEADS, "head_dim": DIM, "kv_dtype": "bf16",
                "kv_bytes": kv_bytes, "attention_seconds": round(seconds, 6),
                "attention_kv_gb_per_s": round(kv_bytes / seconds / 1e9, 3)}), flush=True)
            del k, v, q


if __name__ == "__main__":
    main()
