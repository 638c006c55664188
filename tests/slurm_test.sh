#!/usr/bin/env bash
# The sbatch scripts of jobs/slurm on a real single-node Slurm (jobs/slurm/local_slurm.sh):
#  1. generate, fit and evaluate jobs complete (sbatch --wait) and log their environment;
#  2. fit jobs signalled with `scancel --signal=USR1 <job>` (the step), with
#     `scancel --batch --signal=USR1 <job>` (the batch script, which forwards it), with
#     `scancel --full --signal=TERM <job>` (SIGTERM to every process, as at a time limit; mpirun
#     under jobs/slurm/term_shield.py) checkpoint, exit with 3, requeue themselves and resume to
#     a model byte-identical to the uninterrupted fit of step 1; one cancelled with
#     `scancel <job>` (mpirun launcher) checkpoints, exits with 3, is not requeued, and its
#     resubmission resumes to the same model;
#  3. `jobs/scaling.sh strong --array` (one job array per rank count, waited for with a dependency
#     job) on a tiny problem writes one CSV row per (ranks, exchange) with positive times, each
#     run at its rank count, and a PNG.
# Usage: slurm_test.sh PREF_BINARY. Starts the daemons (and stops them at exit) unless a local
# Slurm is running already. Exit code 77 (ctest: skipped) when Slurm cannot be installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "$1")"
export PREF_ROOT="$ROOT"
PREF_BUILD_DIR="$(cd "$(dirname "$BIN")/.." && pwd)"
export PREF_BUILD_DIR
export PREF_SLURM_DIR="${PREF_SLURM_DIR:-/tmp/pref-slurm}"
WORK="${PREF_TEST_TMP:-/tmp}/slurm_test.$$"
LOCAL_SLURM="$ROOT/jobs/slurm/local_slurm.sh"

say() { printf '[slurm_test %s] %s\n' "$(date +%T)" "$*"; }
fail() {
  say "FAIL: $*"
  exit 1
}

started=0
cleanup() {
  if [ "$started" = 1 ]; then bash "$LOCAL_SLURM" stop || true; fi
}
trap cleanup EXIT

if bash "$LOCAL_SLURM" status >/dev/null 2>&1; then
  say "a local Slurm is running already ($PREF_SLURM_DIR): using it"
else
  started=1
  rc=0
  bash "$LOCAL_SLURM" start >/dev/null || rc=$?
  if [ "$rc" = 4 ]; then
    say "SKIP: slurm-wlm and munge cannot be installed on this machine"
    exit 77
  fi
  [ "$rc" = 0 ] || fail "jobs/slurm/local_slurm.sh start failed (exit code $rc)"
fi
export SLURM_CONF="$PREF_SLURM_DIR/slurm.conf"
rm -rf "$WORK"
mkdir -p "$WORK"
say "run directory $WORK"

FIT=(FIT_RANK=4 MAX_SWEEPS=60 TOL=0 CHECKPOINT_EVERY=5 "FIT_ARGS=--init random --seed 5")

# 1. generate, fit, evaluate
sbatch --wait --output="$WORK/%x-%j.out" "$ROOT/jobs/slurm/generate.sbatch" RUN_DIR="$WORK" \
  USERS=20000 COMPARISONS=2000 ANSWERS=40 SEED=11 || fail "generate job failed"
[ -f "$WORK/data.h5" ] || fail "no data.h5"
grep -q '^SLURM_JOB_ID=' "$WORK"/generate-*.0.env.txt || fail "generate logged no SLURM_JOB_ID"
sbatch --wait --output="$WORK/%x-%j.out" "$ROOT/jobs/slurm/fit.sbatch" RUN_DIR="$WORK" \
  MODEL="$WORK/reference.h5" CKPT_DIR="$WORK/ck-reference" METRICS="$WORK/reference.jsonl" \
  "${FIT[@]}" || fail "fit job failed"
[ -f "$WORK/reference.h5" ] || fail "no reference.h5"
env_file="$(ls "$WORK"/fit-*.0.env.txt)"
for key in '^SLURM_JOB_ID=' '^pref: pref ' '^mpirun: mpirun' '^commit: ' '^launcher: srun --mpi=pmix'; do
  grep -q "$key" "$env_file" || fail "$env_file lacks $key"
done
sbatch --wait --output="$WORK/%x-%j.out" "$ROOT/jobs/slurm/evaluate.sbatch" RUN_DIR="$WORK" \
  MODEL="$WORK/reference.h5" || fail "evaluate job failed"
grep -q '"auc"' "$WORK/evaluate-test.json" || fail "evaluate-test.json has no auc"
say "generate, fit and evaluate jobs completed"

