#!/usr/bin/env bash
# Benchmark (not a test): the cost of one sweep under the population prior against the ridge,
# issue 12's "a sweep costs at most 10% more than a ridge sweep at J = 8". On one low-rank
# population, fits with each user regularization run in turn (prior, ridge, prior, ridge, ...,
# --pairs times), each for exactly --sweeps sweeps (--tol 0), so that both see the same machine
# load; the per-sweep seconds of each half-step and of the evaluation come from the fits' own
# log lines (the SVD init and the file reading are left out: they do not depend on the prior).
# Prints the medians over all sweeps of all runs of each, and the ratios prior / ridge: of the
# whole sweep, and of the user half-step (where the prior's work is). Both run with `pref fit`'s
# defaults for their prior, so the ridge extrapolates and the prior does not (what a user gets);
# --same-extrapolation runs both with --no-extrapolate, which compares the half-steps alone.
# Wall times on a loaded machine are noisy; the load-independent figure is the CPU time: each
# pair also runs both on one rank (no MPI waiting) for --sweeps sweeps and for 0 sweeps, and
# (user + system CPU seconds of the first - of the second) / --sweeps is the CPU per sweep.
#
#   bash jobs/bench_prior_sweep.sh [--users 1e5] [--comparisons 1e4] [--answers 40] [--rank 8]
#                                  [--sweeps 10] [--pairs 3] [--ranks 2] [--same-extrapolation]
#                                  [--dir runs/bench-prior-sweep]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

users=1e5 comparisons=1e4 answers=40 rank=8 sweeps=10 pairs=3 ranks=2 same=0
dir="$PREF_ROOT/runs/bench-prior-sweep"
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users="$2"; shift 2 ;;
    --comparisons) comparisons="$2"; shift 2 ;;
    --answers) answers="$2"; shift 2 ;;
    --rank) rank="$2"; shift 2 ;;
    --sweeps) sweeps="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --same-extrapolation) same=1; shift ;;
    --dir) dir="$2"; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) pref_die "unknown argument '$1' (see --help)" ;;
  esac
done

pref_ensure_packages time
pref_build
mkdir -p "$dir"
pref_log_environment "$dir/environment.txt"
data="$(pref_data_file "$dir" 5 --model lowrank --users "$users" --comparisons "$comparisons" \
  --answers-per-user "$answers" --rank "$rank")"
extra=()
[ "$same" = 1 ] && extra=(--no-extrapolate)
logs=()
: >"$dir/cpu.txt"
for p in $(seq 1 "$pairs"); do
  for kind in population ridge; do
    log="$dir/fit-$kind-$p.log"
    pref_log "pair $p: --prior $kind"
    pref_mpirun "$ranks" "$PREF_BIN" fit --data "$data" --rank "$rank" --prior "$kind" \
      --max-sweeps "$sweeps" --tol 0 "${extra[@]}" --out "$dir/model.h5" --overwrite \
      2>"$log" || pref_die "fit failed: see $log"
    logs+=("$log")
    for n in "$sweeps" 0; do
      /usr/bin/time -f "$kind $n %U %S" -a -o "$dir/cpu.txt" "$PREF_BIN" fit --data "$data" \
        --rank "$rank" --prior "$kind" --max-sweeps "$n" --tol 0 "${extra[@]}" \
        --out "$dir/model.h5" --overwrite 2>/dev/null || pref_die "fit failed (one rank, $n sweeps)"
    done
  done
done
rm -f "$dir/model.h5"
uptime >>"$dir/environment.txt"

python3 - "$sweeps" "$dir/cpu.txt" "${logs[@]}" <<'PY'
import re, statistics as st, sys
sweeps, cpu_file = int(sys.argv[1]), sys.argv[2]
del sys.argv[1:3]
pat = re.compile(r"sweep +(\d+):.* user ([\d.]+)s comparison ([\d.]+)s eval ([\d.]+)s")
per = {"population": [], "ridge": []}
for path in sys.argv[1:]:
    kind = "population" if "fit-population-" in path else "ridge"
    for line in open(path):
        m = pat.search(line)
        if m and int(m[1]) > 0:  # sweep 0 is the initial evaluation alone
            per[kind].append(tuple(float(m[i]) for i in (2, 3, 4)))
med = {}
print(f"{'prior':>10} {'sweeps':>6} {'user s':>8} {'comparison s':>12} {'eval s':>8} {'sweep s':>8}")
for k, rows in per.items():
    u, c, e = (st.median(r[i] for r in rows) for i in range(3))
    s = st.median(sum(r) for r in rows)
    med[k] = (u, s)
    print(f"{k:>10} {len(rows):>6} {u:8.3f} {c:12.3f} {e:8.3f} {s:8.3f}")
print(f"prior / ridge, wall: sweep {med['population'][1] / med['ridge'][1]:.3f}, "
      f"user half-step {med['population'][0] / med['ridge'][0]:.3f} (medians over sweeps)")
# CPU: the runs of one rank, in order: kind, sweeps, user s, system s.
runs = [l.split() for l in open(cpu_file) if l.strip()]
cpu = {}
for k in ("population", "ridge"):
    full = [float(r[2]) + float(r[3]) for r in runs if r[0] == k and int(r[1]) == sweeps]
    zero = [float(r[2]) + float(r[3]) for r in runs if r[0] == k and int(r[1]) == 0]
    cpu[k] = (st.median(full) - st.median(zero)) / sweeps
    print(f"{k:>10} one rank: CPU per sweep {cpu[k]:.3f} s (median of {len(full)} runs of "
          f"{sweeps} sweeps {st.median(full):.2f} s - of 0 sweeps {st.median(zero):.2f} s)")
print(f"prior / ridge, CPU per sweep on one rank: {cpu['population'] / cpu['ridge']:.3f}")
PY
pref_log "logs: $dir"
