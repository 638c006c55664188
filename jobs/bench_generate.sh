#!/usr/bin/env bash
# Benchmark (not a test) of `pref generate`: for each rank count, generates an Attributes
# population, writes it, and reports labels generated and written per second, bytes per label
# on disk and the peak memory of each rank. The file is deleted afterwards (unless --keep).
#
#   bash jobs/bench_generate.sh [--users 1e6] [--answers 40] [--comparisons 1e5]
#                               [--ranks "1 2"] [--dir runs/bench] [--keep]
#
# Results go to standard output as a Markdown table (docs/performance.md keeps the figures);
# the runs' logs stay in the bench directory. Other work on the machine skews the figures: the
# load average before each run is printed with it. The time is that of the whole mpirun (start-up,
# generation, writing, closing and renaming the file); the file is not synced, so the data may
# still be in the page cache: the `sync` column is the time a sync took afterwards.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

users=1e6 answers=40 comparisons=1e5 ranks="1 2" keep=0
dir="$PREF_ROOT/runs/bench"
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    --answers) answers="$2"; shift 2 ;;
    --comparisons) comparisons="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) pref_die "unknown argument '$1' (see --help)" ;;
  esac
done

pref_ensure_packages time
pref_build
mkdir -p "$dir"
pref_log_environment "$dir/environment.txt"

# Expected labels (no new users) and bytes, to check the free space first.
labels_expected="$(awk -v u="$users" -v k="$answers" 'BEGIN { printf "%.0f", u * k }')"
need=$((labels_expected * 9 + (64 << 20)))
rows=()
for n in $ranks; do
  out="$dir/bench-u$users-k$answers-c$comparisons-n$n.h5"
  log="${out%.h5}.log"
  rm -f "$out"
  avail="$(df --output=avail -B1 "$dir" | tail -n1 | tr -d ' ')"
  if [ "$avail" -lt "$need" ]; then
    pref_log "skipping $n ranks: $need bytes needed, $avail free in $dir"
    continue
  fi
  cmd=(generate --model attributes --users "$users" --comparisons "$comparisons"
    --answers-per-user "$answers" --seed 1 --out "$out")
  load="$(cut -d' ' -f1 /proc/loadavg)"
  pref_log "run: mpirun -np $n pref ${cmd[*]} (load average $load)"
  t0="$(date +%s.%N)"
  # Each rank runs under /usr/bin/time, which reports its maximum resident set size.
  pref_mpirun "$n" /usr/bin/time -f 'bench-peak-rss-kib %M' "$PREF_BIN" "${cmd[@]}" 2>&1 |
    tee "$log" >&2
  t1="$(date +%s.%N)"
  sync
  t2="$(date +%s.%N)"
  labels="$(sed -n 's/.*wrote \([0-9]*\) labels.*/\1/p' "$log")"
  inner="$(sed -n 's/.*labels to .* in \([0-9.]*\) s .*/\1/p' "$log")"
  bytes="$(stat -c %s "$out")"
  peaks="$(awk '/^bench-peak-rss-kib/ { printf "%s%.2f", sep, $2 / 1048576; sep = " / " }' "$log")"
  rows+=("$(awk -v n="$n" -v l="$labels" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v in_="$inner" \
    -v b="$bytes" -v p="$peaks" -v load="$load" 'BEGIN {
      w = t1 - t0
      printf "| %d | %.3g | %.1f | %s | %.2e | %.2f | %.1f | %s | %s |", n, l, w, in_, l / w,
        b / l, t2 - t1, p, load }')")
  [ "$keep" = 1 ] || rm -f "$out"
done

cat <<EOF

users $users x answers $answers over comparisons $comparisons (attributes model, seed 1);
$PREF_CORES cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); file in $dir

| ranks | labels | wall s | pref s | labels/s | bytes/label | sync s | peak GiB per rank | load before |
|---|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")
EOF
