"""Polya-Gamma Gibbs sampler for Bayesian logistic matrix factorization under the TRUE
generative model of the data (u_i ~ N(0, I_J), z_p ~ N(0, I_J/J), T = 1, bernoulli labels).

usage: gibbs.py TAG START SWEEPS SEED [fixz]
  TAG    1e5 | 1e4
  START  planted (U, Z = truth) | random (U, Z drawn from the prior, independent of truth)
  fixz   keep Z = truth (known-comparisons posterior predictive; the Bayes ceiling as a
         posterior mean instead of a MAP plug-in)
Each sweep: omega | U, Z  (PG(1, u.z), K=20 terms + tail mean);  U | Z, omega;  Z | U, omega.
Posterior-mean prediction: mean of sigmoid(u.z) over sweeps in (burn, s]; and a
Rao-Blackwellized version: mean over sweeps of E[sigmoid(u_i.z_p) | Z, omega] (u_i's Gaussian
full conditional, Gauss-Hermite quadrature), which removes the per-user sampling noise. Cumulative sums
are saved every 10 sweeps to OUT.npz so any window can be evaluated afterwards.
"""
import sys, time, numpy as np
from common import *

tag, start, sweeps, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fixz = len(sys.argv) > 5 and sys.argv[5] == "fixz"
out = f"chain-{tag}-{start}{'-fixz' if fixz else ''}-s{seed}"
rng = np.random.default_rng(seed)
d = load(tag)
tr, te, va = d["labels"], d["test"], d["validation"]
Ut, Zt = d["U"], d["Z"]
N, J = Ut.shape
M = Zt.shape[0]
L = len(tr["y"]) // N
assert np.all(tr["user"] == np.repeat(np.arange(N), L))
y = tr["y"]
kappa = y - 0.5
uprec = np.eye(J)          # u ~ N(0, I)
zprec = J * np.eye(J)      # z ~ N(0, I/J)

# comparison-major padded layout
order = np.argsort(tr["comp"], kind="stable")
cnt = np.bincount(tr["comp"], minlength=M)
C = cnt.max()
starts = np.concatenate([[0], np.cumsum(cnt)[:-1]])
pos = np.arange(len(y)) - np.repeat(starts, cnt)
pidx = np.zeros((M, C), dtype=np.int64)
pmask = np.zeros((M, C))
pidx[tr["comp"][order], pos] = order
pmask[tr["comp"][order], pos] = 1.0
kap_p = kappa[pidx] * pmask
user_p = tr["user"][pidx]
kap_u = kappa.reshape(N, L)
comp_u = tr["comp"].reshape(N, L)


GH_X, GH_W = np.polynomial.hermite_e.hermegauss(24)
GH_W = GH_W / GH_W.sum()


def rb_predict(mu, Pinv, Z, g):
    """E[sigmoid(u_i . z_p) | Z, omega] with u_i ~ N(mu_i, Pinv_i): Gauss-Hermite, 24 nodes."""
    zz = Z[g["comp"]]
    m = np.einsum("nj,nj->n", mu[g["user"]], zz)
    v = np.einsum("nj,njk,nk->n", zz, Pinv[g["user"]], zz)
    return expit(m[:, None] + np.sqrt(v)[:, None] * GH_X[None, :]) @ GH_W


def gauss(P, b):
    """Draw x ~ N(P^-1 b, P^-1) for a batch of J x J precisions."""
    Lc = np.linalg.cholesky(P)
    w = np.linalg.solve(Lc, b[..., None])
    e = rng.standard_normal(w.shape)
    return np.linalg.solve(Lc.transpose(0, 2, 1), w + e)[..., 0]


def overlap(A, B):
    """Fraction of the variance of B explained by a linear map of A (rotation invariant)."""
    coef, *_ = np.linalg.lstsq(A, B, rcond=None)
    r = B - A @ coef
    return 1 - (r ** 2).sum() / (B ** 2).sum()


if start == "planted":
    U, Z = Ut.copy(), Zt.copy()
elif start == "random":
    U = rng.standard_normal((N, J))
    Z = rng.standard_normal((M, J)) / np.sqrt(J)
else:
    raise SystemExit("START must be planted or random")
if fixz:
    Z = Zt.copy()

