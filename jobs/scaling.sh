#!/usr/bin/env bash
# Scaling studies of `pref fit` (docs/scaling.md): sequential runs at each rank count and with
# each exchange pattern, the per-sweep metrics (`pref fit --metrics`) collected into a CSV, and a
# PNG plot (gnuplot) of the time per sweep, the parallel efficiency and the bytes exchanged.
#
#   bash jobs/scaling.sh strong [NAME=VALUE ...]   # one problem, 1, 2, 4 ranks
#   bash jobs/scaling.sh weak   [NAME=VALUE ...]   # USERS users per rank
#   sbatch --ntasks=4 jobs/scaling.sh strong ...   # the same inside one allocation (mpirun)
#   bash jobs/scaling.sh model [NAME=VALUE ...]     # the cost model's projection (scaling_model.py)
#
# NAME=VALUE arguments or environment variables, with their defaults:
#   RANKS_LIST="1 2 4"  EXCHANGES="ship reduce"  FIT_RANK=8  SWEEPS=6
#   USERS=200000 (strong: in all; weak: per rank)  COMPARISONS=10000  ANSWERS=40
#   RUN_DIR=runs/scaling-<mode>
# Strong: the same data at every rank count; efficiency = t(1) / (n t(n)). Weak: USERS x n users
# at n ranks with the comparisons and answers per user fixed, so the training labels per rank
# stay fixed; efficiency = t(1) / t(n). Times are the median over sweeps 1..SWEEPS of rank 0's
# seconds (user half-step + comparison half-step + evaluation; each sweep ends in collectives,
# so this is close to the wall time of a sweep). On this machine runs above 2 ranks
# oversubscribe its 2 cores (docs/scaling.md says what that does and does not show).
#
# Output in RUN_DIR: scaling.csv, scaling.png, metrics-<ranks>-<exchange>.jsonl,
# fit-<ranks>-<exchange>.log, environment.txt.
#SBATCH --job-name=pref-scaling
#SBATCH --ntasks=4
#SBATCH --time=01:00:00
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${PREF_ROOT:-${SLURM_SUBMIT_DIR:-.}}/jobs"  # sbatch runs a spool copy
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

mode="${1:-}"
case "$mode" in
  strong | weak) shift ;;
  model)
    shift
    exec python3 "$PREF_ROOT/jobs/scaling_model.py" "$@"
    ;;
  *)
    sed -n '2,24p' "$0" >&2
    exit 2
    ;;
esac
for a in "$@"; do
  case "$a" in
    [A-Za-z_]*=*) export "${a?}" ;;
    *) pref_die "argument '$a': expected NAME=VALUE" ;;
  esac
done
RANKS_LIST="${RANKS_LIST:-1 2 4}"
EXCHANGES="${EXCHANGES:-ship reduce}"
FIT_RANK="${FIT_RANK:-8}"
SWEEPS="${SWEEPS:-6}"
USERS="${USERS:-200000}"
COMPARISONS="${COMPARISONS:-10000}"
ANSWERS="${ANSWERS:-40}"
RUN_DIR="${RUN_DIR:-$PREF_ROOT/runs/scaling-$mode}"

pref_ensure_packages gnuplot-nox
[ -x "$PREF_BIN" ] || pref_build
mkdir -p "$RUN_DIR"
pref_log_environment "$RUN_DIR/environment.txt"

csv="$RUN_DIR/scaling.csv"
echo "mode,ranks,exchange,users,comparisons,train_labels,J,sweeps,seconds_user,seconds_comparison,seconds_eval,seconds_sweep,bytes_per_sweep,bytes_per_rank,labels_per_second,efficiency,load_before" >"$csv.partial"

