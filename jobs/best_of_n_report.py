#!/usr/bin/env python3
"""The best-of-N table of jobs/best_of_n.sh (issue 14).

For each new user i and held-out prompt q: the personalized choice p (the user's best response
of q under the adapted weights and the fitted head, pref score --best-of-N) against the default
d (the shared model's best response of q), judged by the true model: the user prefers p with
probability sigmoid(u_i . (s_p - s_d) / T) (s: the responses' true attributes, T the
population's temperature; the same response is a tie, 1/2). A user's win rate is its mean over
the held-out prompts; the table gives the mean over users with a 95% interval (1.96 standard
errors over users), the paper's numbers, and the oracle (the user's true best response).
"""
import argparse
import csv
import json
import os

import h5py
import numpy as np

PAPER = {5: 0.68, 40: 0.81}


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--answers", default="1,2,5,10,20,40")
    a = ap.parse_args()
    with h5py.File(a.data, "r") as d:
        u = d["new_users/truth/user_weights"][:].astype(np.float64)
        s = d["truth/response_attributes"][:].astype(np.float64)
        prompt = d["responses/prompt"][:]
        g = d["generator"].attrs
        P, H = int(g["prompts"]), int(g["heldout_prompts"])
        T = float(g["temperature"])
    held = np.arange(P - H, P)
    with h5py.File(os.path.join(a.run_dir, "shared_best.h5"), "r") as f:
        default = f["best"][0, held]
    true_reward = u @ s.T  # users x responses
    oracle = np.empty((u.shape[0], H), dtype=np.int64)
    for k, q in enumerate(held):
        rs = np.flatnonzero(prompt == q)
        oracle[:, k] = rs[np.argmax(true_reward[:, rs], axis=1)]

    def win(choice):
        diff = np.take_along_axis(true_reward, choice, axis=1) - true_reward[:, default]
        per_user = sigmoid(diff / T).mean(axis=1)
        return per_user.mean(), 1.96 * per_user.std(ddof=1) / np.sqrt(per_user.size)

    rows = []
    o_mean, o_ci = win(oracle)
    for k in [int(x) for x in a.answers.split(",")]:
        with h5py.File(os.path.join(a.run_dir, f"best_{k}.h5"), "r") as f:
            choice = f["best"][:, held].astype(np.int64)
        m, ci = win(choice)
        rows.append({"answers": k, "win_rate": m, "ci95": ci, "paper": PAPER.get(k),
                     "oracle": o_mean, "oracle_ci95": o_ci,
                     "same_as_default": float(np.mean(choice == default[None, :]))})
    print(f"{u.shape[0]} new users x {H} held-out prompts; the default is the shared model's best")
    print("| answers | win rate (95% interval) | paper | oracle | same choice as default |")
    print("|---|---|---|---|---|")
    for r in rows:
        paper = f"{100 * r['paper']:.0f}%" if r["paper"] else ""
        print(f"| {r['answers']} | {100 * r['win_rate']:.1f}% +- {100 * r['ci95']:.1f} | {paper} | "
              f"{100 * r['oracle']:.1f}% +- {100 * r['oracle_ci95']:.1f} | "
              f"{100 * r['same_as_default']:.1f}% |")
    with open(os.path.join(a.run_dir, "best_of_n.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(a.run_dir, "best_of_n.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
