#!/usr/bin/env bash
# Benchmark (not a test) of the head's W step (issue 14's target: d = 1024, J = 8, 10^6 users,
# 10^5 responses, one sweep of `--items embeddings`, W step included, on 2 ranks at most 2x a
# `--items comparisons` sweep of the same labels; memory per rank printed).
#
#   bash jobs/bench_items.sh [--users 1e6] [--responses 1e5] [--per-prompt 4] [--dim 1024]
#                            [--answers 20] [--rank 8] [--sweeps 3] [--ranks 2]
#                            [--noise 0.1] [--dir runs/bench-items]
#
# Generates one attributes population with response structure (pref generate --model
# attributes --responses-per-prompt P --embedding-dim d; comparisons = the prompts' pairs, so
# responses R give R (P - 1) / 2 comparisons), then fits it with each item model for --sweeps
# sweeps (random init, --tol 0) and once with --max-sweeps 0 (load, init and sweep 0 only).
# Per sweep (sweeps 1..N): the wall seconds of the half-steps and of the whole sweep with its
# evaluation from the metrics file (means), the CPU seconds of all ranks (user + system) of the
# N-sweep run minus those of the 0-sweep run, divided by N (evaluation included), and the peak
# resident memory of each rank (VmHWM, /usr/bin/time's %M) of the N-sweep run. The head's CG
# solves (iterations, wall and CPU seconds) are printed from the fit's log after the table.
# Noisy machines skew the figures (the wall seconds most, on a shared machine): the load
# average before each run is printed with it. PREF_NO_BUILD=1 skips the build.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

users=1e6 responses=1e5 per_prompt=4 dim=1024 answers=20 J=8 sweeps=3 ranks=2 noise=0.1
dir="$PREF_ROOT/runs/bench-items"
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    --responses) responses="$2"; shift 2 ;;
    --per-prompt) per_prompt="$2"; shift 2 ;;
    --dim) dim="$2"; shift 2 ;;
    --answers) answers="$2"; shift 2 ;;
    --rank) J="$2"; shift 2 ;;
    --sweeps) sweeps="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --noise) noise="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) pref_die "unknown argument '$1' (see --help)" ;;
  esac
done

pref_ensure_packages time
[ -n "${PREF_NO_BUILD:-}" ] || pref_build  # PREF_NO_BUILD=1: use the pref built already
mkdir -p "$dir"
pref_log_environment "$dir/environment.txt"
R="$(python3 -c "print(int(float('$responses')))")"
P=$((R / per_prompt))
M=$((P * per_prompt * (per_prompt - 1) / 2))
data="$dir/data-u$users-r$R-p$per_prompt-d$dim-k$answers.h5"
if [ ! -f "$data" ]; then
  pref_log "generate: $users users, $P prompts x $per_prompt responses, $M comparisons, d = $dim"
  pref_mpirun "$ranks" "$PREF_BIN" generate --model attributes --users "$users" \
    --comparisons "$M" --prompts "$P" --responses-per-prompt "$per_prompt" \
    --embedding-dim "$dim" --embedding-noise "$noise" --answers-per-user "$answers" --seed 1 \
    --out "$data" >&2
fi

# run ITEMS SWEEPS: one fit; its per-rank peaks and CPU seconds in $dir/time-ITEMS-SWEEPS.txt.
run() {
  local items="$1" n="$2" tag="$1-$2"
  local times="$dir/time-$tag.txt"
  rm -f "$times"  # one line per rank, appended
  pref_log "run: mpirun -np $ranks pref fit --items $items --max-sweeps $n (load average $(cut -d' ' -f1 /proc/loadavg))"
  pref_mpirun "$ranks" /usr/bin/time -a -o "$times" -f 'bench %M %U %S %e' "$PREF_BIN" fit \
    --data "$data" --rank "$J" --items "$items" --init random --max-sweeps "$n" --tol 0 \
    --metrics "$dir/metrics-$tag.jsonl" --overwrite --out "$dir/model-$tag.h5" \
    >"$dir/fit-$tag.log" 2>&1 || { cat "$dir/fit-$tag.log" >&2; pref_die "fit failed"; }
}

rows=()
for items in comparisons embeddings; do
  load="$(cut -d' ' -f1 /proc/loadavg)"
  run "$items" 0
  run "$items" "$sweeps"
  rows+=("$(python3 - "$dir" "$items" "$sweeps" "$load" <<'EOF'
import json, sys
d, items, n, load = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def times(tag):
    rows = [l.split()[1:] for l in open(f"{d}/time-{tag}.txt") if l.startswith("bench ")]
    return ([float(r[0]) * 1024 for r in rows], sum(float(r[1]) + float(r[2]) for r in rows),
            max(float(r[3]) for r in rows))
p0, cpu0, _ = times(f"{items}-0")
pn, cpun, _ = times(f"{items}-{n}")
recs = [json.loads(l) for l in open(f"{d}/metrics-{items}-{n}.jsonl")][1:]
half = sum(r["seconds_user"] + r["seconds_comparison"] for r in recs) / len(recs)
sweep = sum(r["seconds_user"] + r["seconds_comparison"] + r["seconds_eval"] for r in recs) / len(recs)
user = sum(r["seconds_user"] for r in recs) / len(recs)
comp = sum(r["seconds_comparison"] for r in recs) / len(recs)
print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s |" % (
    items, user, comp, half, sweep, (cpun - cpu0) / n,
    " ".join("%.2f" % (b / 2**30) for b in sorted(pn)), load))
EOF
)")
done

cat <<EOF

pref fit on $data ($users users, $R responses in $P prompts, $M comparisons, d = $dim,
J = $J), $ranks ranks, $sweeps sweeps; $PREF_CORES cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)

| items | user half-step s | item half-step s | both half-steps s | wall s per sweep (with eval) | CPU s per sweep (all ranks) | peak GiB per rank | load before |
|---|---|---|---|---|---|---|---|
$(printf '%s\n' "${rows[@]}")

EOF
grep -h "Newton-CG" "$dir/fit-embeddings-$sweeps.log" | tail -n "$sweeps" || true
