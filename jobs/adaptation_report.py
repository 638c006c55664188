#!/usr/bin/python3
"""Collects the adaptation experiment (jobs/adaptation.sh): per budget, rule and estimator the
mean held-out ROC-AUC over new users with a 95% interval (normal approximation, mean +- 1.96
standard errors) and the share of users above 0.8; beside them the shared model (standard RLHF:
one Bradley-Terry score per comparison) and two oracles: the true weights with the true
comparison factors (the label noise's ceiling) and the true utilities projected onto the fitted
Z (least squares over all comparisons: the best any estimate with this Z can do). Writes
adaptation.csv, adaptation.json and adaptation.png into the run directory and prints a table.

The held-out part of a user's pool is the one `pref adapt --test-answers T` uses: the last T
entries of the pool in comparison-id order."""
import argparse, json, math, os
import h5py
import numpy as np

RULES = ["random", "active", "bayes"]
PRIORS = ["population", "none"]
# Runs with the mixture prior (--prior mixture): reported beside the Gaussian ones.
MIXTURE_RUNS = [("random", "mixture"), ("info", "mixture")]
# Runs of `pref adapt --types` (the discrete posterior over `pref types`' atoms): reported when
# their files exist.
TYPES_RUNS = [("info", "types"), ("random", "types")]
# Issue 24: the tie-aware Gaussian rule (--select bayes --likelihood ordinal) and the default
# (--select auto with --model and --types), reported when their files exist.
EXTRA_RUNS = [("bayes", "ordinal"), ("auto", "auto")]
EST = {"population": "MAP", "none": "MLE", "mixture": "mixture", "types": "types",
       "ordinal": "MAP, ties", "auto": "chosen"}
PAPER = {5: 0.80, 10: 0.83, 20: 0.845, 40: 0.88}
PAPER_RLHF = 0.645


def auc(scores, labels):
    keep = labels != 0.5
    s, y = scores[keep], labels[keep] > 0.5
    pos, neg = y.sum(), (~y).sum()
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    # average ranks of ties
    i = 0
    r = np.arange(1, len(s) + 1, dtype=float)
    while i < len(ss):
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        r[i:j + 1] = 0.5 * (i + 1 + j + 1)
        i = j + 1
    ranks[order] = r
    return (ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg)


