#!/usr/bin/env bash
# The adaptation experiment of issue 13 (docs/results.md, "New users"): on the quick start's
# Attributes population with held-out new users, the held-out ROC-AUC of each new user after
# 1, 2, 5, 10, 20, 40 answers for every question choice (random, active, bayes) and estimator
# (population prior MAP, the paper's MLE), the mixture prior, the discrete types, the tie-aware
# Gaussian rule and the default (--select auto with --model and --types; issue 24), beside the
# shared model (standard RLHF) and the oracles. Prints a table; writes adaptation.csv,
# adaptation.png and adaptation.json into the run directory. Optional scale run:
# PREF_ADAPT_SCALE=1 adds 10^6 new users x 40 questions from pools of 100 at 2 ranks by the
# default rule, bayes/MAP and active/MLE (timed). Usage:
#
#   bash jobs/adaptation.sh           # or sbatch jobs/adaptation.sh from the repository root
#
# Environment: PREF_RUN_DIR (default <repository>/runs/adaptation), PREF_NEW_USERS (2000),
# PREF_ADAPT_SCALE (0), PREF_GENERATE_EXTRA (more `pref generate` options, e.g. "--jitter 0.3"
# for users that are not discrete types; use another PREF_RUN_DIR), and those of jobs/setup.sh.
#SBATCH --job-name=pref-adaptation
#SBATCH --ntasks=2
#SBATCH --time=01:00:00
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

RUN_DIR="${PREF_RUN_DIR:-$PREF_ROOT/runs/adaptation}"
RANKS=2
NEW_USERS="${PREF_NEW_USERS:-2000}"
# The quick start's population (jobs/main.sh) with more new users, each with a pool of 200:
# the first 100 (in comparison-id order) can be asked, the last 100 are held out (the paper
# holds out the last 100 of its pool).
GENERATE_ARGS=(--model attributes --users 10000 --comparisons 2000 --answers-per-user 40
  --labels deterministic --tie-band 0.2 --label-noise 0.1 --new-users "$NEW_USERS"
  --new-user-answers 200 --seed 1)
# shellcheck disable=SC2206  # a list of words
GENERATE_ARGS+=(${PREF_GENERATE_EXTRA:-})
ADAPT_ARGS=(--answers 40 --test-answers 100 --budgets 1,2,5,10,20,40 --seed 1)

pref_ensure_packages python3-numpy python3-matplotlib
pref_build
mkdir -p "$RUN_DIR"
pref_log_environment "$RUN_DIR/environment.txt"
uptime >>"$RUN_DIR/environment.txt"
DATA="$RUN_DIR/data.h5" MODEL="$RUN_DIR/model.h5" SHARED="$RUN_DIR/shared.h5"

[ -f "$DATA" ] || pref_mpirun "$RANKS" "$PREF_BIN" generate "${GENERATE_ARGS[@]}" --out "$DATA"
[ -f "$MODEL" ] || pref_mpirun "$RANKS" "$PREF_BIN" fit --data "$DATA" --rank 7 --out "$MODEL"
[ -f "$SHARED" ] ||
  pref_mpirun "$RANKS" "$PREF_BIN" fit --data "$DATA" --model shared --rank 1 --out "$SHARED"

# Every rule with both Gaussian estimators, then the mixture prior (--components 64, the
# default) with random questions and with its own criterion (info).
for run in "random population" "random none" "active population" "active none" \
  "bayes population" "bayes none" "random mixture" "info mixture"; do
  read -r select prior <<<"$run"
  out="$RUN_DIR/adapted_${select}_${prior}.h5"
  pref_log "adapt: --select $select --prior $prior"
  pref_mpirun "$RANKS" "$PREF_BIN" adapt --model "$MODEL" --data "$DATA" --out "$out" \
    --select "$select" --prior "$prior" "${ADAPT_ARGS[@]}" --overwrite >/dev/null
done
# Discrete types (issue 13, docs/design.md "Discrete types"): pref types (K = 128 atoms, 3 hard-EM
# rounds) and the exact posterior over its atoms with information-gain and random questions.
TYPES="$RUN_DIR/types.h5"
[ -f "$TYPES" ] || pref_mpirun "$RANKS" "$PREF_BIN" types --model "$MODEL" --data "$DATA" --out "$TYPES"
for select in info random; do
  pref_log "adapt: --types --select $select"
  pref_mpirun "$RANKS" "$PREF_BIN" adapt --types "$TYPES" --data "$DATA" \
    --out "$RUN_DIR/adapted_${select}_types.h5" --select "$select" "${ADAPT_ARGS[@]}" --overwrite >/dev/null
done
# The tie-aware Gaussian rule, and the default: --select auto weighs bayes/MAP, its tie-aware
# variant and info/types on the training users (docs/design.md "Choosing the rule").
pref_log "adapt: --select bayes --likelihood ordinal"
pref_mpirun "$RANKS" "$PREF_BIN" adapt --model "$MODEL" --data "$DATA" \
  --out "$RUN_DIR/adapted_bayes_ordinal.h5" --select bayes --likelihood ordinal "${ADAPT_ARGS[@]}" \
  --overwrite >/dev/null
pref_log "adapt: default (--select auto) with --model and --types"
pref_mpirun "$RANKS" "$PREF_BIN" adapt --model "$MODEL" --types "$TYPES" --data "$DATA" \
  --out "$RUN_DIR/adapted_auto_auto.h5" "${ADAPT_ARGS[@]}" --overwrite >/dev/null
/usr/bin/python3 "$PREF_ROOT/jobs/adaptation_report.py" --run-dir "$RUN_DIR" --data "$DATA" \
  --model "$MODEL" --shared "$SHARED" --test-answers 100

if [ "${PREF_ADAPT_SCALE:-0}" = 1 ]; then
  BIG="$RUN_DIR/scale_data.h5"
  [ -f "$BIG" ] || pref_mpirun "$RANKS" "$PREF_BIN" generate --model attributes --users 10000 \
    --comparisons 2000 --answers-per-user 40 --labels deterministic --tie-band 0.2 \
    --label-noise 0.1 --new-users 1e6 --new-user-answers 100 --seed 1 --out "$BIG"
  uptime | tee "$RUN_DIR/scale.txt"
  for run in "auto auto" "bayes population" "active none"; do
    read -r select prior <<<"$run"
    rule=(--select "$select" --prior "$prior")
    [ "$select" = auto ] && rule=(--types "$TYPES")  # the default, with the types file
    start=$(date +%s%N)
    pref_mpirun "$RANKS" "$PREF_BIN" adapt --model "$MODEL" --data "$BIG" \
      --out "$RUN_DIR/scale_adapted.h5" --answers 40 "${rule[@]}" \
      --overwrite 2>&1 | tee -a "$RUN_DIR/scale.txt"
    echo "$select/$prior end to end (mpirun included): $(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}') s" |
      tee -a "$RUN_DIR/scale.txt"
    uptime | tee -a "$RUN_DIR/scale.txt"
  done
fi
