"""EM (K=84) model's Z and atoms with pref's logistic likelihood (is the tie-aware likelihood still needed?)."""
from common import *
d = load(); e = np.load("em.npz"); M = e["Z"] @ e["C"].T
for ln, lk in (("logistic1", Logistic(1.0)),):
    r = run(d, M, lk, rule="infogain")
    np.savez(f"res/EM_kmeans__{ln}__infogain.npz", **r)
    for mode in r:
        mm, h = summ(r[mode])
        print(f"EM_kmeans {ln} infogain {mode} " + " ".join(f"{a:.3f}+-{b:.3f}" for a, b in zip(mm, h)), flush=True)