def summary(values):
    v = np.asarray([x for x in values if not math.isnan(x)])
    if len(v) == 0:
        return dict(users=0, mean=None, lo=None, hi=None, above_0_8=None)
    se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
    m = float(v.mean())
    return dict(users=int(len(v)), mean=m, lo=m - 1.96 * se, hi=m + 1.96 * se,
                above_0_8=float((v > 0.8).mean()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--test-answers", type=int, default=100)
    a = ap.parse_args()

    rows = []  # (method, estimator, budget, summary)
    per_user = {}  # (rule, prior) -> N x B AUCs
    budgets = None
    runs = [(r, p) for r in RULES for p in PRIORS] + MIXTURE_RUNS
    types_runs = [rp for rp in TYPES_RUNS + EXTRA_RUNS
                  if os.path.exists(os.path.join(a.run_dir, f"adapted_{rp[0]}_{rp[1]}.h5"))]
    runs += types_runs
    for rule, prior in runs:
        if True:
            path = os.path.join(a.run_dir, f"adapted_{rule}_{prior}.h5")
            with h5py.File(path, "r") as f:
                budgets = [int(b) for b in f["budgets"][:]]
                aucs = f["budget_auc"][:]
            per_user[(rule, prior)] = aucs
            for j, b in enumerate(budgets):
                rows.append((rule, prior, b, summary(aucs[:, j])))

    # The new users' held-out comparisons, as adapt splits them.
    with h5py.File(a.data, "r") as f:
        g = f["new_users"]
        user = g["user"][:].astype(np.int64)
        comp = g["comparison"][:].astype(np.int64)
        val = g["value"][:] / g["value"].attrs.get("denominator", 1)
        n_users = int(g.attrs["users"])
        u_true = f["new_users/truth/user_weights"][:].astype(float)
        z_true = f["truth/comparison_factors"][:].astype(float)
    order = np.lexsort((comp, user))
    user, comp, val = user[order], comp[order], val[order]
    starts = np.searchsorted(user, np.arange(n_users + 1))
    with h5py.File(a.model, "r") as f:
        z_fit = f["comparison_factors"][:]
    with h5py.File(a.shared, "r") as f:
        z_shared = f["comparison_factors"][:, 0] * f["user_factors"][0, 0]
    # Fitted-space oracle: argmin_u |Z_fit u - Z_true u*|^2 over all comparisons, per user.
    proj = np.linalg.lstsq(z_fit, z_true @ u_true.T, rcond=None)[0].T
    shared, oracle_fit, oracle_true = [], [], []
    for i in range(n_users):
        c = comp[starts[i]:starts[i + 1]][-a.test_answers:]
        y = val[starts[i]:starts[i + 1]][-a.test_answers:]
        shared.append(auc(z_shared[c], y))
        oracle_fit.append(auc(z_fit[c] @ proj[i], y))
        oracle_true.append(auc(z_true[c] @ u_true[i], y))
    baselines = {"shared (standard RLHF)": summary(shared),
                 "oracle: true utilities projected on fitted Z": summary(oracle_fit),
                 "oracle: true weights and true Z": summary(oracle_true)}

    # Table
    lines = []
    head = f"{'method':<22}{'estimator':<12}" + "".join(f"{b:>16}" for b in budgets)
    lines.append("held-out ROC-AUC per new user: mean [95% interval] (share > 0.8)")
    lines.append(head)
    for rule, prior in runs:
        if True:
            cells = []
            for b in budgets:
                s = next(r[3] for r in rows if r[:3] == (rule, prior, b))
                cells.append(f"{s['mean']:.3f}+-{(s['hi'] - s['lo']) / 2:.3f}" if s["mean"] is not None else "n/a")
            lines.append(f"{rule:<22}{EST[prior]:<12}" + "".join(f"{c:>16}" for c in cells))
    for rule in RULES:
        cells = []
        for b in budgets:
            s = next(r[3] for r in rows if r[:3] == (rule, "population", b))
            cells.append(f"{s['above_0_8']:.2f}" if s["mean"] is not None else "n/a")
        lines.append(f"{'  share>0.8 ' + rule:<22}{'MAP':<12}" + "".join(f"{c:>16}" for c in cells))
    for rule, prior in MIXTURE_RUNS:
        cells = [f"{next(r[3] for r in rows if r[:3] == (rule, prior, b))['above_0_8']:.2f}" for b in budgets]
        lines.append(f"{'  share>0.8 ' + rule:<22}{EST[prior]:<12}" + "".join(f"{c:>16}" for c in cells))
    for rule, prior in types_runs:
        cells = [f"{next(r[3] for r in rows if r[:3] == (rule, prior, b))['above_0_8']:.2f}" for b in budgets]
        lines.append(f"{'  share>0.8 ' + rule:<22}{EST[prior]:<12}" + "".join(f"{c:>16}" for c in cells))
    for rule, prior in [("info", "mixture")] + types_runs:
        lines.append(f"{rule}/{prior} - bayes/MAP, paired over users: mean [95% interval]")
        d = per_user[(rule, prior)] - per_user[("bayes", "population")]
        lines.append(f"{'':<10}" + " ".join(
            f"{s['mean']:+.4f}[{s['lo']:+.4f},{s['hi']:+.4f}]" for s in (summary(d[:, j]) for j in range(len(budgets)))))
    lines.append(f"{'paper PReF (active)':<34}" + "".join(f"{PAPER.get(b, float('nan')):>16.3f}" if b in PAPER else f"{'':>16}" for b in budgets))
    for name, s in baselines.items():
        lines.append(f"{name:<48}{s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]  share>0.8 {s['above_0_8']:.2f}")
    lines.append(f"{'paper standard RLHF':<48}{PAPER_RLHF:.3f}")
    # Prior against MLE on the same users; for random and active the questions are the same
    # too (active chooses with the MLE under both estimators), so the difference is paired.
    lines.append("MAP - MLE, paired over users: mean [95% interval]")
    paired = {}
    for rule in RULES:
        d = per_user[(rule, "population")] - per_user[(rule, "none")]
        cells = []
        for j, b in enumerate(budgets):
            s = summary(d[:, j])
            paired[f"{rule}/{b}"] = s
            cells.append(f"{s['mean']:+.4f}[{s['lo']:+.4f},{s['hi']:+.4f}]")
        lines.append(f"{rule:<10}" + " ".join(cells))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(a.run_dir, "adaptation.txt"), "w") as f:
        f.write(text + "\n")

    with open(os.path.join(a.run_dir, "adaptation.csv"), "w") as f:
        f.write("method,estimator,answers,users,mean_auc,ci_low,ci_high,share_above_0.8\n")
        for rule, prior, b, s in rows:
            f.write(f"{rule},{EST[prior]},{b},{s['users']},{s['mean']},{s['lo']},{s['hi']},{s['above_0_8']}\n")
        for name, s in baselines.items():
            f.write(f"\"{name}\",,,{s['users']},{s['mean']},{s['lo']},{s['hi']},{s['above_0_8']}\n")
    with open(os.path.join(a.run_dir, "adaptation.json"), "w") as f:
        json.dump({"budgets": budgets,
                   "adapt": [dict(select=r, estimator=EST[p], answers=b, **s)
                             for r, p, b, s in rows],
                   "baselines": baselines, "map_minus_mle_paired": paired, "paper": {"pref": PAPER, "standard_rlhf": PAPER_RLHF},
                   "new_users": n_users, "test_answers": a.test_answers}, f, indent=1)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"random": "tab:gray", "active": "tab:blue", "bayes": "tab:green", "info": "tab:orange",
              "auto": "black"}
    for rule in RULES:
        for prior, style in (("population", "-"), ("none", "--")):
            m = [next(r[3] for r in rows if r[:3] == (rule, prior, b))["mean"] for b in budgets]
            ax.plot(budgets, m, style, marker="o", color=colors[rule],
                    label=f"{rule}, {'MAP (prior)' if prior == 'population' else 'MLE'}")
    for rule, prior in MIXTURE_RUNS:
        m = [next(r[3] for r in rows if r[:3] == (rule, prior, b))["mean"] for b in budgets]
        ax.plot(budgets, m, "-.", marker="^", color=colors[rule], label=f"{rule}, mixture prior")
    for rule, prior in types_runs:
        m = [next(r[3] for r in rows if r[:3] == (rule, prior, b))["mean"] for b in budgets]
        ax.plot(budgets, m, "-", lw=2, marker="D", color=colors[rule], label=f"{rule}, {EST[prior]}")
    ax.plot(sorted(PAPER), [PAPER[b] for b in sorted(PAPER)], "k:", marker="s", label="paper PReF")
    ax.axhline(baselines["shared (standard RLHF)"]["mean"], color="tab:red", lw=1, label="shared (RLHF)")
    ax.axhline(baselines["oracle: true utilities projected on fitted Z"]["mean"], color="tab:purple", lw=1,
               label="oracle (fitted Z)")
    ax.set_xscale("log")
    ax.set_xticks(budgets)
    ax.set_xticklabels([str(b) for b in budgets])
    ax.set_xlabel("answers")
    ax.set_ylabel("held-out ROC-AUC (mean over new users)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(a.run_dir, "adaptation.png"), dpi=120)


if __name__ == "__main__":
    main()
