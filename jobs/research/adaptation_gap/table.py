"""Markdown table of all results in res/ (pred mode unless named), with pref's own runs on the same 300 users; paired diffs."""
import glob, numpy as np, h5py
from common import summ, D, BUDGETS
cols = [0, 1, 2, 3]  # budgets 1, 2, 5, 10
def fmt(r):
    m, h = summ(r)
    return " | ".join(f"{m[i]:.3f} ± {h[i]:.3f}" for i in cols)
rows = []
for fn in sorted(glob.glob("res/*.npz")):
    nm = fn[4:-4]; z = np.load(fn)
    for mode in ("pred", "mean", "map"):
        rows.append((nm.replace("__", " / ") + " / " + mode, z[mode]))
print("| Z atoms / likelihood / questions / ranking | 1 | 2 | 5 | 10 |\n|---|---|---|---|---|")
for n, r in rows:
    print(f"| {n} | {fmt(r)} |")
for n in ("bayes_population", "active_none", "random_population", "active_population"):
    a = h5py.File(D + f"adapted_{n}.h5", "r")["budget_auc"][:300]
    print(f"| pref {n} (same 300 users) | {fmt(a)} |")
