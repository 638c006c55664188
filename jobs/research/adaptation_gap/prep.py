"""Fitted-coordinate ingredients: gauge map, type means, k-means centres, likelihood parameters; saved to prep.npz."""
from common import *
import json, time
d = load(); T = gen_types()
Zt, Zf, Uf, Ut = d["Zt"], d["Zf"], d["Uf"], d["Ut"]
out = {}
# gauge: Zt ~ Zf G
G, *_ = np.linalg.lstsq(Zf, Zt, rcond=None)
r2 = 1 - ((Zf @ G - Zt) ** 2).sum() / ((Zt - Zt.mean(0)) ** 2).sum()
print("Zt ~ Zf G: R^2", round(r2, 4))
out["G"] = G
# true margins vs fitted margins on the new users' pools (oracle check)
Ubar = np.array([Uf[d["utype"] == t].mean(0) for t in range(84)])
out["Ubar"] = Ubar
print("users per type", np.bincount(d["utype"]).min(), np.bincount(d["utype"]).max())
Mt_true = Zt @ T.T; M_gt = Zf @ (G @ T.T); M_bar = Zf @ Ubar.T
for nm, M in (("Zf G T", M_gt), ("Zf Ubar", M_bar)):
    c = (M * Mt_true).sum() / (M * M).sum()
    print(nm, "corr with true margins", np.corrcoef(M.ravel(), Mt_true.ravel())[0, 1].round(4), "LS scale to true", round(c, 4))
# calibration of fitted margins to true units from training users (u_i.z_p fitted vs true), all labelled pairs
u, p, y = d["labels"]
mf = (Uf[u] * Zf[p]).sum(1); mt = (Ut[u] * Zt[p]).sum(1)
cal = (mf * mt).sum() / (mf * mf).sum()
print("training pairs: corr fitted/true margin", np.corrcoef(mf, mt)[0, 1].round(4), "calibration scale", round(cal, 4))
out["cal"] = cal
t0 = time.time()
C, a = kmeans(Uf, 84, seed=0, restarts=3)
print("kmeans", round(time.time() - t0, 1), "s")
out["C"] = C
# purity of k-means clusters vs true types
pur = sum(np.bincount(d["utype"][a == j]).max() for j in range(84) if np.any(a == j)) / len(a)
print("kmeans purity", round(pur, 3), "distinct majority types", len({np.bincount(d['utype'][a == j]).argmax() for j in range(84) if np.any(a == j)}))
# likelihood parameters
for split in ("labels", "validation"):
    u, p, y = d[split]
    mf = (Uf[u] * Zf[p]).sum(1); mt = (Ut[u] * Zt[p]).sum(1)
    for nm, m in (("fitted", mf), ("true", mt)):
        th, nll = fit_ordinal(m, y)
        s, nl2 = fit_logistic_scale(m, y)
        print(f"{split} {nm} margins: ordinal r={th[0]:.4f} s={th[1]:.4f} a={th[2]:.4f} nll={nll:.4f}; logistic scale={s:.4f} bce={nl2:.4f}; ties={np.mean(y == 0.5):.3f}")
        out[f"ord_{split}_{nm}"] = np.array(th); out[f"logit_{split}_{nm}"] = s
# exact-form nll of true margins for reference
u, p, y = d["labels"]; mt = (Ut[u] * Zt[p]).sum(1)
q = Exact(d["tie"], d["noise"]).q(mt); yi = np.round(2 * y).astype(int)
print("exact model on true margins, nll", -np.log(np.maximum(q[yi, np.arange(len(y))], 1e-300)).mean())
np.savez("prep.npz", **out)
