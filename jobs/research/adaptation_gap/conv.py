"""Likelihood variants fitted on VALIDATION labels (honest for in-sample-fitted Z): ordinal, and Conv (tie band + flips + margin noise)."""
from common import *
import sys, time
d = load(); T = gen_types(); P = np.load("prep.npz")
Zt, Zf, Uf, G, Ubar, C = d["Zt"], d["Zf"], d["Uf"], P["G"], P["Ubar"], P["C"]
d2 = (Uf * Uf).sum(1)[:, None] - 2 * Uf @ C.T + (C * C).sum(1)[None]
assign = d2.argmin(1)
sets = {"trueZ_types": (Zt, T, d["utype"]), "fitZ_types": (Zf, (G @ T.T).T, d["utype"]),
        "fitZ_typemeans": (Zf, Ubar, d["utype"]), "fitZ_kmeans": (Zf, C, assign)}
import os
for extra in ("types", "kmeans"):
    if os.path.exists(f"Zrefit_{extra}.npy"):
        sets[f"refitZ_{extra}"] = (np.load(f"Zrefit_{extra}.npy"), T if extra == "types" else C, d["utype"] if extra == "types" else assign)
for nm in (sys.argv[1:] or list(sets)):
    Z, atoms, idx = sets[nm]
    M = Z @ atoms.T
    for split in ("labels", "validation"):
        u, p, y = d[split]
        m = (atoms[idx][u] * Z[p]).sum(1)
        thc, nllc = fit_conv(m, y)
        tho, nllo = fit_ordinal(m, y)
        print(f"{nm} {split}: conv b={thc[0]:.3f} f={thc[1]:.3f} sigma={thc[2]:.3f} nll={nllc:.4f}; ordinal r={tho[0]:.3f} s={tho[1]:.3f} a={tho[2]:.3f} nll={nllo:.4f}", flush=True)
        liks = {f"conv_{split}": Conv(*thc)}
        if split == "validation":
            liks["ordinal_val"] = Ordinal(*tho)
        for ln, lk in liks.items():
            for rule in (("infogain", "random") if ln == "conv_validation" else ("infogain",)):
                r = run(d, M, lk, rule=rule)
                np.savez(f"res/{nm}__{ln}__{rule}.npz", **r)
                for mode in r:
                    mm, h = summ(r[mode])
                    print(f"{nm:16s} {ln:16s} {rule:8s} {mode:5s} " + " ".join(f"{a:.3f}+-{b:.3f}" for a, b in zip(mm, h)), flush=True)
