"""Post-hoc: posterior-mean predictions from the cumulative snapshots of the chains.
usage: analyze.py chain-A.npz [chain-B.npz ...]
For each chain and estimator (plain: mean of sigmoid(u.z) over sweeps; RB: Rao-Blackwellized
over u | Z, omega): metrics of the mean over windows (0,s] and (s/2,s], and a 1/S
extrapolation over windows (b0, s] (b0 = a third of the chain), since Monte Carlo noise in a
finite average lowers AUC and raises log-loss by roughly const/S_eff.
If several chains: metrics of the pooled mean (per estimator) and agreement between chains."""
import sys, numpy as np
from common import auc, logloss


def report(fn, s, te, va, yte, yva):
    print(f"== {fn}: {s[-1]} sweeps")
    print("    s | (0,s]  test_auc test_ll  val_auc val_ll | (h,s] test_auc test_ll  val_auc val_ll")
    idx = {k: i for i, k in enumerate(s)}
    for k in s:
        if not (k <= 50 or k % 50 == 0 or k == s[-1]):
            continue
        a, b = te[idx[k]] / k, va[idx[k]] / k
        h = (k // 2) // 10 * 10
        if h in idx:
            a2, b2 = (te[idx[k]] - te[idx[h]]) / (k - h), (va[idx[k]] - va[idx[h]]) / (k - h)
        else:
            a2, b2, h = a, b, 0
        print(f"{k:5d} | {auc(yte, a):.4f} {logloss(yte, a):.4f}  {auc(yva, b):.4f} {logloss(yva, b):.4f} | ({h},{k}] "
              f"{auc(yte, a2):.4f} {logloss(yte, a2):.4f}  {auc(yva, b2):.4f} {logloss(yva, b2):.4f}")
    b0 = (s[-1] // 3) // 10 * 10
    base = te[idx[b0]] if b0 in idx else 0.0
    xs, A, LL = [], [], []
    for k in s:
        if k - b0 >= 20:
            m = (te[idx[k]] - base) / (k - b0)
            xs.append(1.0 / (k - b0)); A.append(auc(yte, m)); LL.append(logloss(yte, m))
    if len(xs) >= 3:
        pa, pl = np.polyfit(xs, A, 1), np.polyfit(xs, LL, 1)
        print(f"  windows ({b0}, s], S = {1/xs[0]:.0f}..{1/xs[-1]:.0f} sweeps: test auc {A[0]:.4f} -> {A[-1]:.4f}, "
              f"log-loss {LL[0]:.4f} -> {LL[-1]:.4f}; fit a + b/S, S -> inf: auc {pa[1]:.4f} (b {pa[0]:+.3f}), "
              f"log-loss {pl[1]:.4f} (b {pl[0]:+.3f})")
    return b0


groups = {}
for fn0 in sys.argv[1:]:
    z = np.load(fn0)
    yte, yva = z["yte"], z["yva"]
    for kind, kte, kva in (("plain", "te", "va"), ("RB", "rte", "rva")):
        if kte not in z:
            continue
        s, te, va = z["sweeps"], z[kte], z[kva]
        b0 = report(fn0 + ":" + kind, s, te, va, yte, yva)
        idx = {k: i for i, k in enumerate(s)}
        bt = te[idx[b0]] if b0 in idx else 0.0
        bv = va[idx[b0]] if b0 in idx else 0.0
        groups.setdefault(kind, []).append((fn0, te[-1] - bt, va[-1] - bv, s[-1] - b0))
if len(sys.argv) > 2:
    lg = lambda p: np.log(p / (1 - p))
    for kind, g in groups.items():
        n = sum(x[3] for x in g)
        pt = sum(x[1] for x in g) / n
        pv = sum(x[2] for x in g) / n
        print(f"== pooled {kind} ({n} sweeps after 1/3 burn-in per chain): test auc {auc(yte, pt):.4f} ll {logloss(yte, pt):.4f}"
              f"  val auc {auc(yva, pv):.4f} ll {logloss(yva, pv):.4f}")
        for i in range(len(g)):
            for j in range(i + 1, len(g)):
                mi, mj = g[i][1] / g[i][3], g[j][1] / g[j][3]
                print(f"   {kind}: corr of logit(test means) {g[i][0]} vs {g[j][0]}: {np.corrcoef(lg(mi), lg(mj))[0,1]:.4f}; "
                      f"rms prob diff {np.sqrt(np.mean((mi-mj)**2)):.4f} (sd of probs {mi.std():.4f})")
