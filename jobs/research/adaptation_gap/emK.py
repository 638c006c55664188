"""Hard-EM discrete-type factorization, learnable without the generator: start from the fitted model's Z and the
k-means centres of its users; alternate (a) assign each training user to the atom maximizing the ordinal likelihood of
its training labels, (b) refit the atoms given their members' labels and Z, (c) refit Z given the users' atoms,
(d) refit the ordinal parameters. Then adapt new users with these Z, atoms (prior = atom frequencies or uniform) and likelihood."""
from common import *
import time
d = load(); P = np.load("prep.npz")
import sys
KK = int(sys.argv[1])
Uf, Zf = d["Uf"], d["Zf"]
C, _ = kmeans(Uf, KK, seed=0, restarts=2)
u, p, y = d["labels"]; yi = np.round(2 * y).astype(int)
mt = (d["Ut"][u] * d["Zt"][p]).sum(1)
nU = Uf.shape[0]; M_ = Zf.shape[0]; K = C.shape[0]; J = 7

def loglik(m, th):
    q = Ordinal(*th).q(m)
    return np.log(np.maximum(q[yi, np.arange(len(m))] if m.ndim == 1 else np.take_along_axis(q, yi[None, :, None], 0)[0], 1e-300))

def fit_rows(X0, rows, V, th, ridge=1e-2):
    """maximize sum_l log q(y_l | X[rows_l] . V_l) - ridge/2 |X|^2 over X."""
    r, s, a = th
    n = X0.shape[0]
    def f(x):
        X = x.reshape(n, J)
        m = (X[rows] * V).sum(1)
        pt = r * np.exp(-m * m / (2 * s * s)); sp, sn = sig(a * m), sig(-a * m)
        ll = np.where(yi == 1, np.log(np.maximum(pt, 1e-300)),
             np.log(np.maximum(1 - pt, 1e-300)) + np.where(yi == 2, np.log(np.maximum(sp, 1e-300)), np.log(np.maximum(sn, 1e-300))))
        g = np.where(yi == 1, -m / s ** 2, pt * (m / s ** 2) / np.maximum(1 - pt, 1e-300) + np.where(yi == 2, a * sn, -a * sp))
        Gr = np.zeros((n, J)); np.add.at(Gr, rows, g[:, None] * V)
        return -ll.sum() + 0.5 * ridge * (X * X).sum(), (-Gr + ridge * X).ravel()
    return minimize(f, X0.ravel(), jac=True, method="L-BFGS-B", options=dict(maxiter=300)).x.reshape(n, J)

Z = Zf.copy()
d2 = (Uf * Uf).sum(1)[:, None] - 2 * Uf @ C.T + (C * C).sum(1)[None]
assign = d2.argmin(1)
th, _ = fit_ordinal((C[assign][u] * Z[p]).sum(1), y)
for it in range(3):
    t0 = time.time()
    # (a) assignment by likelihood: users x K log-likelihoods
    Mlab = Z[p] @ C.T                       # labels x K margins
    q = Ordinal(*th).q(Mlab)                # 3 x labels x K
    ll = np.log(np.maximum(np.take_along_axis(q, yi[None, :, None], 0)[0], 1e-300))
    LU = np.zeros((nU, K)); np.add.at(LU, u, ll)
    new = LU.argmax(1)
    changed = np.mean(new != assign); assign = new
    # (b) atoms
    C = fit_rows(C, assign[u], Z[p], th)
    # (c) Z
    Z = fit_rows(Z, p, C[assign][u], th)
    m = (C[assign][u] * Z[p]).sum(1)
    th, nll = fit_ordinal(m, y)
    pur = sum(np.bincount(d["utype"][assign == j]).max() for j in range(K) if np.any(assign == j)) / nU
    print(f"EM {it}: reassigned {changed:.3f}, used atoms {len(np.unique(assign))}, purity {pur:.3f}, ordinal r={th[0]:.3f} s={th[1]:.3f} a={th[2]:.3f} nll={nll:.4f}, corr(margin,true)={np.corrcoef(m, mt)[0,1]:.4f} ({time.time()-t0:.0f}s)", flush=True)
vu, vp, vy = d["validation"]; vyi = np.round(2 * vy).astype(int)
vm = (C[assign][vu] * Z[vp]).sum(1); thv, nllv = fit_ordinal(vm, vy)
print(f"validation: nll at train params {-np.log(Ordinal(*th).q(vm)[vyi, np.arange(len(vy))]).mean():.4f}; refit on validation r={thv[0]:.3f} s={thv[1]:.3f} a={thv[2]:.3f} nll={nllv:.4f}", flush=True)
np.savez(f"em{KK}.npz", Z=Z, C=C, assign=assign, th=np.array(th), thv=np.array(thv))
M = Z @ C.T
freq = np.bincount(assign, minlength=K) / nU
for lab, lk, prior in (("ordinal", Ordinal(*th), None), ("ordinal_freqprior", Ordinal(*th), freq)):
    for rule in ("infogain", "random"):
        if rule == "random" and lab != "ordinal":
            continue
        r = run(d, M, lk, rule=rule, prior=prior)
        np.savez(f"res/EM{KK}_kmeans__{lab}__{rule}.npz", **r)
        for mode in r:
            mm, h = summ(r[mode])
            print(f"EM{KK}_kmeans     {lab:16s} {rule:8s} {mode:5s} " + " ".join(f"{a:.3f}+-{b:.3f}" for a, b in zip(mm, h)), flush=True)
