#!/usr/bin/env bash
# The best-of-N experiment of issue 14 (docs/results.md, "Best of N"): an Attributes population
# whose comparisons pair responses of a prompt, with response embeddings and held-out prompts
# whose responses no label mentions. A head (fit --items embeddings) and the shared model (one
# reward for everyone, --model shared --items embeddings) are fitted; held-out new users are
# adapted from K = 1, 2, 5, 10, 20, 40 answers (pref adapt, questions on the training prompts);
# on every held-out prompt each user's personalized choice among its N candidates (pref score
# --best-of-N) meets the shared model's choice, judged by the true model: the simulated user
# prefers it with the Bradley-Terry probability. Prints the win rate with a 95% interval per K,
# the paper's 68% (5 answers) and 81% (40) and the oracle (the user's true best); writes
# best_of_n.csv and best_of_n.json into the run directory. Usage:
#
#   bash jobs/best_of_n.sh           # or sbatch jobs/best_of_n.sh from the repository root
#
# Environment: PREF_RUN_DIR (default <repository>/runs/best_of_n), PREF_NEW_USERS (1000),
# PREF_EMBEDDING_NOISE (0.1), PREF_TEMPERATURE (1: the labels' and the judge's Bradley-Terry
# temperature), and those of jobs/setup.sh.
#SBATCH --job-name=pref-best-of-n
#SBATCH --ntasks=2
#SBATCH --time=01:00:00
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

RUN_DIR="${PREF_RUN_DIR:-$PREF_ROOT/runs/best_of_n}"
RANKS=2
NEW_USERS="${PREF_NEW_USERS:-1000}"
NOISE="${PREF_EMBEDDING_NOISE:-0.1}"
TEMPERATURE="${PREF_TEMPERATURE:-1}"
# 4000 comparisons of 8 responses (28 pairs) per prompt: 143 prompts; the last 43 are held out
# (about 1200 comparisons, only in the test split); new users' pools of 100 are on the others.
GENERATE_ARGS=(--model attributes --users 10000 --comparisons 4000 --answers-per-user 40
  --responses-per-prompt 8 --heldout-prompts 43 --embedding-dim 32 --embedding-noise "$NOISE"
  --new-users "$NEW_USERS" --new-user-answers 100 --temperature "$TEMPERATURE" --seed 1)

pref_ensure_packages python3-numpy
pref_build
mkdir -p "$RUN_DIR"
pref_log_environment "$RUN_DIR/environment.txt"
DATA="$RUN_DIR/data.h5" MODEL="$RUN_DIR/model.h5" SHARED="$RUN_DIR/shared.h5"

[ -f "$DATA" ] || pref_mpirun "$RANKS" "$PREF_BIN" generate "${GENERATE_ARGS[@]}" --out "$DATA"
[ -f "$MODEL" ] || pref_mpirun "$RANKS" "$PREF_BIN" fit --data "$DATA" --rank 7 \
  --items embeddings --out "$MODEL"
[ -f "$SHARED" ] || pref_mpirun "$RANKS" "$PREF_BIN" fit --data "$DATA" --model shared \
  --rank 1 --items embeddings --out "$SHARED"
pref_mpirun "$RANKS" "$PREF_BIN" score --model "$SHARED" --responses "$DATA" --users 0:1 \
  --best-of-N --out "$RUN_DIR/shared_best.h5" --overwrite
for k in 1 2 5 10 20 40; do
  pref_log "adapt and score: $k answers"
  pref_mpirun "$RANKS" "$PREF_BIN" adapt --model "$MODEL" --data "$DATA" --answers "$k" \
    --select active --prior population --out "$RUN_DIR/adapted_$k.h5" --overwrite
  pref_mpirun "$RANKS" "$PREF_BIN" score --model "$MODEL" --responses "$DATA" \
    --adapted "$RUN_DIR/adapted_$k.h5" --best-of-N --out "$RUN_DIR/best_$k.h5" --overwrite
done
for split in validation test; do
  pref_mpirun 1 "$PREF_BIN" evaluate --model "$MODEL" --data "$DATA" --split "$split" --json \
    >"$RUN_DIR/evaluate_$split.json"
done
/usr/bin/python3 "$PREF_ROOT/jobs/best_of_n_report.py" --run-dir "$RUN_DIR" --data "$DATA" \
  --answers 1,2,5,10,20,40
