"""Shared loading and the generic discrete-atom Bayes adaptation (after jobs/research/adaptation_ceiling.py)."""
import math, os, sys
import h5py
import numpy as np
from scipy.optimize import minimize

# The adaptation run of docs/results.md ("New users"): its data.h5, model.h5 and adapted_*.h5.
D = os.environ.get("PREF_ADAPT_RUN", "runs/adaptation-prior").rstrip("/") + "/"
BUDGETS = [1, 2, 5, 10, 20, 40]

# The held-out AUC of pref adapt and of the ceiling (ties excluded, mid-ranks): jobs/'s one copy.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from adaptation_ceiling import auc  # noqa: E402


def gen_types(A=7):
    """Types in the generator's order (docs/format.md): pair t//4 lexicographic, bit0 -> a negative, bit1 -> b negative."""
    pairs = [(i, j) for i in range(A) for j in range(i + 1, A)]
    T = np.zeros((84, A))
    for t in range(84):
        a, b = pairs[t // 4]
        T[t, a] = -1 if t & 1 else 1
        T[t, b] = -1 if t & 2 else 1
    return T


def load():
    d = {}
    with h5py.File(D + "data.h5", "r") as f:
        g = f["new_users"]
        user = g["user"][:].astype(np.int64); comp = g["comparison"][:].astype(np.int64)
        val = g["value"][:] / g["value"].attrs.get("denominator", 1)
        o = np.lexsort((comp, user)); d["nu_user"], d["nu_comp"], d["nu_val"] = user[o], comp[o], val[o]
        d["nu_type"] = f["new_users/truth/user_type"][:]
        d["nu_w"] = f["new_users/truth/user_weights"][:]
        d["Zt"] = f["truth/comparison_factors"][:].astype(float)
        d["Ut"] = f["truth/user_weights"][:].astype(float)
        d["utype"] = f["truth/user_type"][:].astype(int)
        for s in ("labels", "validation"):
            g = f[s]
            d[s] = (g["user"][:].astype(np.int64), g["comparison"][:].astype(np.int64),
                    g["value"][:] / g["value"].attrs.get("denominator", 1))
        d["tie"] = float(f["generator"].attrs["tie_band"]); d["noise"] = float(f["generator"].attrs["label_noise"])
    with h5py.File(D + "model.h5", "r") as m:
        d["Zf"] = m["comparison_factors"][:]; d["Uf"] = m["user_factors"][:]
    d["starts"] = np.searchsorted(d["nu_user"], np.arange(d["nu_user"].max() + 2))
    return d


def sig(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


class Exact:
    """Generator's label model in margin units times `scale`: tie if |m| < tie, else sign flipped w.p. noise; eps mixes in uniform."""
    def __init__(self, tie, noise, scale=1.0, eps=0.0):
        self.tie, self.noise, self.scale, self.eps = tie, noise, scale, eps
    def q(self, m):
        m = m * self.scale
        tied = np.abs(m) < self.tie
        p1 = np.where(tied, 0.0, np.where(m > 0, 1 - self.noise, self.noise))
        p0 = np.where(tied, 0.0, np.where(m > 0, self.noise, 1 - self.noise))
        q = np.stack([p0, tied.astype(float), p1])
        return (1 - self.eps) * q + self.eps / 3
    L = q


class Logistic:
    """pref's likelihood: sigmoid(s m) per label, a 0.5 label as BCE(0.5) = sqrt(sig sig) (unnormalized).
    Outcome probabilities for question choice: the three normalized."""
    def __init__(self, scale=1.0):
        self.scale = scale
    def L(self, m):
        p = sig(self.scale * m)
        return np.stack([1 - p, np.sqrt(p * (1 - p)), p])
    def q(self, m):
        l = self.L(m)
        return l / l.sum(0)


class Ordinal:
    """P(tie|m) = r exp(-m^2 / (2 s^2)); P(first | not tie) = sigmoid(a m)."""
    def __init__(self, r, s, a):
        self.r, self.s, self.a = r, s, a
    def q(self, m):
        pt = self.r * np.exp(-m * m / (2 * self.s ** 2))
        p = sig(self.a * m)
        return np.stack([(1 - pt) * (1 - p), pt, (1 - pt) * p])
    L = q


def fit_ordinal(m, y):
    yi = np.round(2 * y).astype(int)
    def nll(th):
        r, s, a = sig(th[0]), np.exp(th[1]), np.exp(th[2])
        q = Ordinal(r, s, a).q(m)
        return -np.log(np.maximum(q[yi, np.arange(len(m))], 1e-300)).mean()
    res = minimize(nll, [0.0, np.log(np.std(m) / 3), 0.0], method="Nelder-Mead", options=dict(xatol=1e-5, fatol=1e-8, maxiter=4000))
    th = res.x
    return (sig(th[0]), np.exp(th[1]), np.exp(th[2])), res.fun


def fit_logistic_scale(m, y):
    def nll(ls):
        p = sig(np.exp(ls) * m)
        return -(y * np.log(np.maximum(p, 1e-300)) + (1 - y) * np.log(np.maximum(1 - p, 1e-300))).mean()
    res = minimize(lambda t: nll(t[0]), [0.0], method="Nelder-Mead")
    return float(np.exp(res.x[0])), res.fun


def ent_rows(P):
    """entropy of each row-distribution along the last axis (rows normalized here); P >= 0."""
    Z = P.sum(-1, keepdims=True)
    Pn = np.where(Z > 0, P / np.where(Z > 0, Z, 1), 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(Pn > 0, Pn * np.log(Pn), 0).sum(-1)


def run(d, M, lik, rule="infogain", users=range(300), test_answers=100, answers=40, budgets=BUDGETS, prior=None):
    """M: comparisons x K margins of the K atoms. Returns dict predict-mode -> users x budgets AUC."""
    K = M.shape[1]
    prior = np.full(K, 1.0 / K) if prior is None else prior
    modes = ("pred", "mean", "map")
    res = {k: np.full((len(users), len(budgets)), np.nan) for k in modes}
    comp, val, starts = d["nu_comp"], d["nu_val"], d["starts"]
    for ui, u in enumerate(users):
        c, y = comp[starts[u]:starts[u + 1]], val[starts[u]:starts[u + 1]]
        nA = len(c) - test_answers
        Ma, Mt, ya, yt = M[c[:nA]], M[c[nA:]], y[:nA], y[nA:]
        Qa, La = lik.q(Ma), lik.L(Ma)             # 3 x nA x K
        Qt = lik.q(Mt)
        yidx = np.round(2 * ya).astype(int)
        w = prior.copy()
        asked = np.zeros(nA, bool)
        rng = np.random.default_rng(u)
        for t in range(answers):
            if rule == "random":
                k = rng.choice(np.flatnonzero(~asked))
            else:
                cand = np.flatnonzero(~asked)
                post = La[:, cand, :] * w           # 3 x nc x K
                py = (Qa[:, cand, :] * w).sum(-1)   # 3 x nc
                H = ent_rows(post)
                e = (py * H).sum(0)
                k = cand[int(np.argmin(e))]
            asked[k] = True
            w2 = w * La[yidx[k], k]
            if w2.sum() > 0:
                w = w2 / w2.sum()
            if t + 1 in budgets:
                b = budgets.index(t + 1)
                p1, p0 = Qt[2] @ w, Qt[0] @ w
                res["pred"][ui, b] = auc(p1 / np.maximum(p1 + p0, 1e-300), yt)
                res["mean"][ui, b] = auc(Mt @ w, yt)
                res["map"][ui, b] = auc(Mt[:, int(np.argmax(w))], yt)
    return res


def summ(r):
    m = np.nanmean(r, 0)
    se = np.nanstd(r, 0, ddof=1) / np.sqrt(np.sum(~np.isnan(r), 0))
    return m, 1.96 * se


def kmeans(X, k, seed=0, restarts=3, iters=100):
    best = None
    for rs in range(restarts):
        rng = np.random.default_rng(seed + rs)
        C = X[rng.integers(len(X))][None]
        for _ in range(1, k):   # k-means++
            d2 = ((X[:, None, :] - C[None]) ** 2).sum(-1).min(1)
            C = np.vstack([C, X[rng.choice(len(X), p=d2 / d2.sum())]])
        for _ in range(iters):
            d2 = (X * X).sum(1)[:, None] - 2 * X @ C.T + (C * C).sum(1)[None]
            a = d2.argmin(1)
            Cn = np.array([X[a == j].mean(0) if np.any(a == j) else C[j] for j in range(k)])
            if np.allclose(Cn, C):
                break
            C = Cn
        inertia = d2[np.arange(len(X)), a].sum()
        if best is None or inertia < best[0]:
            best = (inertia, C, a)
    return best[1], best[2]


from scipy.special import ndtr


class Conv:
    """Generator-shaped ordinal model with Gaussian margin noise: true margin ~ N(m, sigma^2), tie if |.| < b,
    else its sign flipped w.p. f. Parameters (b, f, sigma) fitted by ML: learnable without knowing the generator."""
    def __init__(self, b, f, s):
        self.b, self.f, self.s = b, f, s
    def q(self, m):
        pos = ndtr((m - self.b) / self.s); neg = ndtr((-m - self.b) / self.s)
        tie = np.clip(1 - pos - neg, 0, 1)
        return np.stack([self.f * pos + (1 - self.f) * neg, tie, (1 - self.f) * pos + self.f * neg]) * (1 - 1e-6) + 1e-6 / 3
    L = q


def fit_conv(m, y):
    yi = np.round(2 * y).astype(int)
    def nll(th):
        q = Conv(np.exp(th[0]), sig(th[1]), np.exp(th[2])).q(m)
        return -np.log(q[yi, np.arange(len(m))]).mean()
    res = minimize(nll, [np.log(0.2), -2.0, np.log(0.3)], method="Nelder-Mead", options=dict(xatol=1e-5, fatol=1e-9, maxiter=4000))
    th = res.x
    return (np.exp(th[0]), sig(th[1]), np.exp(th[2])), res.fun
