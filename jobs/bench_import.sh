#!/usr/bin/env bash
# Benchmark (not a test) of `pref import --layout responses --embeddings`: generates (once, in a
# streaming way: jobs/bench_import_data.py) a responses CSV of 10^7 labels over 10^6 responses and
# an embeddings file of 10^6 x 1024 float32, then times the import without and with the
# embeddings at each rank count, with the peak memory of each rank. The inputs and outputs are
# deleted afterwards unless --keep.
#
#   bash jobs/bench_import.sh [--labels 1e7] [--users 1e5] [--responses 1e6] [--dim 1024]
#                             [--ranks "1 2"] [--dir runs/bench-import] [--keep]
#
# Results go to standard output as a Markdown table (docs/performance.md keeps the figures).
# Other work on the machine skews the figures: the load average before each run is printed with
# it. The time is that of the whole mpirun; the output is not synced (the `sync` column is the
# time a sync took afterwards).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

labels=1e7 users=1e5 responses=1e6 dim=1024 ranks="1 2" keep=0
dir="$PREF_ROOT/runs/bench-import"
while [ $# -gt 0 ]; do
  case "$1" in
    --labels) labels="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --responses) responses="$2"; shift 2 ;;
    --dim) dim="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) pref_die "unknown argument '$1' (see --help)" ;;
  esac
done

pref_ensure_packages time python3-h5py
pref_build
mkdir -p "$dir"
pref_log_environment "$dir/environment.txt"
input="$dir/input-l$labels-r$responses-d$dim"
if [ ! -f "$input/embeddings.h5" ]; then
  pref_log "input: /usr/bin/python3 jobs/bench_import_data.py -> $input"
  t0="$(date +%s.%N)"
  /usr/bin/python3 "$here/bench_import_data.py" --out "$input" --labels "$labels" \
    --users "$users" --responses "$responses" --dim "$dim" >&2
  pref_log "input written in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s"
fi
csv_bytes="$(stat -c %s "$input/responses.csv")"
emb_bytes="$(stat -c %s "$input/embeddings.h5")"

rows=()
for n in $ranks; do
  for with in no yes; do
    out="$dir/data-n$n-$with.h5"
    log="${out%.h5}.log"
    rm -f "$out"
    cmd=(import --layout responses --input "$input/responses.csv" --out "$out")
    [ "$with" = yes ] && cmd+=(--embeddings "$input/embeddings.h5")
    load="$(cut -d' ' -f1 /proc/loadavg)"
    pref_log "run: mpirun -np $n pref ${cmd[*]} (load average $load)"
    t0="$(date +%s.%N)"
    pref_mpirun "$n" /usr/bin/time -f 'bench-peak-rss-kib %M' "$PREF_BIN" "${cmd[@]}" 2>&1 |
      tee "$log" >&2
    t1="$(date +%s.%N)"
    sync
    t2="$(date +%s.%N)"
    inner="$(sed -n 's/.* to .* in \([0-9.]*\) s$/\1/p' "$log")"
    bytes="$(stat -c %s "$out")"
    peaks="$(awk '/^bench-peak-rss-kib/ { printf "%s%.2f", sep, $2 / 1048576; sep = " / " }' "$log")"
    rows+=("$(awk -v n="$n" -v w="$with" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v in_="$inner" \
      -v b="$bytes" -v p="$peaks" -v load="$load" 'BEGIN {
        printf "| %d | %s | %.1f | %s | %.2f | %.1f | %s | %s |", n, w, t1 - t0, in_, b / 2^30,
          t2 - t1, p, load }')")
    [ "$keep" = 1 ] || rm -f "$out"
  done
done
[ "$keep" = 1 ] || rm -rf "$input"

cat <<EOF

pref import --layout responses: $labels labels of $users users over $responses responses
(4 per prompt), CSV $(awk -v b="$csv_bytes" 'BEGIN { printf "%.2f GiB", b / 2^30 }'); embeddings
$responses x $dim float32 (+1% unused ids), $(awk -v b="$emb_bytes" 'BEGIN { printf "%.2f GiB", b / 2^30 }');
$PREF_CORES cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); files in $dir

| ranks | --embeddings | wall s | pref s | output GiB | sync s | peak GiB per rank | load before |
|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")
EOF
