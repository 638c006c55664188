#!/usr/bin/env python3
"""A planted population written in summarize-from-feedback's layout (issue 25).

Writes what a researcher downloads from openai/summarize-from-feedback and embeds with a reward
model, with a known truth, so that `pref import --layout summarize-from-feedback --embeddings`,
`pref fit --items embeddings` and `pref evaluate` can be checked against the true rewards:

  OUT/comparisons/batchB.json   JSON lines, one comparison a line, as in the public set:
                                info{id, post, title, subreddit} (CNN/DM rows: info{id, article,
                                site, title}), summaries[2]{text, policy, note}, choice (0 or 1,
                                the preferred summary), worker, batch, split (train, valid1,
                                valid2), extra{confidence}
  OUT/embeddings.h5             /ids (the summaries' texts, variable-length UTF-8) and
                                /embedding (n x d float32), with a few ids no comparison uses
  OUT/truth.json                the true rewards' ROC-AUC on the labels of each split, computed
                                as `pref evaluate` scores them (pairs a worker labelled twice
                                averaged, ties left out)

The model: summary r of a post has hidden attributes s_r ~ N(0, I_K) and an embedding
e_r = A^T s_r + sigma n_r (A: K x d with N(0, 1/K) entries, n_r ~ N(0, I_d)); worker i has
weights u_i = m + L z_i (a shared preference m plus a personal part); worker i prefers summary a
to b with probability sigmoid(u_i . (s_a - s_b)). Posts are split by post, as the public set
is: train, valid1 and valid2 posts are disjoint, so the test labels are of summaries no
training label mentions (the embeddings' head must generalize). Awkward rows on purpose:
quotes, backslashes, unicode and newlines in texts, CNN/DM rows, a null note, rows without
`extra`, pairs in both orders and pairs a worker labelled twice.

Runs with Debian's /usr/bin/python3 (numpy, h5py).
"""
import argparse
import json
import os

