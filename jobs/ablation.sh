#!/usr/bin/env bash
# The paper's ablation (PReF, arXiv 2503.06358) on pref's synthetic Attributes population:
# held-out test ROC-AUC of `pref fit` with its default population prior (SVD and random
# initialization), the fixed ridge mu_u = mu_z = 3 (the default before the prior, SVD and random
# init), no L2 regularization (SVD and random init), and the shared Bradley-Terry baseline
# ("standard RLHF"), over several seeds; then a sweep of the ridge mu (mu_u = mu_z = mu, SVD
# init). Prints Markdown tables and the AUC of the
# true model (the generator's /truth factors) on the same test split, the ceiling any fit can
# approach.
#
#   bash jobs/ablation.sh [--users 3000] [--comparisons 600] [--answers 40] [--rank 8]
#                         [--seeds 10] [--vary fit|data] [--max-sweeps 150]
#                         [--labels deterministic] [--tie-band 0.2] [--label-noise 0.1]
#                         [--temperature 1] [--mus "0.3 1 3 10"] [--ranks 1]
#                         [--dir runs/ablation]
#
# --vary fit (default): one data file (generator seed 1), fit --seed 1..N (the seed of the
# randomized SVD's test matrix or of the random init). --vary data: generator seed s and fit
# seed s for s = 1..N (spread over populations as well as initializations).
# The default labels mimic GPT-4o judging: deterministic sign(u.z), a tie (0.5) when
# |u.z| < tie band, and 10% of the 0/1 labels flipped. Each fit stops at --tol 1e-6 or the
# sweep limit; the "at limit" column counts the runs that hit the limit (150 by default, as in
# the first published tables: the runs without regularization never converge).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

users=3000 comparisons=600 answers=40 rank=8 seeds=10 vary=fit max_sweeps=150
labels=deterministic tie_band=0.2 label_noise=0.1 temperature=1 mus="0.3 1 3 10" ranks=1
dir="$PREF_ROOT/runs/ablation"
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    --comparisons) comparisons="$2"; shift 2 ;;
    --answers) answers="$2"; shift 2 ;;
    --rank) rank="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --vary) vary="$2"; shift 2 ;;
    --max-sweeps) max_sweeps="$2"; shift 2 ;;
    --labels) labels="$2"; shift 2 ;;
    --tie-band) tie_band="$2"; shift 2 ;;
    --label-noise) label_noise="$2"; shift 2 ;;
    --temperature) temperature="$2"; shift 2 ;;
    --mus) mus="$2"; shift 2 ;;
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

# The true model's test AUC (ties excluded), from /truth: margins u_i . z_p.
ceiling() {
  /usr/bin/python3 - "$@" <<'EOF'
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
        ties = int((y == 0.5).sum())
print("%.4f (%s; test labels %d, of which %d ties)" % (np.mean(vals),
      "mean over %d files, min %.4f, max %.4f" % (len(vals), min(vals), max(vals)) if len(vals) > 1 else "one file",
      len(y), ties))
EOF
}

results="$dir/results-$vary.tsv"
: >"$results"
# run VARIANT SEED DATA fit-args...: one fit and its evaluation, appended to $results.
run() {
  local variant="$1" seed="$2" data="$3"
  shift 3
  local tag
  tag="$(printf '%s' "$variant" | tr -c 'A-Za-z0-9.=' '_')-$vary-s$seed"
  local log="$dir/fit-$tag.log" metrics="$dir/fit-$tag.jsonl" model="$dir/model-$tag.h5"
  pref_mpirun "$ranks" "$PREF_BIN" fit --data "$data" --rank "$rank" --seed "$seed" \
    --max-sweeps "$max_sweeps" --tol 1e-6 --metrics "$metrics" --overwrite --out "$model" "$@" \
    >"$log" 2>&1 || { cat "$log" >&2; pref_die "fit failed: $variant seed $seed"; }
  local ev
  ev="$("$PREF_BIN" evaluate --model "$model" --data "$data" --split test --json)"
  python3 - "$variant" "$seed" "$metrics" "$ev" >>"$results" <<'EOF'
import json, sys
variant, seed, metrics, ev = sys.argv[1:5]
last = json.loads(open(metrics).read().splitlines()[-1])
e = json.loads(ev)
print("\t".join([variant, seed, "%.6f" % e["auc"], "%.6f" % e["user_auc_mean"],
                 str(last["sweep"]), "%.3g" % last["rel_change"]]))
EOF
  rm -f "$model"
}

