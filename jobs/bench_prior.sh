#!/usr/bin/env bash
# Benchmark (not a test): the population prior against the fixed ridge and against the ceilings,
# at several population sizes. For each size, a low-rank population (or the Attributes one) is
# generated once; then, on --ranks MPI ranks, every fit uses `pref fit`'s defaults otherwise:
#   prior    the default (--prior population), no tuning;
#   ridge    --prior ridge with its default strengths (the time reference of the default fit:
#            the summary prints prior's wall time over ridge's, measured in the same run);
#   ridge-muM  --prior ridge with --mu-u = --mu-z = M for each M of --mus (--mus "" for none);
#   bayes    the known-comparisons Bayes ceiling (`pref evaluate --reference bayes`): each user's
#            MAP estimate with the true comparison factors and the true population's mean and
#            covariance: what a perfect fit of Z and of the prior gives from the same answers;
#   known-users  the known-users ceiling (`pref evaluate --reference known-users`): Z estimated
#            (MAP per comparison) with the true users, then the users' MAP as in bayes with it:
#            about the best the labels can tell of Z, so a fit's gap to bayes beyond it is the
#            estimator's, not the data's;
#   truth    the true model (`pref evaluate --reference truth`).
# It prints one table (test ROC-AUC and log-loss of each, sweeps and seconds of the fits, the
# gap of the prior to the ceiling) and writes it as CSV.
#
#   bash jobs/bench_prior.sh [--users "1e4 1e5 1e6"] [--comparisons 1e4] [--answers 40]
#                            [--rank 8] [--model lowrank|attributes] [--mus "1 3 10 30"]
#                            [--ranks 2] [--dir runs/bench-prior] [--gen-args "..."]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

sizes="1e4 1e5 1e6" comparisons=1e4 answers=40 rank=8 model=lowrank mus="1 3 10 30" ranks=2
gen_args="" dir="$PREF_ROOT/runs/bench-prior"
while [ $# -gt 0 ]; do
  case "$1" in
    --users) sizes="$2"; shift 2 ;;
    --comparisons) comparisons="$2"; shift 2 ;;
    --answers) answers="$2"; shift 2 ;;
    --rank) rank="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --mus) mus="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --gen-args) gen_args="$2"; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) pref_die "unknown argument '$1' (see --help)" ;;
  esac
done

pref_ensure_packages time
pref_build
mkdir -p "$dir"
pref_log_environment "$dir/environment.txt"
csv="$dir/results.csv"
echo "users,fit,auc,logloss,sweeps,seconds" >"$csv"

# evaluate ARGS...: "auc logloss" of the test split.
evaluate() {
  pref_mpirun "$ranks" "$PREF_BIN" evaluate "$@" --json |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["auc"], j["logloss"])'
}
# fit_and_evaluate SIZE NAME DATA ARGS...: one fit with its wall time and sweeps, then its test
# metrics, as a CSV row.
fit_and_evaluate() {
  local size="$1" name="$2" data="$3"
  shift 3
  local model="$dir/model-$size-$name.h5" log="$dir/fit-$size-$name.log"
  local t0 t1
  t0=$(date +%s.%N)
  pref_mpirun "$ranks" "$PREF_BIN" fit --data "$data" --rank "$rank" "$@" --out "$model" \
    --overwrite 2>"$log" || pref_die "fit failed: see $log"
  t1=$(date +%s.%N)
  local sweeps
  sweeps=$(sed -n 's/.* after \([0-9]*\) sweeps.*/\1/p' "$log" | tail -n1)
  read -r auc ll < <(evaluate --model "$model" --data "$data")
  printf '%s,%s,%s,%s,%s,%.1f\n' "$size" "$name" "$auc" "$ll" "$sweeps" \
    "$(echo "$t1 - $t0" | bc -l)" >>"$csv"
  rm -f "$model"
}

for size in $sizes; do
  extra=()
  [ "$model" = lowrank ] && extra=(--rank "$rank")
  # shellcheck disable=SC2086  # gen_args is a list of words
  data="$(pref_data_file "$dir" 5 --model "$model" --users "$size" --comparisons "$comparisons" \
    --answers-per-user "$answers" "${extra[@]}" $gen_args)"
  pref_log "users $size: $data"
  for ref in truth bayes known-users; do
    read -r auc ll < <(evaluate --reference "$ref" --data "$data")
    printf '%s,%s,%s,%s,,\n' "$size" "$ref" "$auc" "$ll" >>"$csv"
  done
  fit_and_evaluate "$size" prior "$data"
  fit_and_evaluate "$size" ridge "$data" --prior ridge
  for mu in $mus; do
    fit_and_evaluate "$size" "ridge-mu$mu" "$data" --prior ridge --mu-u "$mu" --mu-z "$mu"
  done
done

python3 - "$csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sizes = []
for r in rows:
    if r["users"] not in sizes: sizes.append(r["users"])
print(f"{'users':>8} {'fit':>14} {'test AUC':>9} {'logloss':>8} {'sweeps':>6} {'seconds':>8}")
for s in sizes:
    rs = [r for r in rows if r["users"] == s]
    for r in rs:
        print(f"{s:>8} {r['fit']:>14} {float(r['auc']):9.4f} {float(r['logloss']):8.4f} "
              f"{r['sweeps']:>6} {r['seconds']:>8}")
    get = {r["fit"]: r for r in rs}
    ridges = [r for r in rs if r["fit"].startswith("ridge")]
    pr, rd = get.get("prior"), get.get("ridge")
    if pr and rd:
        print(f"{s:>8} default fit's wall time / ridge's: "
              f"{float(pr['seconds']) / float(rd['seconds']):.2f} "
              f"({pr['seconds']} s, {pr['sweeps']} sweeps / {rd['seconds']} s, {rd['sweeps']} sweeps)")
    best = max(ridges, key=lambda r: float(r["auc"])) if ridges else None
    best_ll = min(ridges, key=lambda r: float(r["logloss"])) if ridges else None
    p, b, k = get["prior"], get["bayes"], get["known-users"]
    print(f"{s:>8} prior - Bayes ceiling: AUC {float(p['auc']) - float(b['auc']):+.4f} "
          f"(known-users ceiling - Bayes {float(k['auc']) - float(b['auc']):+.4f}); "
          f"best ridge AUC {best['fit']} {float(best['auc']):.4f}, best ridge log-loss "
          f"{best_ll['fit']} {float(best_ll['logloss']):.4f}, prior's {float(p['logloss']):.4f}")
PY
pref_log "results: $csv"
