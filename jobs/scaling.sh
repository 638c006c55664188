#!/usr/bin/env bash
# Scaling studies of `pref fit` (docs/scaling.md): runs at each rank count and with each exchange
# pattern, the per-sweep metrics (`pref fit --metrics`) collected into a CSV, and a PNG plot
# (gnuplot) of the time per sweep, the parallel efficiency and the bytes exchanged.
#
#   bash jobs/scaling.sh strong [NAME=VALUE ...]           # one problem, 1, 2, 4 ranks, in turn
#   bash jobs/scaling.sh weak   [NAME=VALUE ...]           # USERS users per rank
#   sbatch --ntasks=4 jobs/scaling.sh strong ...           # the same inside one allocation (mpirun)
#   bash jobs/scaling.sh strong|weak --array [NAME=VALUE ...]  # as Slurm job arrays (below)
#   bash jobs/scaling.sh model [NAME=VALUE ...]            # the cost model's projection
#
# NAME=VALUE arguments or environment variables, with their defaults:
#   RANKS_LIST="1 2 4"  EXCHANGES="ship reduce"  FIT_RANK=8  SWEEPS=6
#   USERS=200000 (strong: in all; weak: per rank)  COMPARISONS=10000  ANSWERS=40
#   RUN_DIR=runs/scaling-<mode>
#   SBATCH_ARGS=  (--array only: more sbatch options for every array, e.g. "--exclusive
#                  --partition=p --time=00:30:00", or "--overcommit" for more ranks than CPUs)
# Strong: the same data at every rank count; efficiency = t(1) / (n t(n)). Weak: USERS x n users
# at n ranks with the comparisons and answers per user fixed, so the training labels per rank
# stay fixed; efficiency = t(1) / t(n). Times are the median over sweeps 1..SWEEPS of rank 0's
# seconds (user half-step + comparison half-step + evaluation; each sweep ends in collectives,
# so this is close to the wall time of a sweep). On this machine runs above 2 ranks
# oversubscribe its 2 cores (docs/scaling.md says what that does and does not show).
#
# --array: generates the data here, then submits one `sbatch --array` per rank count n
# (--ntasks=n; task i runs exchange pattern i of EXCHANGES with `srun --mpi=pmix`), waits for
# all of them with `sbatch --wait` on a no-op job that depends on them (afterany), and collects
# the same CSV and PNG as the sequential runs. One array per rank count, because a Slurm array
# has one resource request for all its tasks (docs/scaling.md says why not the largest for all).
#
# Output in RUN_DIR: scaling.csv, scaling.png, metrics-<ranks>-<exchange>.jsonl,
# fit-<ranks>-<exchange>.log, load-<ranks>-<exchange>.txt, environment.txt; with --array also
# slurm-<array job>_<task>.out.
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
    sed -n '2,/^#SBATCH/{/^#SBATCH/!p}' "$0" >&2
    exit 2
    ;;
esac
array=0      # --array: submit the runs as Slurm job arrays
task_ranks=  # --array-task=N (internal): this is an array task of the array at N ranks
for a in "$@"; do
  case "$a" in
    --array) array=1 ;;
    --array-task=*) task_ranks="${a#--array-task=}" ;;
    [A-Za-z_]*=*) export "${a?}" ;;
    *) pref_die "argument '$a': expected --array or NAME=VALUE (bash $0 without arguments: usage)" ;;
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
SBATCH_ARGS="${SBATCH_ARGS:-}"
for n in $RANKS_LIST; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || pref_die "RANKS_LIST: '$n' is not a positive rank count"
done
for ex in $EXCHANGES; do
  case "$ex" in
    ship | reduce | auto) ;;
    *) pref_die "EXCHANGES: '$ex' is not ship, reduce or auto" ;;
  esac
done
[ -n "$RANKS_LIST" ] || pref_die "RANKS_LIST is empty"
[ -n "$EXCHANGES" ] || pref_die "EXCHANGES is empty"
read -r -a exchanges <<<"$EXCHANGES"

