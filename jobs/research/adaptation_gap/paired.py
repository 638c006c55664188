import numpy as np, h5py
from common import D
def load(n, mode="pred"): return np.load(f"res/{n}.npz")[mode]
pairs = [
 ("trueZ_types__exact__infogain", "trueZ_types__ordinal__infogain", "likelihood exact->ordinal (true Z, types)"),
 ("trueZ_types__exact__infogain", "trueZ_types__logistic1__infogain", "likelihood exact->logistic (true Z, types)"),
 ("trueZ_types__ordinal__infogain", "fitZ_types__ordinal__infogain", "Z true->fitted (types, ordinal)"),
 ("trueZ_types__exact__infogain", "fitZ_types__exact__infogain", "Z true->fitted (types, exact)"),
 ("trueZ_types__logistic1__infogain", "fitZ_types__logistic1__infogain", "Z true->fitted (types, logistic)"),
 ("fitZ_types__ordinal__infogain", "fitZ_typemeans__ordinal__infogain", "atoms types->type means (fitted Z, ordinal)"),
 ("fitZ_typemeans__ordinal__infogain", "fitZ_kmeans__ordinal__infogain", "atoms type means->kmeans (fitted Z, ordinal)"),
 ("fitZ_kmeans__logistic1__infogain", "fitZ_kmeans__ordinal__infogain", "likelihood logistic->ordinal (fitted Z, kmeans)"),
 ("fitZ_kmeans__ordinal__infogain", "refitZ_kmeans__ordinal__infogain", "Z fitted->refit under ordinal (kmeans)"),
]
for a, b, lab in pairs:
    try:
        x, y = load(a), load(b)
    except FileNotFoundError:
        continue
    dd = y - x
    out = []
    for i in (2, 3):
        v = dd[:, i][~np.isnan(dd[:, i])]
        out.append(f"{v.mean():+.3f} [{v.mean()-1.96*v.std(ddof=1)/np.sqrt(len(v)):+.3f}, {v.mean()+1.96*v.std(ddof=1)/np.sqrt(len(v)):+.3f}]")
    print(f"| {lab} | {out[0]} | {out[1]} |")
pb = h5py.File(D + "adapted_bayes_population.h5", "r")["budget_auc"][:300]
for n in ("fitZ_kmeans__ordinal__infogain", "fitZ_kmeans__logistic1__infogain", "refitZ_kmeans__ordinal__infogain"):
    try: x = load(n)
    except FileNotFoundError: continue
    dd = x - pb; out = []
    for i in (2, 3):
        v = dd[:, i][~np.isnan(dd[:, i])]
        out.append(f"{v.mean():+.3f} [{v.mean()-1.96*v.std(ddof=1)/np.sqrt(len(v)):+.3f}, {v.mean()+1.96*v.std(ddof=1)/np.sqrt(len(v)):+.3f}]")
    print(f"| {n} - pref bayes/MAP | {out[0]} | {out[1]} |")
