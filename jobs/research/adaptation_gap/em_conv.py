"""Conv likelihood (tie band + flips + margin noise, ML on training or validation labels) with the EM model (em.npz)."""
from common import *
d = load(); e = np.load("em.npz"); Z, C, assign = e["Z"], e["C"], e["assign"]
M = Z @ C.T
for split in ("labels", "validation"):
    u, p, y = d[split]
    th, nll = fit_conv((C[assign][u] * Z[p]).sum(1), y)
    print(f"EM {split}: conv b={th[0]:.3f} f={th[1]:.3f} sigma={th[2]:.3f} nll={nll:.4f}", flush=True)
    for rule in ("infogain", "random"):
        r = run(d, M, Conv(*th), rule=rule)
        np.savez(f"res/EM_kmeans__conv_{split}__{rule}.npz", **r)
        for mode in r:
            mm, h = summ(r[mode])
            print(f"EM_kmeans        conv_{split:11s} {rule:8s} {mode:5s} " + " ".join(f"{a:.3f}+-{b:.3f}" for a, b in zip(mm, h)), flush=True)