# The users of the run at $1 ranks.
users_at() {
  if [ "$mode" = strong ]; then
    echo "$USERS"
  else
    python3 -c "print(int(float('$USERS')) * $1)"
  fi
}

# data_at N: the label file of the runs at N ranks (generated once, then reused).
data_at() {
  local users data
  users="$(users_at "$1")"
  data="$RUN_DIR/data-$users.h5"
  if [ ! -f "$data" ]; then
    pref_log "generate: $users users, $COMPARISONS comparisons, $ANSWERS answers each"
    pref_mpirun 2 "$PREF_BIN" generate --model lowrank --users "$users" --comparisons "$COMPARISONS" \
      --answers-per-user "$ANSWERS" --rank "$FIT_RANK" --seed 1 --out "$data" 2>/dev/null
  fi
  echo "$data"
}

# run_fit N EXCHANGE LAUNCHER...: one measured fit; writes metrics-N-EX.jsonl, fit-N-EX.log and
# load-N-EX.txt (the load average before it: others' work skews the figures on a shared machine).
run_fit() {
  local n="$1" ex="$2"
  shift 2
  local data users load
  data="$RUN_DIR/data-$(users_at "$n").h5"
  users="$(users_at "$n")"
  load="$(cut -d' ' -f1 /proc/loadavg)"
  echo "$load" >"$RUN_DIR/load-$n-$ex.txt"
  pref_log "fit: $n ranks, exchange $ex, $users users (load average $load): $*"
  "$@" "$PREF_BIN" fit --data "$data" --rank "$FIT_RANK" --init random --seed 5 \
    --max-sweeps "$SWEEPS" --tol 0 --exchange "$ex" --metrics "$RUN_DIR/metrics-$n-$ex.jsonl" \
    --overwrite --out "$RUN_DIR/model-$n-$ex.h5" 2>"$RUN_DIR/fit-$n-$ex.log"
  rm -f "$RUN_DIR/model-$n-$ex.h5"
}

# collect: scaling.csv and scaling.png from the files of every run (sequential or array).
collect() {
  local csv="$RUN_DIR/scaling.csv" n ex users labels log metrics
  echo "mode,ranks,exchange,users,comparisons,train_labels,J,sweeps,seconds_user,seconds_comparison,seconds_eval,seconds_sweep,bytes_per_sweep,bytes_per_rank,labels_per_second,efficiency,load_before" >"$csv.partial"
  for n in $RANKS_LIST; do
    users="$(users_at "$n")"
    for ex in "${exchanges[@]}"; do
      log="$RUN_DIR/fit-$n-$ex.log"
      metrics="$RUN_DIR/metrics-$n-$ex.jsonl"
      if [ ! -s "$metrics" ] || [ ! -f "$RUN_DIR/load-$n-$ex.txt" ]; then
        pref_die "the run at $n ranks with exchange $ex left no $metrics (see $log)"
      fi
      labels="$(sed -n 's/.* \([0-9]*\) training labels.*/\1/p' "$log" | head -n1)"
      [ -n "$labels" ] || pref_die "$log: no training label count (did the fit start?)"
      python3 - "$mode" "$n" "$ex" "$users" "$COMPARISONS" "$labels" "$FIT_RANK" "$SWEEPS" "$metrics" \
        "$(cat "$RUN_DIR/load-$n-$ex.txt")" >>"$csv.partial" <<'EOF'
import json, statistics, sys
mode, n, ex, users, comps, labels, J, sweeps, path, load = sys.argv[1:]
recs = [json.loads(l) for l in open(path) if l.strip()]
recs = [r for r in recs if r["sweep"] >= 1]
if len(recs) != int(sweeps):
    sys.exit(f"{path}: {len(recs)} sweeps after sweep 0, expected {sweeps} (did the fit finish?)")
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

  local png="$RUN_DIR/scaling.png" title
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
  [ -s "$png" ] || pref_die "gnuplot wrote no $png"
  pref_log "wrote $csv and $png"
  column -s, -t "$csv"
}