S_te = np.zeros(len(te["y"]))
S_va = np.zeros(len(va["y"]))
R_te = np.zeros(len(te["y"]))   # Rao-Blackwellized (over u_i | Z, omega) predictive sums
R_va = np.zeros(len(va["y"]))
snaps = {}
rsnaps = {}
t0 = time.time()
print(f"{out}: N={N} M={M} J={J} L={L} labels={len(y)} max per comparison={C}", flush=True)
print("sweep  sec   train_ll | sample: test_auc test_ll | running mean over (s/2,s]: test_auc test_ll val_auc val_ll | R2(Zt~Z) R2(Ut~U) | Rao-Blackwellized running mean: test_auc test_ll val_auc val_ll", flush=True)
hist_te, hist_va = [np.zeros_like(S_te)], [np.zeros_like(S_va)]
for s in range(1, sweeps + 1):
    # omega | U, Z
    m = np.einsum("nj,nj->n", U[tr["user"]], Z[tr["comp"]])
    om = pg_draw(m, rng)
    # U | Z, omega
    Zl = Z[comp_u]                                     # (N, L, J)
    Ou = om.reshape(N, L)
    P = np.matmul((Zl * Ou[..., None]).transpose(0, 2, 1), Zl) + uprec
    b = np.einsum("nl,nlj->nj", kap_u, Zl)
    U = gauss(P, b)
    Pinv = np.linalg.inv(P)
    mu = np.einsum("njk,nk->nj", Pinv, b)
    rte = rb_predict(mu, Pinv, Z, te)
    rva = rb_predict(mu, Pinv, Z, va)
    R_te += rte
    R_va += rva
    # Z | U, omega
    if not fixz:
        Ul = U[user_p]                                 # (M, C, J)
        Op = om[pidx] * pmask
        P = np.matmul((Ul * Op[..., None]).transpose(0, 2, 1), Ul) + zprec
        b = np.einsum("pc,pcj->pj", kap_p, Ul)
        Z = gauss(P, b)
    pte = predict(U, Z, te)
    pva = predict(U, Z, va)
    S_te += pte
    S_va += pva
    if s % 10 == 0:
        snaps[s] = (S_te.copy(), S_va.copy())
        rsnaps[s] = (R_te.copy(), R_va.copy())
    if s % 5 == 0 or s <= 3:
        h = s // 2
        # running mean over sweeps (h, s]: needs cumulative sum at h -> use nearest stored snapshot <= h
        hs = max([k for k in snaps if k <= h], default=0)
        Ste0, Sva0 = snaps[hs] if hs else (0.0, 0.0)
        mte = (S_te - Ste0) / (s - hs)
        mva = (S_va - Sva0) / (s - hs)
        Rte0, Rva0 = rsnaps[hs] if hs else (0.0, 0.0)
        rmte = (R_te - Rte0) / (s - hs)
        rmva = (R_va - Rva0) / (s - hs)
        ptr = predict(U, Z, tr)
        print(f"{s:5d} {time.time()-t0:6.0f}  {logloss(y, ptr):.4f} | {auc(te['y'], pte):.4f} {logloss(te['y'], pte):.4f} | "
              f"({hs},{s}] {auc(te['y'], mte):.4f} {logloss(te['y'], mte):.4f} {auc(va['y'], mva):.4f} {logloss(va['y'], mva):.4f} | "
              f"{overlap(Z, Zt):.3f} {overlap(U, Ut):.3f} | RB ({hs},{s}] {auc(te['y'], rmte):.4f} {logloss(te['y'], rmte):.4f} "
              f"{auc(va['y'], rmva):.4f} {logloss(va['y'], rmva):.4f}", flush=True)
    if s % 50 == 0 or s == sweeps:
        np.savez(out + ".npz", sweeps=np.array(sorted(snaps)), te=np.array([snaps[k][0] for k in sorted(snaps)]),
                 va=np.array([snaps[k][1] for k in sorted(snaps)]), yte=te["y"], yva=va["y"],
                 rte=np.array([rsnaps[k][0] for k in sorted(rsnaps)]), rva=np.array([rsnaps[k][1] for k in sorted(rsnaps)]))
print(f"done {sweeps} sweeps in {time.time()-t0:.0f} s", flush=True)