for n in $RANKS_LIST; do
  if [ "$mode" = strong ]; then
    users="$USERS"
  else
    users=$(python3 -c "print(int(float('$USERS')) * $n)")
  fi
  data="$RUN_DIR/data-$users.h5"
  if [ ! -f "$data" ]; then
    pref_log "generate: $users users, $COMPARISONS comparisons, $ANSWERS answers each"
    pref_mpirun 2 "$PREF_BIN" generate --model lowrank --users "$users" --comparisons "$COMPARISONS" \
      --answers-per-user "$ANSWERS" --rank "$FIT_RANK" --seed 1 --out "$data" 2>/dev/null
  fi
  for ex in $EXCHANGES; do
    metrics="$RUN_DIR/metrics-$n-$ex.jsonl"
    log="$RUN_DIR/fit-$n-$ex.log"
    load="$(cut -d' ' -f1 /proc/loadavg)"  # others' work skews the figures on a shared machine
    pref_log "fit: $n ranks, exchange $ex, $users users (load average $load)"
    pref_mpirun "$n" "$PREF_BIN" fit --data "$data" --rank "$FIT_RANK" --init random --seed 5 \
      --max-sweeps "$SWEEPS" --tol 0 --exchange "$ex" --metrics "$metrics" \
      --overwrite --out "$RUN_DIR/model.h5" 2>"$log"
    labels="$(sed -n 's/.* \([0-9]*\) training labels.*/\1/p' "$log" | head -n1)"
    python3 - "$mode" "$n" "$ex" "$users" "$COMPARISONS" "$labels" "$FIT_RANK" "$SWEEPS" "$metrics" "$load" >>"$csv.partial" <<'EOF'
import json, statistics, sys
mode, n, ex, users, comps, labels, J, sweeps, path, load = sys.argv[1:]
recs = [json.loads(l) for l in open(path) if l.strip()]
recs = [r for r in recs if r["sweep"] >= 1]
med = lambda k: statistics.median(r[k] for r in recs)
su, sc, se = med("seconds_user"), med("seconds_comparison"), med("seconds_eval")
sweep = su + sc + se
b = med("bytes_exchanged")
print(f"{mode},{n},{ex},{users},{comps},{labels},{J},{len(recs)},{su:.6f},{sc:.6f},{se:.6f},"
      f"{sweep:.6f},{b:.0f},{b / int(n):.0f},{int(labels) / sweep:.4g},,{load}")
EOF
  done
done

# Efficiency against the 1-rank run of the same exchange pattern (or the smallest rank count).
python3 - "$mode" "$csv.partial" >"$csv" <<'EOF'
import csv, sys
mode, path = sys.argv[1:]
rows = list(csv.DictReader(open(path)))
base = {}
for r in sorted(rows, key=lambda r: int(r["ranks"])):
    base.setdefault(r["exchange"], r)
w = csv.DictWriter(sys.stdout, fieldnames=rows[0].keys(), lineterminator="\n")
w.writeheader()
rows.sort(key=lambda r: (r["exchange"], int(r["ranks"])))  # one line per pattern in the plot
for r in rows:
    b = base[r["exchange"]]
    t1, tn = float(b["seconds_sweep"]), float(r["seconds_sweep"])
    scale = int(r["ranks"]) / int(b["ranks"])
    r["efficiency"] = f"{(t1 / (scale * tn) if mode == 'strong' else t1 / tn):.3f}"
    w.writerow(r)
EOF
rm -f "$csv.partial"

png="$RUN_DIR/scaling.png"
title="pref fit, $mode scaling: J=$FIT_RANK, $ANSWERS answers per user, $COMPARISONS comparisons, $([ "$mode" = strong ] && echo "$USERS users" || echo "$USERS users per rank")"
gnuplot <<EOF
set terminal pngcairo size 1500,480 font ",10"
set output "$png"
set datafile separator ","
set key autotitle columnhead
set multiplot layout 1,3 title "$title (ranks > $PREF_CORES oversubscribe $PREF_CORES cores)"
set logscale x 2
set offsets graph 0.05, graph 0.05, 0, 0
set xlabel "MPI ranks"
set grid
set key top left
set ylabel "seconds per sweep"
plot for [ex in "$EXCHANGES"] "$csv" using 2:(strcol(3) eq ex ? \$12 : 1/0) with linespoints title ex
set ylabel "parallel efficiency"
set yrange [0:1.2]
plot for [ex in "$EXCHANGES"] "$csv" using 2:(strcol(3) eq ex ? \$16 : 1/0) with linespoints title ex
set autoscale y
set ylabel "MB exchanged per sweep (all ranks)"
plot for [ex in "$EXCHANGES"] "$csv" using 2:(strcol(3) eq ex ? \$13/1e6 : 1/0) with linespoints title ex
unset multiplot
EOF
rm -f "$RUN_DIR/model.h5"
pref_log "wrote $csv and $png"
column -s, -t "$csv"