# An array task: the run at $task_ranks ranks with pattern SLURM_ARRAY_TASK_ID of EXCHANGES.
if [ -n "$task_ranks" ]; then
  [ -n "${SLURM_ARRAY_TASK_ID:-}" ] || pref_die "--array-task is for the tasks that --array submits"
  ex="${exchanges[$SLURM_ARRAY_TASK_ID]:-}"
  [ -n "$ex" ] || pref_die "array task $SLURM_ARRAY_TASK_ID: EXCHANGES has ${#exchanges[@]} patterns"
  [ -x "$PREF_BIN" ] || pref_die "no $PREF_BIN (PREF_BUILD_DIR=$PREF_BUILD_DIR)"
  pref_log "array task ${SLURM_ARRAY_JOB_ID:-?}_$SLURM_ARRAY_TASK_ID: $task_ranks ranks, exchange $ex"
  run_fit "$task_ranks" "$ex" srun --mpi=pmix --ntasks "$task_ranks"
  exit 0
fi

pref_ensure_packages gnuplot-nox
[ -x "$PREF_BIN" ] || pref_build
mkdir -p "$RUN_DIR"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"  # the array tasks may start elsewhere
pref_log_environment "$RUN_DIR/environment.txt"

if [ "$array" = 0 ]; then
  for n in $RANKS_LIST; do
    data_at "$n" >/dev/null
    for ex in "${exchanges[@]}"; do
      run_fit "$n" "$ex" pref_mpirun "$n"
    done
  done
  collect
  exit 0
fi

# --array: the data first (once per size), then one array per rank count, then wait for all.
command -v sbatch >/dev/null || pref_die "--array needs Slurm's sbatch (see jobs/slurm/local_slurm.sh)"
for n in $RANKS_LIST; do
  data_at "$n" >/dev/null
  for ex in "${exchanges[@]}"; do  # no stale results from an earlier study
    rm -f "$RUN_DIR/metrics-$n-$ex.jsonl" "$RUN_DIR/fit-$n-$ex.log" "$RUN_DIR/load-$n-$ex.txt"
  done
done
export PREF_ROOT PREF_BUILD_DIR  # for the tasks (sbatch runs a spool copy of this script)
jobs=()
for n in $RANKS_LIST; do
  # shellcheck disable=SC2086  # SBATCH_ARGS is a list of words
  if ! job="$(sbatch --parsable --job-name="pref-scaling-$mode-$n" --array="0-$((${#exchanges[@]} - 1))" \
    --ntasks="$n" --output="$RUN_DIR/slurm-%A_%a.out" $SBATCH_ARGS "$PREF_ROOT/jobs/scaling.sh" \
    "$mode" --array-task="$n" RANKS_LIST="$RANKS_LIST" EXCHANGES="$EXCHANGES" FIT_RANK="$FIT_RANK" \
    SWEEPS="$SWEEPS" USERS="$USERS" COMPARISONS="$COMPARISONS" ANSWERS="$ANSWERS" RUN_DIR="$RUN_DIR")"; then
    [ ${#jobs[@]} -eq 0 ] || scancel "${jobs[@]}" || true
    pref_die "sbatch refused the array at $n ranks (more CPUs than the partition has? SBATCH_ARGS=--overcommit oversubscribes)"
  fi
  job="${job%%;*}"  # (--parsable prints "id;cluster" on multi-cluster systems)
  jobs+=("$job")
  pref_log "submitted array job $job: $n ranks x ${#exchanges[@]} patterns ($EXCHANGES)"
done
deps="$(IFS=:; echo "${jobs[*]}")"
pref_log "waiting for array jobs ${jobs[*]} (sbatch --wait on a job that depends on them)"
sbatch --wait --quiet --job-name="pref-scaling-$mode-wait" --dependency="afterany:$deps" --ntasks=1 \
  --output=/dev/null --wrap=true || pref_die "the waiting job failed (array jobs ${jobs[*]})"
collect