# summary VARIANT...: the Markdown table of the given variants, in that order.
summary() {
  python3 - "$results" "$max_sweeps" "$@" <<'EOF'
import sys, statistics as st
path, limit, *variants = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
print("| variant | runs | mean test ROC-AUC | std | min | max | mean per-user AUC | mean sweeps | at limit (%s) |" % limit)
print("|---|---|---|---|---|---|---|---|---|")
for v in variants:
    r = [x for x in rows if x[0] == v]
    if not r: continue
    a = [float(x[2]) for x in r]; ua = [float(x[3]) for x in r]; sw = [int(x[4]) for x in r]
    print("| %s | %d | %.4f | %.4f | %.4f | %.4f | %.4f | %.1f | %d |" % (v, len(r), st.mean(a),
          st.stdev(a) if len(a) > 1 else 0.0, min(a), max(a), st.mean(ua), st.mean(sw),
          sum(s >= int(limit) for s in sw)))
EOF
}

# pref fit's default regularization, passed explicitly so the labels stay true if it changes.
mu_default=3
variants=("SVD init, mu=$mu_default (ridge)" "random init, mu=$mu_default (ridge)"
  "no regularization (mu=0), SVD init" "no regularization (mu=0), random init"
  "shared Bradley-Terry (standard RLHF)" "population prior, SVD init (default)"
  "population prior, random init")
datas=()
for s in $(seq 1 "$seeds"); do
  if [ "$vary" = fit ]; then d="$(data_file 1)"; else d="$(data_file "$s")"; fi
  datas+=("$d")
  pref_log "seed $s: ablation variants on $(basename "$d")"
  run "${variants[0]}" "$s" "$d" --mu-u "$mu_default" --mu-z "$mu_default"
  run "${variants[1]}" "$s" "$d" --init random --mu-u "$mu_default" --mu-z "$mu_default"
  run "${variants[2]}" "$s" "$d" --mu-u 0 --mu-z 0
  run "${variants[3]}" "$s" "$d" --init random --mu-u 0 --mu-z 0
  run "${variants[4]}" "$s" "$d" --model shared
  run "${variants[5]}" "$s" "$d" --prior population
  run "${variants[6]}" "$s" "$d" --prior population --init random
done
mu_variants=()
for mu in $mus; do
  mu_variants+=("SVD init, mu=$mu")
  for s in $(seq 1 "$seeds"); do
    if [ "$vary" = fit ]; then d="$(data_file 1)"; else d="$(data_file "$s")"; fi
    if [ "$mu" = "$mu_default" ]; then  # the same fit as the first variant: reuse it
      awk -F'\t' -v s="$s" -v v="SVD init, mu=$mu" -v d="${variants[0]}" 'BEGIN{OFS="\t"} $1 == d && $2 == s {$1 = v; print}' \
        "$results" >>"$results.tmp"
      continue
    fi
    pref_log "seed $s: SVD init, mu=$mu"
    run "SVD init, mu=$mu" "$s" "$d" --mu-u "$mu" --mu-z "$mu"
  done
done
[ -f "$results.tmp" ] && cat "$results.tmp" >>"$results" && rm -f "$results.tmp"

mapfile -t uniq_datas < <(printf '%s\n' "${datas[@]}" | sort -u)
cat <<EOF

pref fit ablation on the Attributes population: $users users, $comparisons comparisons, $answers
answers per user (80% train, 10% validation, 10% test), labels $labels, tie band $tie_band,
label noise $label_noise, temperature $temperature; J = $rank; $seeds seeds (--vary $vary);
tol 1e-6, at most $max_sweeps sweeps; $ranks MPI rank(s). Per-run rows: $results

True-model test ROC-AUC (ceiling): $(ceiling "${uniq_datas[@]}")

$(summary "${variants[@]}")

Regularization sweep (mu_u = mu_z = mu, SVD init):

$(summary "${mu_variants[@]}")

EOF
