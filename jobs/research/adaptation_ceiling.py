#!/usr/bin/python3
"""The Bayes-optimal ceiling of new-user adaptation on a generated Attributes population
(docs/results.md, "New users"): what an estimator that knows everything the generator knows
reaches after 1, 2, 5, 10, 20, 40 answers. It knows the true comparison factors (not the
fitted Z), the exact prior (the 84 types, equally likely: weight +-1 on two of the seven
attributes, no jitter) and the exact label model (a tie when |u.z| < tie_band, else the sign
of u.z flipped with probability label_noise). After each answer it updates the posterior over
the 84 types exactly and ranks the user's held-out comparisons by the posterior predictive
P(y = 1) (ties excluded, as pref adapt's AUC). Questions come from the same askable pool as
`pref adapt --test-answers T` (the first n - T of the pool in comparison-id order): `random`
(uniform) or `infogain` (the unasked comparison minimizing the expected posterior entropy of
the type, over the three outcomes 0, 0.5, 1). Prints the mean held-out AUC per budget.

  /usr/bin/python3 jobs/research/adaptation_ceiling.py --data data.h5 --users 1000 --rule random
"""
import argparse, math
import h5py
import numpy as np

BUDGETS = [1, 2, 5, 10, 20, 40]


def auc(s, y):
    keep = y != 0.5
    s, y = s[keep], y[keep] > 0.5
    pos, neg = y.sum(), (~y).sum()
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    r = np.empty(len(s))
    i = 0
    while i < len(ss):
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        r[order[i:j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    return (r[y].sum() - pos * (pos + 1) / 2) / (pos * neg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--rule", choices=["random", "infogain"], default="random")
    ap.add_argument("--test-answers", type=int, default=100)
    ap.add_argument("--answers", type=int, default=40)
    a = ap.parse_args()
    with h5py.File(a.data, "r") as f:
        g = f["new_users"]
        user = g["user"][:].astype(np.int64)
        comp = g["comparison"][:].astype(np.int64)
        val = g["value"][:] / g["value"].attrs.get("denominator", 1)
        zt = f["truth/comparison_factors"][:]
        tie = float(f["generator"].attrs["tie_band"])
        noise = float(f["generator"].attrs["label_noise"])
    order = np.lexsort((comp, user))
    user, comp, val = user[order], comp[order], val[order]
    starts = np.searchsorted(user, np.arange(user.max() + 2))
    A = zt.shape[1]
    types = []
    for i in range(A):
        for j in range(i + 1, A):
            for si in (1, -1):
                for sj in (1, -1):
                    t = np.zeros(A)
                    t[i], t[j] = si, sj
                    types.append(t)
    T = np.array(types)

    def lik(m, y):
        tied = np.abs(m) < tie
        if y == 0.5:
            return np.where(tied, 1.0, 0.0)
        p1 = np.where(m > 0, 1 - noise, noise)
        return np.where(tied, 0.0, p1 if y == 1 else 1 - p1)

    def entropy(p):
        p = p[p > 0]
        return -(p * np.log(p)).sum()

    res = np.full((a.users, len(BUDGETS)), np.nan)
    for u in range(a.users):
        c, y = comp[starts[u]:starts[u + 1]], val[starts[u]:starts[u + 1]]
        nA = len(c) - a.test_answers
        M, Mt, ya, yt = zt[c[:nA]] @ T.T, zt[c[nA:]] @ T.T, y[:nA], y[nA:]
        w = np.full(len(T), 1.0 / len(T))
        asked = np.zeros(nA, bool)
        rng = np.random.default_rng(u)
        for t in range(a.answers):
            if a.rule == "random":
                k = rng.choice(np.flatnonzero(~asked))
            else:
                best, k = None, -1
                for cand in np.flatnonzero(~asked):
                    e = 0.0
                    for yy in (0.0, 0.5, 1.0):
                        post = lik(M[cand], yy) * w
                        py = post.sum()
                        if py > 1e-12:
                            e += py * entropy(post / py)
                    if best is None or e < best:
                        best, k = e, cand
            asked[k] = True
            w = w * lik(M[k], ya[k])
            w /= w.sum()
            if t + 1 in BUDGETS:
                decided = np.abs(Mt) >= tie
                p1 = (np.where(Mt > 0, 1 - noise, noise) * decided) @ w
                p0 = (np.where(Mt > 0, noise, 1 - noise) * decided) @ w
                res[u, BUDGETS.index(t + 1)] = auc(p1 / np.maximum(p1 + p0, 1e-300), yt)
    m = np.nanmean(res, 0)
    se = np.nanstd(res, 0, ddof=1) / np.sqrt(np.sum(~np.isnan(res), 0))
    print(f"ceiling ({a.rule}, {a.users} users): " +
          "  ".join(f"{b}: {x:.3f}+-{1.96 * s:.3f}" for b, x, s in zip(BUDGETS, m, se)))


if __name__ == "__main__":
    main()
