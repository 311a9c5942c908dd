#!/usr/bin/env python3
"""Independent check of the CPU paged decode attention: numpy computes
softmax(q·Kᵀ·scale)·V and the log-sum-exp from the problem attention_dump writes, and
compares with the kernel's answer. Usage: numpy_attention_check.py ATTENTION_DUMP_BINARY"""
import json
import subprocess
import sys
import tempfile

import numpy as np


def main():
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.argv[1], d], check=True)
        meta = json.load(open(f"{d}/meta.json"))
        hq, hk, dim, lens = meta["q_heads"], meta["kv_heads"], meta["dim"], meta["lens"]
        scale = np.float64(meta["scale"])
        q = np.fromfile(f"{d}/q.f32", np.float32).reshape(len(lens), hq, dim).astype(np.float64)
        k = np.fromfile(f"{d}/k.f32", np.float32).reshape(-1, hk, dim).astype(np.float64)
        v = np.fromfile(f"{d}/v.f32", np.float32).reshape(-1, hk, dim).astype(np.float64)
        out = np.fromfile(f"{d}/out.f32", np.float32).reshape(len(lens), hq, dim)
        lse = np.fromfile(f"{d}/lse.f32", np.float32).reshape(len(lens), hq)
    start, worst, worst_lse = 0, 0.0, 0.0
    group = hq // hk
    for s, n in enumerate(lens):
        ks, vs = k[start:start + n], v[start:start + n]
        start += n
        for h in range(hq):
            scores = ks[:, h // group, :] @ q[s, h] * scale
            m = scores.max()
            w = np.exp(scores - m)
            ref = (w / w.sum()) @ vs[:, h // group, :]
            worst = max(worst, float(np.abs(ref - out[s, h]).max()))
            worst_lse = max(worst_lse, abs(float(m + np.log(w.sum())) - float(lse[s, h])))
    print(f"max |out - numpy| = {worst:.2e}, max |lse - numpy| = {worst_lse:.2e}")
    if worst > 1e-4 or worst_lse > 1e-3:
        print("FAIL")
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
