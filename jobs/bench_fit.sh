#!/usr/bin/env bash
# Benchmark (not a test) of `pref fit`: for each J and rank count, fits a low-rank population for
# a few sweeps (one Newton step per row per half-step, random init) and reports, from the
# metrics file of the last sweep, the labels processed per second in each half-step, the
# seconds of a sweep (both half-steps) and of the evaluation, the bytes exchanged per sweep, the
# bytes per label that the fit keeps for its labels (both orientations, from fit's log) and the
# peak memory per rank (everything, loading included). Then the row-kernel benchmark (tests/bench/bench_kernels.cpp):
# labels per second and Hessian GFLOP/s per J next to the measured dgemm rate.
#
#   bash jobs/bench_fit.sh [--users 1e6] [--comparisons 1e4] [--answers 50] [--js "4 8 16 32"]
#                          [--ranks "1 2"] [--sweeps 3] [--dir runs/bench-fit] [--exchange auto]
#
# 80% of each user's answers are training labels (the rest validation and test). Noisy
# machines skew the figures: the load average before each run is printed with it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

users=1e6 comparisons=1e4 answers=50 js="4 8 16 32" ranks="1 2" sweeps=3 exchange=auto
dir="$PREF_ROOT/runs/bench-fit"
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    --comparisons) comparisons="$2"; shift 2 ;;
    --answers) answers="$2"; shift 2 ;;
    --js) js="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --sweeps) sweeps="$2"; shift 2 ;;
    --exchange) exchange="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) pref_die "unknown argument '$1' (see --help)" ;;
  esac
done

pref_ensure_packages time
pref_build
mkdir -p "$dir"
pref_log_environment "$dir/environment.txt"
data="$dir/data-u$users-c$comparisons-k$answers.h5"
if [ ! -f "$data" ]; then
  pref_mpirun 2 "$PREF_BIN" generate --model lowrank --rank 8 --users "$users" \
    --comparisons "$comparisons" --answers-per-user "$answers" --seed 1 --out "$data" >&2
fi

rows=()
for J in $js; do
  for n in $ranks; do
    metrics="$dir/fit-J$J-n$n.jsonl"
    log="$dir/fit-J$J-n$n.log"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    pref_log "run: mpirun -np $n pref fit --rank $J (load average $load)"
    peaks="$dir/peak-J$J-n$n.txt"
    rm -f "$peaks"  # one line per rank, appended (ranks' stderr lines could interleave)
    pref_mpirun "$n" /usr/bin/time -a -o "$peaks" -f 'bench-peak-rss-kib %M' "$PREF_BIN" fit --data "$data" \
      --rank "$J" --init random --max-sweeps "$sweeps" --tol 0 --exchange "$exchange" \
      --metrics "$metrics" --overwrite --out "$dir/model-J$J-n$n.h5" >"$log" 2>&1 ||
      { cat "$log" >&2; pref_die "fit failed"; }
    peak="$(awk '/^bench-peak-rss-kib/ { if ($2 > m) m = $2 } END { printf "%.0f", m * 1024 }' "$peaks")"
    # The training label count from fit's own log (pref inspect would load the whole file).
    train="$(sed -n 's/.*, \([0-9]*\) training labels.*/\1/p' "$log" | head -n 1)"
    pattern="$(sed -n 's/.*exchange pattern: \([a-z]*\).*/\1/p' "$log")"
    resident="$(sed -n 's/.*training labels in memory: \([0-9.]*\) bytes.*/\1/p' "$log")"
    rows+=("$(tail -n 1 "$metrics" | python3 -c '
import json, sys
r = json.load(sys.stdin)
J, n, train, peak, pattern, load, resident = sys.argv[1:8]
train = float(train); n = int(n); peak = float(peak)
su, sc, se = r["seconds_user"], r["seconds_comparison"], r["seconds_eval"]
print("| %s | %d | %s | %.3g | %.3g | %.2f | %.2f | %.2f | %.3g | %.1f | %s | %.1f | %s |" % (
    J, n, pattern, train / su, train / sc, su, sc, su + sc, se,
    r["bytes_exchanged"] / 1e6, resident, peak / (train / n), load))
' "$J" "$n" "$train" "$peak" "$pattern" "$load" "$resident")")
  done
done

cat <<EOF

pref fit on $data: $train training labels, $sweeps sweeps, figures of the last sweep;
$PREF_CORES cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)

| J | ranks | exchange | user labels/s | comparison labels/s | user s | comparison s | sweep s | eval s | MB exchanged | label bytes/label | peak bytes/label/rank | load before |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")

EOF
OPENBLAS_NUM_THREADS=1 "$PREF_BUILD_DIR/tests/bench_kernels" 40 4e6