import h5py
import numpy as np


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def auc(margins, labels):
    """ROC-AUC of margins for labels in {0, 1} (ties of scores count half), as pref does."""
    m, y = np.asarray(margins, float), np.asarray(labels, float)
    keep = (y == 0) | (y == 1)
    m, y = m[keep], y[keep]
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(m, kind="mergesort")
    ranks = np.empty(len(m))
    sm = m[order]
    i = 0
    while i < len(sm):  # average ranks over tied scores
        j = i
        while j + 1 < len(sm) and sm[j + 1] == sm[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--workers", type=int, default=400)
    ap.add_argument("--posts", type=int, default=3000)
    ap.add_argument("--summaries", type=int, default=4, help="summaries per post")
    ap.add_argument("--labels", type=float, default=50, help="mean labels per worker")
    ap.add_argument("--skew", type=float, default=0.0,
                    help="0: every worker gives --labels labels; s > 0: lognormal counts with "
                         "log-standard deviation s and the same mean (at least 2 each)")
    ap.add_argument("--rank", type=int, default=4, help="K, the true attributes per summary")
    ap.add_argument("--dim", type=int, default=16, help="d, the embedding dimension")
    ap.add_argument("--noise", type=float, default=0.3, help="sigma, the embedding noise")
    ap.add_argument("--shared", type=float, default=1.0,
                    help="norm of the shared preference m (a common taste)")
    ap.add_argument("--spread", type=float, default=1.5,
                    help="standard deviation of each worker's personal weights")
    ap.add_argument("--repeats", type=float, default=0.01,
                    help="share of labels that a worker gives twice (the second time in the "
                         "other order half of the time)")
    ap.add_argument("--valid1", type=float, default=0.1, help="share of posts in valid1")
    ap.add_argument("--valid2", type=float, default=0.1, help="share of posts in valid2")
    ap.add_argument("--cnndm", type=float, default=0.05, help="share of CNN/DM posts")
    ap.add_argument("--unused", type=int, default=25, help="embedding rows no comparison uses")
    ap.add_argument("--batches", type=int, default=3, help="comparison files")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    K, d, S = a.rank, a.dim, a.summaries

    # Posts and their summaries.
    split_of_post = rng.choice(["train", "valid1", "valid2"], size=a.posts,
                               p=[1.0 - a.valid1 - a.valid2, a.valid1, a.valid2])
    cnndm = rng.random(a.posts) < a.cnndm
    odd = ["\u00e9t\u00e9 \u2014 caf\u00e9", "say \"hi\"", "a\\b", "line one\nline two",
           "emoji \U0001F600", "tab\there", "comma, and; semicolon", "\u4e2d\u6587"]
    texts = []
    for p in range(a.posts):
        row = []
        for k in range(S):
            t = f" summary {k} of post {p}"
            if (p * S + k) % 7 == 0:
                t += ": " + odd[(p * S + k) % len(odd)]
            row.append(t)
        texts.append(row)
    s = rng.normal(size=(a.posts, S, K))
    A = rng.normal(scale=1.0 / np.sqrt(K), size=(K, d))
    emb = s @ A + a.noise * rng.normal(size=(a.posts, S, d))

    # Workers.
    m = rng.normal(size=K)
    m *= a.shared / max(np.linalg.norm(m), 1e-12)
    u = m + a.spread * rng.normal(size=(a.workers, K))
    if a.skew > 0:
        raw = rng.lognormal(mean=0.0, sigma=a.skew, size=a.workers)
        counts = np.maximum(2, np.round(raw / raw.mean() * a.labels)).astype(int)
    else:
        counts = np.full(a.workers, int(round(a.labels)))
    worker_ids = [f"w{int(x):08x}{i}" for i, x in enumerate(rng.integers(0, 2**31, a.workers))]

    rows = []  # (worker, post, first k, second k, choice)
    pairs = [(i, j) for i in range(S) for j in range(i + 1, S)]
    for i in range(a.workers):
        for _ in range(counts[i]):
            p = int(rng.integers(a.posts))
            x, y = pairs[int(rng.integers(len(pairs)))]
            if rng.random() < 0.5:
                x, y = y, x
            prob = sigmoid(u[i] @ (s[p, x] - s[p, y]))
            rows.append((i, p, x, y, 0 if rng.random() < prob else 1))
            if rng.random() < a.repeats:  # the same pair again, maybe in the other order
                if rng.random() < 0.5:
                    x, y = y, x
                prob = sigmoid(u[i] @ (s[p, x] - s[p, y]))
                rows.append((i, p, x, y, 0 if rng.random() < prob else 1))
    order = rng.permutation(len(rows))
    rows = [rows[k] for k in order]

    os.makedirs(os.path.join(a.out, "comparisons"), exist_ok=True)
    files = [open(os.path.join(a.out, "comparisons", f"batch{b + 3}.json"), "w", encoding="utf-8")
             for b in range(a.batches)]
    for n, (i, p, x, y, choice) in enumerate(rows):
        if cnndm[p]:
            info = {"id": f"{p:040x}", "article": f"Article {p} text.\n\nSecond paragraph.",
                    "site": "dailymail", "title": f"Headline {p}"}
        else:
            info = {"id": f"t3_{p:06x}", "post": f"Post {p} body, with \"quotes\".",
                    "title": f"Title {p}", "subreddit": "relationships"}
        rec = {"info": info,
               "summaries": [{"text": texts[p][x], "policy": "ref" if x == 0 else f"sup{x}",
                              "note": None if n % 5 == 0 else "a note"},
                             {"text": texts[p][y], "policy": "ref" if y == 0 else f"sup{y}",
                              "note": "Unclear."}],
               "choice": choice, "worker": worker_ids[i], "batch": f"batch{n % a.batches + 3}",
               "split": str(split_of_post[p])}
        if n % 3:
            rec["extra"] = {"confidence": int(1 + n % 9)}
        files[n % a.batches].write(json.dumps(rec, ensure_ascii=(n % 2 == 0)) + "\n")
    for f in files:
        f.close()

    # Embeddings: the used summaries (in a shuffled order) and a few ids nobody uses.
    used = sorted({(p, k) for (_, p, x, y, _) in rows for k in (x, y)})
    ids = [texts[p][k] for p, k in used] + [f"unused summary {j}" for j in range(a.unused)]
    vecs = np.concatenate([np.array([emb[p, k] for p, k in used]).reshape(-1, d),
                           rng.normal(size=(a.unused, d))])
    perm = rng.permutation(len(ids))
    with h5py.File(os.path.join(a.out, "embeddings.h5"), "w") as f:
        f["ids"] = np.array([ids[k] for k in perm], dtype=h5py.string_dtype())
        f["embedding"] = vecs[perm].astype(np.float32)

    # The truth's AUC per split, on the labels as pref keeps them: a worker's labels of one pair
    # averaged into one (1 - y for the other order), ties (0.5) left out.
    merged = {}
    for (i, p, x, y, choice) in rows:
        y1 = 1.0 if choice == 0 else 0.0  # 1: the first summary of this row preferred
        key = (i, p, min(x, y), max(x, y))
        v = y1 if x < y else 1.0 - y1  # oriented as (min, max)
        merged.setdefault(key, []).append(v)
    truth = {}
    for split, name in (("train", "train"), ("valid1", "validation"), ("valid2", "test")):
        mg, lab = [], []
        for (i, p, x, y), vs in merged.items():
            if split_of_post[p] != split:
                continue
            mg.append(u[i] @ (s[p, x] - s[p, y]))
            lab.append(float(np.mean(vs)))
        truth[name] = {"labels": len(lab), "auc": auc(mg, lab)}
    truth["workers"] = a.workers
    truth["rows"] = len(rows)
    truth["responses_used"] = len(used)
    truth["unused_embeddings"] = a.unused
    with open(os.path.join(a.out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    print(json.dumps(truth))


if __name__ == "__main__":
    main()
