"""Check the PG sampler, the AUC implementation (true model), and the Bayes ceiling."""
import sys, time, numpy as np
from common import *
tag = sys.argv[1] if len(sys.argv) > 1 else "1e5"
t0 = time.time()
print("PG(1,c) check, K=20 terms + tail-mean correction, n=400000 draws each")
print("   c   mean_draw    exact_mean  mc_se      var_draw    exact_var")
for r in pg_check():
    print("%5.1f  %.6f  %.6f  %.1e  %.6f  %.6f" % r)
d = load(tag)
print(d["gen"])
tr, te, va = d["labels"], d["test"], d["validation"]
for name, g in (("test", te), ("validation", va)):
    p = predict(d["U"], d["Z"], g)
    print(f"{tag} truth {name}: auc {auc(g['y'], p):.6f} logloss {logloss(g['y'], p):.6f}")
N, J = d["U"].shape
L = len(tr["y"]) // N
Zl = d["Z"][tr["comp"]].reshape(N, L, J)
u = map_users(Zl, tr["y"].reshape(N, L), np.eye(J))
for name, g in (("test", te), ("validation", va)):
    p = predict(u, d["Z"], g)
    print(f"{tag} bayes ceiling (MAP, true Z, N(0,I) prior) {name}: auc {auc(g['y'], p):.6f} logloss {logloss(g['y'], p):.6f}")
p = predict(d["U"], d["Z"], tr)
print(f"{tag} truth train logloss {logloss(tr['y'], p):.6f}")
print("seconds", time.time() - t0)
