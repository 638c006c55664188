#!/usr/bin/env python3
"""Cost model of one sweep of `pref fit` (docs/scaling.md), projected to large runs.

    python3 jobs/scaling_model.py [NAME=VALUE ...]      (or: bash jobs/scaling.sh model ...)

Parameters (defaults in brackets): USERS [1e8], COMPARISONS [1e6], ANSWERS [40] per user, of
which TRAIN [0.8] training and VAL [0.1] validation labels; FIT_RANK (J) [16]; NODES
["16 32 64 128 256"], one MPI rank per node with CORES [64] threads; NS_PER_LABEL [29]: one
core's time per label and half-step at this J (`pref fit` at 1 rank on this machine,
2026-11-27: 29 ns at J=16, 15 ns at J=8, from jobs/bench_fit.sh); EVAL [1.0]: the evaluation's
cost in half-steps; REDUCE_NS [32]: reduce's extra pass per label (the comparison half-step
with reduce minus with ship, per label, at 1 rank and J=8 here: 32 ns, jobs/scaling.sh strong); NET_GBS [10]: bytes a node receives per
second in an all-to-all; NODE_WRITE_GBS [2] and FS_GBS [50]: a node's and the file system's
write bandwidth; NEWTON [1].

Model, per rank (p = nodes):
  labels per rank      L_p = USERS * ANSWERS * TRAIN / p
  Z rows a rank reads  D_z = M (1 - exp(-USERS*ANSWERS*(TRAIN+VAL)/p / M)); remote: D_z (1 - 1/p)
  U rows an owner reads (ship)  D_u = USERS (1 - (1 - 1/p)^(ANSWERS*TRAIN)); remote: D_u (1 - 1/p)
  bytes, ship:   8 J (remote_z + remote_u)
  bytes, reduce: 8 (J remote_z + NEWTON remote_z ((J + J(J+1)/2) + J + 2 + 1) + J remote_z)
                 (Z rows; per Newton step the partial gradient and Hessian, the direction, one
                 round of two ladder values, the step; the evaluation's partial gradients)
  (both match the bytes_exchanged measured at 2 and 4 ranks on this machine exactly)
  compute:  (2 + EVAL) L_p NS_PER_LABEL / CORES  (+ NEWTON L_p REDUCE_NS / CORES for reduce)
  flops:    L_p (2 (J^2 + 4 J) + EVAL 4 J)
  sweep time (no overlap) = compute + bytes / NET_GBS
  checkpoint: 8 J (USERS + M) bytes, written at min(p NODE_WRITE_GBS, FS_GBS)
"""
import math
import sys

P = dict(USERS=1e8, COMPARISONS=1e6, ANSWERS=40, TRAIN=0.8, VAL=0.1, FIT_RANK=16,
         NODES="16 32 64 128 256", CORES=64, NS_PER_LABEL=29, EVAL=1.0, REDUCE_NS=32,
         NET_GBS=10, NODE_WRITE_GBS=2, FS_GBS=50, NEWTON=1)
for a in sys.argv[1:]:
    k, _, v = a.partition("=")
    if k not in P:
        sys.exit(f"unknown parameter {k} (see the docstring)")
    P[k] = v if k == "NODES" else float(v)

U, M, K, J = P["USERS"], P["COMPARISONS"], P["ANSWERS"], int(P["FIT_RANK"])
hw = J * (J + 1) // 2
labels = U * K * P["TRAIN"]
print(f"# {U:.3g} users, {M:.3g} comparisons, {K:g} answers per user ({labels:.3g} training "
      f"labels), J={J}; one rank per node, {P['CORES']:g} cores; {P['NS_PER_LABEL']:g} ns per "
      f"label and half-step per core; network {P['NET_GBS']:g} GB/s per node")
ck = 8 * J * (U + M)
print(f"# flops per sweep (all nodes): {labels * (2 * (J * J + 4 * J) + P['EVAL'] * 4 * J):.3g}; "
      f"checkpoint size {ck / 1e9:.3g} GB")
print()
print("| nodes | labels/rank | remote Z rows/rank | remote U rows/rank (ship) | compute s | "
      "ship GB/rank | ship s/sweep | reduce GB/rank | reduce s/sweep | checkpoint s | "
      "label memory GB/rank |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for p in [int(x) for x in str(P["NODES"]).split()]:
    lp = labels / p
    seen = U * K * (P["TRAIN"] + P["VAL"]) / p
    dz = M * (1 - math.exp(-seen / M))
    rz = dz * (1 - 1 / p)
    du = U * (1 - (1 - 1 / p) ** (K * P["TRAIN"]))
    ru = du * (1 - 1 / p)
    compute = (2 + P["EVAL"]) * lp * P["NS_PER_LABEL"] * 1e-9 / P["CORES"]
    b_ship = 8 * J * (rz + ru)
    b_red = 8 * (J * rz + P["NEWTON"] * rz * ((J + hw) + J + 2 + 1) + J * rz)
    net = P["NET_GBS"] * 1e9
    t_ship = compute + b_ship / net
    t_red = compute + P["NEWTON"] * lp * P["REDUCE_NS"] * 1e-9 / P["CORES"] + b_red / net
    t_ck = ck / (min(p * P["NODE_WRITE_GBS"], P["FS_GBS"]) * 1e9)
    mem = 16 * lp / 1e9  # 8 bytes per label per orientation
    print(f"| {p} | {lp:.3g} | {rz:.3g} | {ru:.3g} | {compute:.3g} | {b_ship / 1e9:.3g} | "
          f"{t_ship:.3g} | {b_red / 1e9:.3g} | {t_red:.3g} | {t_ck:.3g} | {mem:.3g} |")