# 2. signalled fits: checkpoint, exit 3, requeue (or, when cancelled, resubmit), resume, same model
#  step:      scancel --signal=USR1 (the step's ranks)
#  batch:     scancel --batch --signal=USR1 (the script, which forwards it)
#  term-full: LAUNCHER=mpirun, scancel --full --signal=TERM: SIGTERM to every process of the
#             job (script, term_shield.py, mpirun, ranks) as at a time limit; requeued
#  cancel:    LAUNCHER=mpirun, scancel: SIGTERM to every process, SIGKILL after KillWait; the
#             job stays cancelled (not requeued) and is resubmitted
for variant in step batch term-full cancel; do
  launcher=()
  case "$variant" in term-full | cancel) launcher=(LAUNCHER=mpirun) ;; esac
  job_args=("$ROOT/jobs/slurm/fit.sbatch" RUN_DIR="$WORK" MODEL="$WORK/$variant.h5"
    CKPT_DIR="$WORK/ck-$variant" METRICS="$WORK/$variant.jsonl" "${launcher[@]}" "${FIT[@]}")
  job="$(sbatch --parsable --output="$WORK/%x-$variant-%j.out" "${job_args[@]}")"
  for _ in $(seq 1200); do
    [ -f "$WORK/ck-$variant/ckpt-000005.h5" ] && break
    sleep 0.05
  done
  [ -f "$WORK/ck-$variant/ckpt-000005.h5" ] || fail "$variant: job $job wrote no checkpoint in 60 s"
  case "$variant" in
    step) scancel --signal=USR1 "$job" ;;
    batch) scancel --batch --signal=USR1 "$job" ;;
    term-full) scancel --full --signal=TERM "$job" ;;
    cancel) scancel "$job" ;;
  esac
  say "$variant: signalled job $job"
  state=""
  for _ in $(seq 300); do
    state="$(scontrol show job "$job" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')"
    case "$state" in
      COMPLETED | FAILED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;;
      CANCELLED) [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break ;;  # (ended, not completing)
    esac
    sleep 1
  done
  restarts="$(scontrol show job "$job" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')"
  out="$(ls "$WORK"/pref-fit-"$variant"-"$job".out)"
  grep -q "after a checkpoint: exit code 3" "$out" || { cat "$out"; fail "$variant: no stop in $out"; }
  case "$variant" in
    step | batch)
      grep -q "stopped by SIGUSR1 after a checkpoint" "$out" || fail "$variant: not stopped by SIGUSR1"
      ;;
    *)
      grep -q "term_shield: received SIGTERM: sending SIGUSR1 to mpirun" "$out" ||
        { cat "$out"; fail "$variant: term_shield.py got no SIGTERM"; }
      ;;
  esac
  if [ "$variant" = batch ]; then
    grep -q "received SIGUSR1, forwarding it" "$out" || fail "batch: the script did not forward"
  fi
  if [ "$variant" = cancel ]; then
    [ "$state" = CANCELLED ] || { cat "$out"; fail "cancel: job $job ended $state"; }
    [ "${restarts:-0}" = 0 ] || fail "cancel: the cancelled job $job was requeued"
    grep -q "job $job was cancelled (state .*): not requeued" "$out" || { cat "$out"; fail "cancel: no 'not requeued' in $out"; }
    [ ! -f "$WORK/$variant.h5" ] || fail "cancel: a model was written before the resubmission"
    sbatch --wait --output="$WORK/%x-$variant-resubmitted-%j.out" "${job_args[@]}" >/dev/null ||
      fail "cancel: the resubmitted job failed"
    out="$(ls "$WORK"/pref-fit-"$variant"-resubmitted-*.out)"
    how="cancelled, resubmitted"
  else
    [ "$state" = COMPLETED ] || { cat "$out"; fail "$variant: job $job ended $state"; }
    [ "${restarts:-0}" -ge 1 ] || { cat "$out"; fail "$variant: job $job was not requeued"; }
    grep -q "requeueing job $job" "$out" || fail "$variant: no requeue in $out"
    [ -f "$WORK/fit-$job.1.env.txt" ] || fail "$variant: no environment log of the requeued run"
    how="requeued (restarts $restarts)"
  fi
  grep -q "resume: $WORK/ck-$variant/ckpt-0000" "$out" || { cat "$out"; fail "$variant: the next run did not resume"; }
  cmp "$WORK/reference.h5" "$WORK/$variant.h5" || fail "$variant: the model differs from the uninterrupted fit"
  say "$variant: checkpointed, $how, resumed; model byte-identical"
done

# 3. scaling study as job arrays
scaling="$WORK/scaling"
PREF_BUILD_DIR="$PREF_BUILD_DIR" bash "$ROOT/jobs/scaling.sh" strong --array USERS=2000 COMPARISONS=500 \
  SWEEPS=2 RANKS_LIST="1 2" EXCHANGES="ship reduce" RUN_DIR="$scaling" >"$WORK/scaling.out" 2>&1 ||
  { cat "$WORK/scaling.out"; fail "jobs/scaling.sh strong --array failed"; }
grep -q "submitted array job" "$WORK/scaling.out" || fail "scaling: no array job was submitted"
[ -s "$scaling/scaling.png" ] || fail "scaling: no scaling.png (or it is empty)"
python3 - "$scaling/scaling.csv" <<'EOF' || fail "scaling: $scaling/scaling.csv is wrong"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
got = sorted((int(r["ranks"]), r["exchange"]) for r in rows)
want = sorted((n, ex) for n in (1, 2) for ex in ("ship", "reduce"))
assert got == want, f"rows {got}, expected one per (ranks, exchange) {want}"
for r in rows:
    for k in ("seconds_user", "seconds_comparison", "seconds_eval", "seconds_sweep", "efficiency"):
        assert float(r[k]) > 0, f"{k} = {r[k]} in {r}"
    assert int(r["sweeps"]) == 2 and int(r["train_labels"]) > 0, r
    assert (int(r["bytes_per_sweep"]) > 0) == (int(r["ranks"]) > 1), r
EOF
for n in 1 2; do
  for ex in ship reduce; do
    grep -q ", $n ranks x " "$scaling/fit-$n-$ex.log" || fail "scaling: the run $n-$ex did not run at $n ranks"
  done
done
[ "$(find "$scaling" -name 'slurm-*_*.out' | wc -l)" = 4 ] || fail "scaling: expected 4 array task outputs"
say "scaling --array: 2 arrays (1 and 2 ranks) x 2 patterns, CSV and PNG collected"

rm -rf "$WORK"
say "PASS"
