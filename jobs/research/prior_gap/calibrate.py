"""The calibration scale of a fitted model, computed outside pref (numpy/scipy): the s that
minimizes the validation log-loss of sigmoid(s u.z), found by brentq on the derivative, and the
test log-loss at 1 and at s. The same minimization as solver/eval/calibration.cpp (which pref fit runs
after its sweeps); used for the 10^7 models of docs/results.md, written before the calibration.

usage: /usr/bin/python3 calibrate.py DATA.h5 MODEL.h5
"""
import sys

import h5py
import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, log_expit

D, M = sys.argv[1], sys.argv[2]
f = h5py.File(D, "r")
m = h5py.File(M, "r")
U = m["user_factors"][:]
Z = m["comparison_factors"][:]


def split(g):
    u = f[g + "/user"][:].astype(np.int64)
    p = f[g + "/comparison"][:].astype(np.int64)
    v = f[g + "/value"]
    y = v[:] / float(v.attrs.get("denominator", 1))
    return np.einsum("ij,ij->i", U[u], Z[p]), y


def ll(t, x, y):
    return -(y * log_expit(t * x) + (1 - y) * log_expit(-t * x)).mean()


vm, vy = split("validation")
s = brentq(lambda t: ((expit(t * vm) - vy) * vm).mean(), 1e-6, 100)
tm, ty = split("test")
print(f"s {s:.5f}  validation {ll(1, vm, vy):.4f} -> {ll(s, vm, vy):.4f}  "
      f"test {ll(1, tm, ty):.4f} -> {ll(s, tm, ty):.4f}")
