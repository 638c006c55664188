"""Refit Z given atoms: each training user is represented by its atom (true type, or its k-means centre of the
fitted users); z_p = argmax of the ordinal (tie-aware) log-likelihood of its training labels + small ridge; then refit the
ordinal parameters on the new margins, and alternate twice. Runs info-gain/random adaptation with the result."""
from common import *
from scipy.optimize import minimize
import sys, time
d = load(); T = gen_types(); P = np.load("prep.npz")
Uf, Zf, C = d["Uf"], d["Zf"], P["C"]
d2 = (Uf * Uf).sum(1)[:, None] - 2 * Uf @ C.T + (C * C).sum(1)[None]
assign = d2.argmin(1)
u, p, y = d["labels"]
yi = np.round(2 * y).astype(int)
M_ = d["Zt"].shape[0]; J = 7
mt = (d["Ut"][u] * d["Zt"][p]).sum(1)

def fitZ(Ai, th, Z0, ridge=1e-2):
    r, s, a = th
    def f(x):
        Z = x.reshape(M_, J)
        m = (Ai * Z[p]).sum(1)
        e = np.exp(-m * m / (2 * s * s)); pt = r * e
        sp, sn = sig(a * m), sig(-a * m)
        ll = np.where(yi == 1, np.log(np.maximum(pt, 1e-300)),
             np.log(np.maximum(1 - pt, 1e-300)) + np.where(yi == 2, np.log(np.maximum(sp, 1e-300)), np.log(np.maximum(sn, 1e-300))))
        dtie = -m / s ** 2
        ddec = pt * (m / s ** 2) / np.maximum(1 - pt, 1e-300) + np.where(yi == 2, a * sn, -a * sp)
        g = np.where(yi == 1, dtie, ddec)
        G = np.zeros((M_, J)); np.add.at(G, p, g[:, None] * Ai)
        return -ll.sum() + 0.5 * ridge * (Z * Z).sum(), (-G + ridge * Z).ravel()
    res = minimize(f, Z0.ravel(), jac=True, method="L-BFGS-B", options=dict(maxiter=500))
    return res.x.reshape(M_, J)

out = {}
for nm, atoms, Ai_idx in (("types", T, d["utype"]), ("kmeans", C, assign)):
    Ai = atoms[Ai_idx][u]
    # start: least-squares map of the fitted Z (Zf) into the atoms' coordinates is implicit for kmeans (same coords); for true types use Zf G
    Z = Zf @ P["G"] if nm == "types" else Zf.copy()
    th, _ = fit_ordinal((Ai * Z[p]).sum(1), y)
    for it in range(3):
        t0 = time.time()
        Z = fitZ(Ai, th, Z)
        m = (Ai * Z[p]).sum(1)
        th, nll = fit_ordinal(m, y)
        print(f"{nm} iter {it}: ordinal r={th[0]:.3f} s={th[1]:.3f} a={th[2]:.3f} train nll={nll:.4f} corr(margin,true)={np.corrcoef(m, mt)[0,1]:.4f} ({time.time()-t0:.0f}s)", flush=True)
    # validation nll of the refit (honest check)
    vu, vp, vy = d["validation"]
    vm = (atoms[Ai_idx][vu] * Z[vp]).sum(1)
    q = Ordinal(*th).q(vm); vyi = np.round(2 * vy).astype(int)
    print(f"{nm}: validation nll {-np.log(q[vyi, np.arange(len(vy))]).mean():.4f}", flush=True)
    if nm == "types":
        G2, *_ = np.linalg.lstsq(Z, d["Zt"], rcond=None)
        print("refit Z vs true Z: R^2 of Zt ~ Z G", 1 - ((Z @ G2 - d["Zt"]) ** 2).sum() / ((d["Zt"] - d["Zt"].mean(0)) ** 2).sum(), flush=True)
    M = Z @ atoms.T
    np.save(f"Zrefit_{nm}.npy", Z)
    for rule in ("infogain", "random"):
        r = run(d, M, Ordinal(*th), rule=rule)
        np.savez(f"res/refitZ_{nm}__ordinal__{rule}.npz", **r)
        for mode in r:
            mm, h = summ(r[mode])
            print(f"refitZ_{nm:9s} ordinal      {rule:8s} {mode:5s} " + " ".join(f"{a:.3f}+-{b:.3f}" for a, b in zip(mm, h)), flush=True)
    for ln, lk in (("logistic1", Logistic(1.0)),):
        r = run(d, M, lk, rule="infogain")
        np.savez(f"res/refitZ_{nm}__{ln}__infogain.npz", **r)
        mm, h = summ(r["pred"])
        print(f"refitZ_{nm:9s} {ln:12s} infogain pred  " + " ".join(f"{a:.3f}+-{b:.3f}" for a, b in zip(mm, h)), flush=True)
