#!/usr/bin/env bash
# Generalization of the embedding head to responses no label mentions (issue 14; docs/results.md,
# "Responses and embeddings"): one Attributes population with responses, the last prompts held
# out (their comparisons only in the test split), embeddings at several noise levels (the labels
# do not depend on the noise: the same seed gives the same labels). For each level, the head's
# (fit --items embeddings) AUC on the held-out prompts (test) and in sample (validation: labels
# held out, comparisons labelled by others), beside free comparisons (fit --items comparisons:
# nothing to say about held-out prompts; in sample) and the true model. Prints a table, writes
# generalization.json into the run directory. At the largest noise also the head with a free
# residual per response (fit --items embeddings --residual, its default --mu-residual): in
# sample the residuals can recover what the noisy embeddings lose; held-out responses have none
# (the head alone). Usage:
#
#   bash jobs/generalization.sh
#
# Environment: PREF_RUN_DIR (default <repository>/runs/generalization), PREF_NOISES
# ("0 0.1 0.3 1 3"), and those of jobs/setup.sh.
#SBATCH --job-name=pref-generalization
#SBATCH --ntasks=2
#SBATCH --time=01:00:00
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

RUN_DIR="${PREF_RUN_DIR:-$PREF_ROOT/runs/generalization}"
RANKS=2
read -r -a NOISES <<<"${PREF_NOISES:-0 0.1 0.3 1 3}"
# 2000 comparisons of 4 responses (6 pairs) per prompt: 334 prompts, the last 84 held out
# (about 500 comparisons, only in the test split).
GENERATE_ARGS=(--model attributes --users 5000 --comparisons 2000 --answers-per-user 40
  --responses-per-prompt 4 --heldout-prompts 84 --embedding-dim 32 --seed 1)

pref_build
mkdir -p "$RUN_DIR"
pref_log_environment "$RUN_DIR/environment.txt"
auc() { pref_mpirun 1 "$PREF_BIN" evaluate --data "$1" --split "$2" --json "${@:3}" |
  /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["auc"])'; }
rows=()
for noise in "${NOISES[@]}"; do
  data="$RUN_DIR/data_$noise.h5" model="$RUN_DIR/head_$noise.h5"
  [ -f "$data" ] || pref_mpirun "$RANKS" "$PREF_BIN" generate "${GENERATE_ARGS[@]}" \
    --embedding-noise "$noise" --out "$data"
  [ -f "$model" ] || pref_mpirun "$RANKS" "$PREF_BIN" fit --data "$data" --rank 7 \
    --items embeddings --out "$model"
  rows+=("$noise $(auc "$data" test --model "$model") $(auc "$data" validation --model "$model")")
done
noise="${NOISES[${#NOISES[@]} - 1]}"
data="$RUN_DIR/data_$noise.h5" model="$RUN_DIR/residual_$noise.h5"
[ -f "$model" ] || pref_mpirun "$RANKS" "$PREF_BIN" fit --data "$data" --rank 7 \
  --items embeddings --residual --out "$model"
residual_row="$noise $(auc "$data" test --model "$model") $(auc "$data" validation --model "$model")"
data="$RUN_DIR/data_${NOISES[0]}.h5" free="$RUN_DIR/comparisons.h5"
[ -f "$free" ] || pref_mpirun "$RANKS" "$PREF_BIN" fit --data "$data" --rank 7 --out "$free"
free_test=$(auc "$data" test --model "$free") free_val=$(auc "$data" validation --model "$free")
truth_test=$(auc "$data" test --reference truth) truth_val=$(auc "$data" validation --reference truth)
printf '%s\n' "${rows[@]}" | /usr/bin/python3 -c '
import json, sys
ft, fv, tt, tv, out = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
res = dict(zip(["noise", "head_test", "head_validation"], map(float, sys.argv[6].split())))
rows = [dict(zip(["noise", "head_test", "head_validation"], map(float, l.split()))) for l in sys.stdin if l.strip()]
print("| embedding noise | head: held-out prompts (test) | head: in sample (validation) | free comparisons in sample | true model (test / validation) |")
print("|---|---|---|---|---|")
for r in rows:
    print("| %g | %.4f | %.4f | %.4f | %.4f / %.4f |" % (r["noise"], r["head_test"], r["head_validation"], fv, tt, tv))
print("| %g, head + residual (--residual) | %.4f | %.4f | %.4f | %.4f / %.4f |" % (res["noise"], res["head_test"], res["head_validation"], fv, tt, tv))
print("free comparisons on the held-out prompts (test): %.4f" % ft)
json.dump({"rows": rows, "residual": res, "comparisons": {"test": ft, "validation": fv}, "truth": {"test": tt, "validation": tv}}, open(out, "w"), indent=1)
' "$free_test" "$free_val" "$truth_test" "$truth_val" "$RUN_DIR/generalization.json" \
  "$residual_row"
