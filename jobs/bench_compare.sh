#!/usr/bin/env bash
# Benchmark (not a test): one `pref fit` sweep of two pref binaries on the same data, in turn,
# so that both see the same machine load: "does this change leave the fit's speed as it was?"
# (issue 11's "the fit's figures in docs/performance.md are unchanged"). The data and the fit are
# those of jobs/bench_fit.sh (low-rank population, 10^6 users x 10^4 comparisons x 50 answers,
# J = 8, random init, --tol 0, figures of the last of --sweeps sweeps from the metrics file).
# Each round runs the base binary, then the current one with the same options, then, if
# --current-only-args is given, the current one with those options added (e.g. its new
# defaults). Prints each run's half-step and evaluation seconds, then the medians per variant
# and their ratios to the base. Wall times on a loaded machine are noisy; the load-independent
# figure is the CPU time: each round also runs every variant on one rank (no MPI waiting) for
# --sweeps sweeps and for 0 sweeps, and (user + system CPU seconds of the first - of the second)
# / --sweeps is its CPU per sweep, evaluation included (the loading and init cancel).
#
#   bash jobs/bench_compare.sh --base OLD/pref [--current build/solver/pref] [--rounds 3]
#        [--ranks 2] [--sweeps 3] [--users 1e6] [--args "..."] [--current-args "..."]
#        [--current-only-args "..."] [--dir runs/bench-compare]
#
# --args go to both binaries; --current-args only to the current one in its comparable run
# (options the base does not know that restore the base's behaviour, e.g. "--prior ridge
# --no-extrapolate").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

base="" current="" rounds=3 ranks=2 sweeps=3 users=1e6 args="" cargs="" conly=""
dir="$PREF_ROOT/runs/bench-compare"
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base="$2"; shift 2 ;;
    --current) current="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --sweeps) sweeps="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --args) args="$2"; shift 2 ;;
    --current-args) cargs="$2"; shift 2 ;;
    --current-only-args) conly="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) pref_die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$base" ] && [ -x "$base" ] || pref_die "--base: give the path of the other pref binary"
if [ -z "$current" ]; then
  pref_build
  current="$PREF_BIN"
fi
pref_ensure_packages time
[ -x "$current" ] || pref_die "--current: $current is not executable"
mkdir -p "$dir"
pref_log_environment "$dir/environment.txt"
data="$dir/data-u$users.h5"
if [ ! -f "$data" ]; then
  pref_mpirun 2 "$current" generate --model lowrank --rank 8 --users "$users" \
    --comparisons 1e4 --answers-per-user 50 --seed 1 --out "$data" >&2
fi

variants=(base current)
[ -n "$conly" ] && variants+=(current-defaults)
: >"$dir/runs.txt"
for r in $(seq 1 "$rounds"); do
  for v in "${variants[@]}"; do
    bin="$current" extra="$cargs"
    case "$v" in
      base) bin="$base" extra="" ;;
      current-defaults) extra="$conly" ;;
    esac
    metrics="$dir/fit-$v-$r.jsonl"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    pref_log "round $r: $v (load average $load)"
    # shellcheck disable=SC2086  # args and extra are lists of words
    pref_mpirun "$ranks" "$bin" fit --data "$data" --rank 8 --init random \
      --max-sweeps "$sweeps" --tol 0 $args $extra --metrics "$metrics" --overwrite \
      --out "$dir/model-$v.h5" >"$dir/fit-$v-$r.log" 2>&1 ||
      { cat "$dir/fit-$v-$r.log" >&2; pref_die "fit failed ($v)"; }
    # CPU per sweep on one rank: --sweeps sweeps minus 0 sweeps (loading and init cancel).
    cpu=()
    for s in "$sweeps" 0; do
      # shellcheck disable=SC2086  # args and extra are lists of words
      /usr/bin/time -f 'bench-cpu %U %S' -o "$dir/cpu-$v-$r-$s.txt" \
        env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$bin" fit --data "$data" \
        --rank 8 --init random --max-sweeps "$s" --tol 0 $args $extra --overwrite \
        --out "$dir/model-$v-cpu.h5" >"$dir/fit-$v-$r-cpu$s.log" 2>&1 ||
        { cat "$dir/fit-$v-$r-cpu$s.log" >&2; pref_die "fit failed ($v, one rank)"; }
      cpu+=("$(awk '/^bench-cpu/ {print $2 + $3}' "$dir/cpu-$v-$r-$s.txt")")
    done
    cpu_sweep="$(python3 -c 'import sys; print("%.3f" % ((float(sys.argv[1]) - float(sys.argv[2])) / int(sys.argv[3])))' "${cpu[0]}" "${cpu[1]}" "$sweeps")"
    tail -n 1 "$metrics" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(sys.argv[1], sys.argv[2], r["seconds_user"], r["seconds_comparison"], r["seconds_eval"],
      sys.argv[3], sys.argv[4])' "$v" "$r" "$load" "$cpu_sweep" >>"$dir/runs.txt"
  done
done

python3 - "$dir/runs.txt" "$base" "$current" "$args" "$cargs" "$conly" <<'EOF'
import statistics, sys
path, base, current, args, cargs, conly = sys.argv[1:7]
rows = [l.split() for l in open(path) if l.strip()]
print(f"\nbase: {base}\ncurrent: {current}\nboth: {args or '(defaults)'}; current also: "
      f"{cargs or '-'}; current-defaults also: {conly or '-'}\n")
print("| variant | round | user s | comparison s | sweep s | eval s | CPU s per sweep, 1 rank "
      "| load before |")
print("|---|---|---|---|---|---|---|---|")
for v, r, su, sc, se, load, cpu in rows:
    su, sc, se = float(su), float(sc), float(se)
    print(f"| {v} | {r} | {su:.3f} | {sc:.3f} | {su + sc:.3f} | {se:.3f} | {cpu} | {load} |")
med = {}
for v in dict.fromkeys(r[0] for r in rows):
    mine = [r for r in rows if r[0] == v]
    med[v] = [statistics.median(float(r[i]) for r in mine) for i in (2, 3, 4, 6)]
print("\n| variant | median user s | median comparison s | median sweep s | median eval s "
      "| median CPU s per sweep | sweep / base | eval / base | CPU per sweep / base |")
print("|---|---|---|---|---|---|---|---|---|")
b = med["base"]
for v, (su, sc, se, cpu) in med.items():
    print(f"| {v} | {su:.3f} | {sc:.3f} | {su + sc:.3f} | {se:.3f} | {cpu:.3f} | "
          f"{(su + sc) / (b[0] + b[1]):.3f} | {se / b[2]:.3f} | {cpu / b[3]:.3f} |")
EOF
