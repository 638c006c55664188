"""Shared pieces: data loading, metrics, Polya-Gamma sampler, Bayes-ceiling MAP.

Model (pref generator, lowrank, user_distribution gaussian, bernoulli labels, T = 1):
  u_i ~ N(0, I_J), z_p ~ N(0, I_J / J), P(y = 1) = sigmoid(u_i . z_p).
"""
import os

import numpy as np
import h5py
from scipy.stats import rankdata
from scipy.special import expit

# The files of `bash jobs/bench_prior.sh --users "1e4 1e5"` (docs/results.md), in the repository's
# runs/bench-prior unless PREF_PRIOR_GAP_DIR names another folder.
_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DATA = os.path.join(os.environ.get("PREF_PRIOR_GAP_DIR", os.path.join(_ROOT, "runs", "bench-prior")),
                    "data_model_lowrank_users_{}_comparisons_1e4_answers_per_user_40_rank_8-s5.h5")


def load(tag):
    f = h5py.File(DATA.format(tag), "r")
    d = {}
    for g in ("labels", "validation", "test"):
        d[g] = dict(user=f[g + "/user"][:].astype(np.int64),
                    comp=f[g + "/comparison"][:].astype(np.int64),
                    y=f[g + "/value"][:].astype(np.float64) / 200.0)
    d["U"] = f["truth/user_weights"][:].astype(np.float64)
    d["Z"] = f["truth/comparison_factors"][:].astype(np.float64)
    d["gen"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f["generator"].attrs.items()}
    f.close()
    return d


def auc(y, p):
    """Pooled ROC-AUC, ties by average rank (sklearn roc_auc_score for binary y)."""
    pos = y > 0.5
    n1 = pos.sum()
    n0 = len(y) - n1
    r = rankdata(p)
    return (r[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def logloss(y, p, eps=1e-15):
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def predict(U, Z, g):
    return expit(np.einsum("nj,nj->n", U[g["user"]], Z[g["comp"]]))


# ---------------------------------------------------------------- Polya-Gamma PG(1, c)
# PG(1, c) = 1/(2 pi^2) sum_{k>=1} g_k / ((k - 1/2)^2 + c^2 / (4 pi^2)),  g_k ~ Exp(1).
# Truncated at K terms; the tail k > K is replaced by its mean (exact E[PG(1,c)] minus
# the truncated sum's mean), so the draw has the exact mean; the missing tail variance is
# O(1/K^3) of the total and is reported by pg_check().

def pg_mean(c):
    c = np.abs(c)
    out = np.full_like(c, 0.25)
    m = c > 1e-6
    out[m] = np.tanh(c[m] / 2) / (2 * c[m])
    return out


def pg_var(c):
    # Var PG(1,c) = (sinh c - c) / (4 c^3 cosh^2(c/2)); -> 1/24 as c -> 0
    c = np.abs(c)
    out = np.full_like(c, 1.0 / 24)
    m = c > 1e-2
    cm = c[m]
    out[m] = (np.sinh(cm) - cm) / (4 * cm ** 3 * np.cosh(cm / 2) ** 2)
    s = ~m
    out[s] = 1.0 / 24 - c[s] ** 2 / 60.0  # series
    return out


def pg_draw(c, rng, K=20):
    d = (c / (2 * np.pi)) ** 2
    acc = np.zeros_like(c)
    tmean = np.zeros_like(c)
    for k in range(1, K + 1):
        den = 1.0 / ((k - 0.5) ** 2 + d)
        acc += rng.standard_exponential(c.shape[0]) * den
        tmean += den
    s = 1.0 / (2 * np.pi ** 2)
    return s * acc + (pg_mean(c) - s * tmean)


def pg_check(K=20, n=400000, seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for c in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0):
        x = pg_draw(np.full(n, c), rng, K)
        rows.append((c, x.mean(), pg_mean(np.array([c]))[0], x.std() / np.sqrt(n), x.var(), pg_var(np.array([c]))[0]))
    return rows


# ---------------------------------------------------------------- Bayes ceiling
def map_users(Zl, y, prior_prec, iters=30):
    """Per-user MAP of u with known comparison factors. Zl: (N, L, J), y: (N, L)."""
    N, L, J = Zl.shape
    u = np.zeros((N, J))
    for _ in range(iters):
        m = np.einsum("nlj,nj->nl", Zl, u)
        s = expit(m)
        g = np.einsum("nl,nlj->nj", y - s, Zl) - u @ prior_prec
        w = s * (1 - s)
        H = np.matmul((Zl * w[..., None]).transpose(0, 2, 1), Zl) + prior_prec
        step = np.linalg.solve(H, g[..., None])[..., 0]
        u += step
        if np.abs(step).max() < 1e-10:
            break
    return u
