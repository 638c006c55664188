#!/usr/bin/env bash
# Benchmark (not a test) of the randomized SVD initialization of `pref fit` (--init svd)
# against one alternating sweep on the same data: for each population size, generates a
# low-rank population (rank 8, 40 answers per user over 10^4 comparisons), fits J = 8 for
# two sweeps, and reports the init time (from fit's log line "init svd: T s (P s products,
# F s factorizations) ...") next to sweep 1's time (seconds_user + seconds_comparison of
# --metrics). Target (issue 4): init no more than two sweeps, and linear in the labels.
#
#   bash jobs/bench_init.sh [--users "1e5 1e6"] [--comparisons 1e4] [--answers 40] [--rank 8]
#                           [--ranks 2] [--power-iterations 2] [--oversampling 10]
#                           [--svd-qr cholesky|householder] [--threads 1]
#                           [--dir runs/bench-init] [--keep-data]
#
# 80% of each user's answers are training labels. The data files are deleted afterwards
# unless --keep-data. Noisy machines skew the figures: the load average before each run is
# printed with it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

users_list="1e5 1e6" comparisons=1e4 answers=40 rank=8 ranks=2 power=2 oversampling=10 keep=0
qr=cholesky threads=1
dir="$PREF_ROOT/runs/bench-init"
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users_list="$2"; shift 2 ;;
    --comparisons) comparisons="$2"; shift 2 ;;
    --answers) answers="$2"; shift 2 ;;
    --rank) rank="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --power-iterations) power="$2"; shift 2 ;;
    --oversampling) oversampling="$2"; shift 2 ;;
    --svd-qr) qr="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --keep-data) keep=1; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) pref_die "unknown argument '$1' (see --help)" ;;
  esac
done

pref_ensure_packages time
pref_build
mkdir -p "$dir"
pref_log_environment "$dir/environment.txt"

rows=()
for users in $users_list; do
  data="$dir/data-u$users-c$comparisons-k$answers-r$rank.h5"
  if [ ! -f "$data" ]; then
    pref_log "generate: $users users"
    pref_mpirun "$ranks" "$PREF_BIN" generate --model lowrank --rank "$rank" --users "$users" \
      --comparisons "$comparisons" --answers-per-user "$answers" --seed 1 --out "$data" >&2
  fi
  log="$dir/fit-u$users.log" metrics="$dir/fit-u$users.jsonl" peaks="$dir/peak-u$users.txt"
  rm -f "$peaks"  # one line per rank, appended (O_APPEND: lines do not interleave as on stderr)
  load="$(cut -d' ' -f1 /proc/loadavg)"
  pref_log "run: mpirun -np $ranks pref fit --rank $rank --init svd on $users users (load average $load)"
  pref_mpirun "$ranks" /usr/bin/time -a -o "$peaks" -f 'bench-peak-rss-kib %M' "$PREF_BIN" fit \
    --data "$data" \
    --rank "$rank" --init svd --svd-power-iterations "$power" --svd-power-tol 0 --svd-oversampling "$oversampling" \
    --svd-qr "$qr" --threads "$threads" --max-sweeps 2 --tol 0 --metrics "$metrics" --overwrite \
    --out "$dir/model-u$users.h5" \
    >"$log" 2>&1 || { cat "$log" >&2; pref_die "fit failed"; }
  rm -f "$dir/model-u$users.h5"
  # The training label count from fit's own log (pref inspect would load the whole file).
  train="$(sed -n 's/.*, \([0-9]*\) training labels.*/\1/p' "$log" | head -n 1)"
  [ "$keep" = 1 ] || rm -f "$data"
  rows+=("$(python3 - "$users" "$train" "$log" "$metrics" "$load" "$peaks" <<'EOF'
import json, re, sys
users, train, log, metrics, load, peaks = sys.argv[1:7]
train = float(train)
text = open(log, errors="replace").read()
m = re.search(r"init svd: ([0-9.]+)s \(([0-9.]+)s products, ([0-9.]+)s factorizations\)", text)
if not m:
    sys.exit("no 'init svd:' line in " + log)
init, prod, fact = map(float, m.groups())
recs = {r["sweep"]: r for r in map(json.loads, open(metrics).read().splitlines())}
s1 = recs[1]["seconds_user"] + recs[1]["seconds_comparison"]
s2 = recs[2]["seconds_user"] + recs[2]["seconds_comparison"] if 2 in recs else float("nan")
peak = max(int(x) for x in re.findall(r"^bench-peak-rss-kib (\d+)", open(peaks).read(), re.M)) * 1024
print("| %.0e | %.3g | %.2f | %.2f | %.3f | %.2f | %.2f | %.2f | %.3g | %.2f | %s |" % (
    float(users), train, init, prod, fact, s1, s2, init / s1, init / train * 1e6, peak / 2**30, load))
EOF
)")
done

cat <<EOF

pref fit --init svd (randomized range finder, $power power iterations, oversampling $oversampling,
--svd-qr $qr, --threads $threads)
vs alternating sweeps: low-rank population (rank $rank), $answers answers per user (80% training),
$comparisons comparisons, J = $rank, $ranks MPI ranks; $PREF_CORES cores,
$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)

| users | training labels | init s | products s | factorizations s | sweep 1 s | sweep 2 s | init / sweep 1 | init s per 10^6 labels | peak GiB per rank | load before |
|---|---|---|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")

EOF
