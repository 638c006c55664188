#!/usr/bin/env python3
"""The input of jobs/bench_import.sh: a `responses` layout CSV and an embeddings file, written in
a streaming way (bounded memory whatever the size).

  OUT/responses.csv   user,prompt,first,second,label,split: LABELS labels of USERS users, each
                      on random pairs of the RESPONSES_PER_PROMPT responses of a random prompt,
                      in a random order; labels 0/1 at random; the split by prompt (90/5/5)
  OUT/embeddings.h5   /ids (fixed-length strings) and /embedding (rows x DIM float32): every
                      response that occurs (in a shuffled order) plus 1% ids nobody uses

Runs with Debian's /usr/bin/python3 (numpy, h5py).
"""
import argparse
import os

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--labels", type=float, default=1e7)
    ap.add_argument("--users", type=float, default=1e5)
    ap.add_argument("--responses", type=float, default=1e6)
    ap.add_argument("--responses-per-prompt", type=int, default=4)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    L, U, R, N = int(a.labels), int(a.users), int(a.responses), a.responses_per_prompt
    P = R // N
    os.makedirs(a.out, exist_ok=True)
    pairs = np.array([(i, j) for i in range(N) for j in range(i + 1, N)])
    split_names = np.array(["train", "validation", "test"])
    # Split by prompt, so that one pair is never in two splits.
    prompt_split = rng.choice(3, size=P, p=[0.9, 0.05, 0.05])
    used = np.zeros(P, dtype=bool)
    chunk = 1_000_000
    with open(os.path.join(a.out, "responses.csv"), "w") as f:
        f.write("user,prompt,first,second,label,split\n")
        for lo in range(0, L, chunk):
            n = min(chunk, L - lo)
            user = rng.integers(U, size=n)
            prompt = rng.integers(P, size=n)
            used[prompt] = True
            k = pairs[rng.integers(len(pairs), size=n)]
            swap = rng.random(n) < 0.5
            first = np.where(swap, k[:, 1], k[:, 0]) + prompt * N
            second = np.where(swap, k[:, 0], k[:, 1]) + prompt * N
            label = rng.integers(2, size=n)
            split = split_names[prompt_split[prompt]]
            f.write("".join(f"u{u},p{q},r{x},r{y},{v},{s}\n" for u, q, x, y, v, s in
                            zip(user.tolist(), prompt.tolist(), first.tolist(), second.tolist(),
                                label.tolist(), split.tolist())))
    ids = [f"r{q * N + k}" for q in np.flatnonzero(used).tolist() for k in range(N)]
    ids += [f"unused{k}" for k in range(len(ids) // 100)]
    order = rng.permutation(len(ids))
    rows = len(ids)
    with h5py.File(os.path.join(a.out, "embeddings.h5"), "w") as f:
        width = max(len(s) for s in ids)
        f.create_dataset("ids", data=np.array([ids[k] for k in order], dtype=f"S{width}"))
        d = f.create_dataset("embedding", shape=(rows, a.dim), dtype=np.float32)
        step = max(1, (64 << 20) // (4 * a.dim))
        for lo in range(0, rows, step):
            hi = min(rows, lo + step)
            d[lo:hi] = rng.standard_normal((hi - lo, a.dim), dtype=np.float32)
    print(f"{L} labels of {U} users over {int(used.sum()) * N} responses of {int(used.sum())} "
          f"prompts; embeddings {rows} x {a.dim}")


if __name__ == "__main__":
    main()
