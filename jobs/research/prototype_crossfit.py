# A numpy prototype, not the solver (issue 12, 2026-11-29): pref's MAP-EM under the population
# prior (one Newton step per user row, the M-step with each user's Laplace covariance C_i, two
# Newton steps per comparison row, SVD start, mu_u = mu_z = 3), and the same with the comparison
# half-step cross-fitted: each label's partner is its user without that label, one Newton step
# away, u_i + C_i z_p (sigma(u_i . z_p) - y). It prints test AUC / log-loss every 5 sweeps.
#
#   python3 jobs/research/prototype_crossfit.py DATA.h5 map|crossfit SWEEPS
#
# On the 10^5-user lowrank file of docs/results.md it takes about 30 s per sweep (2 shared cores).
# Needs python3-numpy, python3-h5py and python3-scipy (Debian packages).
import sys, time
import numpy as np
import h5py
import scipy.sparse as sp
from scipy.sparse.linalg import svds

path = sys.argv[1]
mode = sys.argv[2]  # map | crossfit
sweeps = int(sys.argv[3])
J = 8
mu_z = 3.0
mu_u = 3.0
f = h5py.File(path)
n, M = int(f.attrs["users"]), int(f.attrs["comparisons"])
tu = f["labels/user"][:].astype(np.int64)
tc = f["labels/comparison"][:].astype(np.int64)
ty = f["labels/value"][:].astype(np.float64) / 200
keep = (ty == 0) | (ty == 1)
tu, tc, ty = tu[keep], tc[keep], ty[keep]
vu = f["test/user"][:].astype(np.int64)
vc = f["test/comparison"][:].astype(np.int64)
vy = f["test/value"][:].astype(np.float64) / 200
L = len(ty)


def sig(m):
    return 0.5 * (1 + np.tanh(0.5 * m))


def auc(score, y):
    o = np.argsort(score, kind="mergesort")
    r = np.empty(len(score))
    r[o] = np.arange(1, len(score) + 1)
    pos = y == 1
    npos, nneg = pos.sum(), (~pos).sum()
    return (r[pos].sum() - npos * (npos + 1) / 2) / (npos * nneg)


def logloss(m, y):
    return np.mean(np.logaddexp(0, m) - y * m)


# SVD init of the +-1 matrix, RMS margin 1.
A = sp.csr_matrix((2 * ty - 1, (tu, tc)), shape=(n, M))
Us, s, Vt = svds(A, k=J)
U = Us * np.sqrt(s)
Z = Vt.T * np.sqrt(s)
rms = np.sqrt(np.mean(np.sum(U[tu] * Z[tc], 1) ** 2))
U /= np.sqrt(rms)
Z /= np.sqrt(rms)
m = np.zeros(J)
Sigma = np.eye(J) / mu_u
iu = np.triu_indices(J)


def grad_hess(rows, nrows, X, w_rows, y, extra=None):
    """Per-row gradient and Hessian of sum BCE(x_k . w_row) over labels with partner X[k]."""
    mk = np.sum(X * w_rows, 1)
    p = sig(mk)
    r = p - y
    s = p * (1 - p)
    g = np.zeros((nrows, J))
    for a in range(J):
        g[:, a] = np.bincount(rows, r * X[:, a], minlength=nrows)
    H = np.zeros((nrows, J, J))
    for a, b in zip(*iu):
        v = np.bincount(rows, s * X[:, a] * X[:, b], minlength=nrows)
        H[:, a, b] = v
        H[:, b, a] = v
    c = np.bincount(rows, s, minlength=nrows)
    return g, H, c, mk


def evaluate(tag, sw):
    mt = np.sum(U[vu] * Z[vc], 1)
    mtr = np.sum(U[tu] * Z[tc], 1)
    print(f"{tag} sweep {sw}: test AUC {auc(mt, vy):.4f} logloss {logloss(mt, vy):.4f} "
          f"train logloss {logloss(mtr, ty):.4f} prior tr {np.trace(Sigma):.4f}", flush=True)


t0 = time.time()
for sw in range(1, sweeps + 1):
    # Users: one Newton step under the prior, then the M-step with C_i.
    P = np.linalg.inv(Sigma)
    g, H, c, _ = grad_hess(tu, n, Z[tc], U[tu], ty)
    g += (U - m) @ P
    H += P
    U = U - np.linalg.solve(H, g[:, :, None])[:, :, 0]
    # Hessian at the new point for C_i.
    _, H, _, _ = grad_hess(tu, n, Z[tc], U[tu], ty)
    H += P
    C = np.linalg.inv(H)
    m = U.mean(0)
    D = U - m
    Sigma = (D.T @ D + C.sum(0)) / n
    Sigma = 0.5 * (Sigma + Sigma.T)
    # Comparisons: the partners are u_i, or u_i without label p (cross-fitted).
    if mode == "crossfit":
        X = np.empty((L, J))
        ch = 400000
        mk = np.sum(U[tu] * Z[tc], 1)
        r = sig(mk) - ty
        for k0 in range(0, L, ch):
            sl = slice(k0, k0 + ch)
            X[sl] = U[tu[sl]] + np.einsum("kab,kb->ka", C[tu[sl]], Z[tc[sl]]) * r[sl, None]
    else:
        X = U[tu]
    for step in range(2):
        g, H, c, _ = grad_hess(tc, M, X, Z[tc], ty)
        g += mu_z * Z
        H += mu_z * np.eye(J)
        Z = Z - np.linalg.solve(H, g[:, :, None])[:, :, 0]
    if sw % 5 == 0 or sw == 1:
        evaluate(mode, sw)
print(f"{mode}: {time.time() - t0:.0f} s", flush=True)
