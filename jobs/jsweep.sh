#!/usr/bin/env bash
# Test ROC-AUC of `pref fit` (SVD init) against the number of factors J on pref's synthetic
# Attributes population, beside the paper's curve (PReF, arXiv 2503.06358: 0.63 at J=1,
# 0.83 at J=4, a plateau of 0.85-0.87 from J=6). pref's Attributes analogue has true rank 7.
# Prints a Markdown table and the true model's test AUC (the ceiling).
#
#   bash jobs/jsweep.sh [--js "1 2 3 4 5 6 7 8 9 10 11 12"] [--seeds "1 2 3"] [--vary fit|data]
#                       [--mu 1] [--users 3000] [--comparisons 600] [--answers 40]
#                       [--labels deterministic] [--tie-band 0.2] [--label-noise 0.1]
#                       [--temperature 1] [--max-sweeps 150] [--ranks 1] [--dir runs/jsweep]
#
# --vary fit (default): one data file (generator seed 1) and fit --seed from --seeds;
# --vary data: generator seed = fit seed = each of --seeds. mu_u = mu_z = --mu. Same data
# options and sweep limit as jobs/ablation.sh (see there for why the limit is 150).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

js="$(seq -s ' ' 1 12)" seeds="1 2 3" vary=fit mu=1
users=3000 comparisons=600 answers=40 max_sweeps=150 ranks=1
labels=deterministic tie_band=0.2 label_noise=0.1 temperature=1
dir="$PREF_ROOT/runs/jsweep"
while [ $# -gt 0 ]; do
  case "$1" in
    --js) js="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --vary) vary="$2"; shift 2 ;;
    --mu) mu="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --comparisons) comparisons="$2"; shift 2 ;;
    --answers) answers="$2"; shift 2 ;;
    --labels) labels="$2"; shift 2 ;;
    --tie-band) tie_band="$2"; shift 2 ;;
    --label-noise) label_noise="$2"; shift 2 ;;
    --temperature) temperature="$2"; shift 2 ;;
    --max-sweeps) max_sweeps="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) pref_die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$vary" in fit | data) ;; *) pref_die "--vary must be fit or data" ;; esac

pref_ensure_packages
pref_build
mkdir -p "$dir"
pref_log_environment "$dir/environment.txt"
gen_args=(--model attributes --users "$users" --comparisons "$comparisons"
  --answers-per-user "$answers" --labels "$labels" --tie-band "$tie_band"
  --label-noise "$label_noise" --temperature "$temperature")

data_file() { pref_data_file "$dir" "$1" "${gen_args[@]}"; }

results="$dir/results-mu$mu-$vary.tsv"
: >"$results"
datas=()
for J in $js; do
  for s in $seeds; do
    if [ "$vary" = fit ]; then d="$(data_file 1)"; else d="$(data_file "$s")"; fi
    datas+=("$d")
    log="$dir/fit-J$J-s$s.log" metrics="$dir/fit-J$J-s$s.jsonl" model="$dir/model-J$J-s$s.h5"
    pref_log "J=$J seed $s"
    pref_mpirun "$ranks" "$PREF_BIN" fit --data "$d" --rank "$J" --seed "$s" --mu-u "$mu" \
      --mu-z "$mu" --max-sweeps "$max_sweeps" --tol 1e-6 --metrics "$metrics" --overwrite \
      --out "$model" >"$log" 2>&1 || { cat "$log" >&2; pref_die "fit failed: J=$J seed $s"; }
    ev="$("$PREF_BIN" evaluate --model "$model" --data "$d" --split test --json)"
    python3 - "$J" "$s" "$metrics" "$ev" >>"$results" <<'EOF'
import json, sys
J, seed, metrics, ev = sys.argv[1:5]
last = json.loads(open(metrics).read().splitlines()[-1])
e = json.loads(ev)
print("\t".join([J, seed, "%.6f" % e["auc"], "%.6f" % e["user_auc_mean"], str(last["sweep"])]))
EOF
    rm -f "$model"
  done
done

mapfile -t uniq_datas < <(printf '%s\n' "${datas[@]}" | sort -u)
ceiling="$(/usr/bin/python3 - "${uniq_datas[@]}" <<'EOF'
import sys, h5py, numpy as np
def auc(s, y):
    keep = y != 0.5
    s, y = s[keep], y[keep]
    order = np.argsort(s, kind="mergesort")
    _, inv, cnt = np.unique(s[order], return_inverse=True, return_counts=True)
    ranks = np.empty(len(s)); ranks[order] = (np.cumsum(cnt) - (cnt - 1) / 2.0)[inv]
    pos = y == 1; n1 = pos.sum(); n0 = len(y) - n1
    return (ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
vals = []
for f in sys.argv[1:]:
    with h5py.File(f, "r") as h:
        U = h["truth/user_weights"][...]; Z = h["truth/comparison_factors"][...]
        d = h["test/value"]; y = d[...] / float(d.attrs.get("denominator", 1))
        s = np.einsum("ij,ij->i", U[h["test/user"][...]], Z[h["test/comparison"][...]])
        vals.append(auc(s, y))
print("%.4f (%d file%s)" % (np.mean(vals), len(vals), "s" if len(vals) > 1 else ""))
EOF
)"

table="$(python3 - "$results" <<'PY'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
paper = {1: "0.63", 4: "0.83"}
print("| J | runs | mean test ROC-AUC | std | min | max | mean per-user AUC | mean sweeps | paper |")
print("|---|---|---|---|---|---|---|---|---|")
for J in sorted({int(r[0]) for r in rows}):
    r = [x for x in rows if int(x[0]) == J]
    a = [float(x[2]) for x in r]; ua = [float(x[3]) for x in r]; sw = [int(x[4]) for x in r]
    p = paper.get(J, "0.85-0.87 (plateau)" if J >= 6 else "-")
    print("| %d | %d | %.4f | %.4f | %.4f | %.4f | %.4f | %.1f | %s |" % (J, len(r), st.mean(a),
          st.stdev(a) if len(a) > 1 else 0.0, min(a), max(a), st.mean(ua), st.mean(sw), p))
PY
)"

cat <<EOF

pref fit test ROC-AUC vs J on the Attributes population (true rank 7): $users users,
$comparisons comparisons, $answers answers per user, labels $labels, tie band $tie_band, label
noise $label_noise, temperature $temperature; SVD init, mu_u = mu_z = $mu, tol 1e-6, at most
$max_sweeps sweeps; seeds $seeds (--vary $vary). Per-run rows: $results

True-model test ROC-AUC (ceiling): $ceiling

$table

EOF
