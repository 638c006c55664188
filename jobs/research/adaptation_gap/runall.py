"""Swap one ingredient at a time in the exact ceiling. Results: res/<name>.npz, table lines in runall.log."""
from common import *
import sys, time, os
os.makedirs("res", exist_ok=True)
d = load(); T = gen_types(); P = np.load("prep.npz")
Zt, Zf, Uf, Ut = d["Zt"], d["Zf"], d["Uf"], d["Ut"]
G, Ubar, C = P["G"], P["Ubar"], P["C"]
# assign training users to k-means centres (no type knowledge)
d2 = (Uf * Uf).sum(1)[:, None] - 2 * Uf @ C.T + (C * C).sum(1)[None]
assign = d2.argmin(1)
sets = {
    "trueZ_types": (Zt @ T.T, T[d["utype"]], Zt),
    "fitZ_types": (Zf @ (G @ T.T), (G @ T.T).T[d["utype"]], Zf),
    "fitZ_typemeans": (Zf @ Ubar.T, Ubar[d["utype"]], Zf),
    "fitZ_kmeans": (Zf @ C.T, C[assign], Zf),
}
u, p, y = d["labels"]
mt = (Ut[u] * Zt[p]).sum(1)
params = {}
for nm, (M, Ai, Z) in sets.items():
    m = (Ai[u] * Z[p]).sum(1)
    cal = (m * mt).sum() / (m * m).sum()
    th, nll = fit_ordinal(m, y)
    s, bce = fit_logistic_scale(m, y)
    params[nm] = dict(cal=cal, ord=th, logit=s)
    print(f"{nm}: calib to true units {cal:.4f}; ordinal r={th[0]:.3f} s={th[1]:.3f} a={th[2]:.3f} nll={nll:.4f}; logistic scale {s:.3f} bce {bce:.4f}", flush=True)
np.save("params.npy", params, allow_pickle=True)

def liks(nm):
    pr = params[nm]
    out = {"exact": Exact(d["tie"], d["noise"], scale=1.0 if nm == "trueZ_types" else pr["cal"], eps=0.0 if nm == "trueZ_types" else 0.02),
           "logistic1": Logistic(1.0),
           "logisticfit": Logistic(pr["logit"]),
           "ordinal": Ordinal(*pr["ord"])}
    if nm != "trueZ_types":
        out["exact_eps0.1"] = Exact(d["tie"], d["noise"], scale=pr["cal"], eps=0.1)
    return out

which = sys.argv[1:] or list(sets)
for nm in which:
    M = sets[nm][0]
    for ln, lk in liks(nm).items():
        for rule in ("infogain", "random"):
            if rule == "random" and ln not in ("exact", "ordinal", "logistic1"):
                continue
            t0 = time.time()
            r = run(d, M, lk, rule=rule)
            np.savez(f"res/{nm}__{ln}__{rule}.npz", **r)
            for mode in r:
                mm, h = summ(r[mode])
                print(f"{nm:16s} {ln:12s} {rule:8s} {mode:5s} " + " ".join(f"{a:.3f}+-{b:.3f}" for a, b in zip(mm, h)) + f"  ({time.time() - t0:.0f}s)", flush=True)
