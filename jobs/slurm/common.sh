# shellcheck shell=bash
# Shared by the sbatch scripts of jobs/slurm (source it). Finds the repository, reads NAME=VALUE
# arguments into the environment, records what a job ran on, and picks the MPI launcher:
# `srun --mpi=pmix` inside a Slurm allocation, `mpirun` outside one (so the scripts also run as
# plain `bash jobs/slurm/fit.sbatch ...`).
#
# sbatch runs a spool copy of the script, so the scripts find the repository through PREF_ROOT
# (exported by the caller) or the submission directory (sbatch from the repository root).

# shellcheck source=jobs/setup.sh
source "$PREF_ROOT/jobs/setup.sh"

# pref_args "$@": every NAME=VALUE argument is exported (e.g. USERS=1e5 RUN_DIR=runs/x).
pref_args() {
  local a
  for a in "$@"; do
    case "$a" in
      [A-Za-z_]*=*) export "${a?}" ;;
      *) pref_die "argument '$a': expected NAME=VALUE (see the header of the script)" ;;
    esac
  done
}

# pref_launcher: sets LAUNCH to the MPI launcher of RANKS processes (default: the allocation's
# tasks under Slurm, 2 otherwise). LAUNCHER=srun|mpirun chooses (default: srun inside a Slurm
# allocation, mpirun outside one). mpirun runs under jobs/slurm/term_shield.py: Open MPI's
# mpirun aborts the job on SIGTERM (exit code 1, ranks killed) instead of letting the ranks
# checkpoint; the shield keeps SIGTERM from mpirun and turns a SIGTERM sent to the shield into
# SIGUSR1, which mpirun forwards to the ranks (docs/checkpoints.md, "Signals").
pref_launcher() {
  local launcher="${LAUNCHER:-}"
  if [ -z "$launcher" ]; then
    if [ -n "${SLURM_JOB_ID:-}" ] && command -v srun >/dev/null; then launcher=srun; else launcher=mpirun; fi
  fi
  case "$launcher" in
    srun)
      command -v srun >/dev/null || pref_die "LAUNCHER=srun: no srun on this machine"
      LAUNCH=(srun --mpi=pmix)
      if [ -n "${RANKS:-}" ]; then LAUNCH+=(--ntasks "$RANKS"); fi
      ;;
    mpirun)
      local n="${RANKS:-${SLURM_NTASKS:-2}}"
      LAUNCH=(python3 "$PREF_ROOT/jobs/slurm/term_shield.py" mpirun -np "$n")
      mpirun -np "$n" true >/dev/null 2>&1 || LAUNCH+=(--oversubscribe)
      ;;
    *) pref_die "LAUNCHER=$launcher: expected srun or mpirun" ;;
  esac
}

# pref_job_log STEP: writes RUN_DIR/STEP-<job id>.<restart count>.env.txt (Slurm variables,
# versions, commit) and logs the command line.
pref_job_log() {
  local f
  f="$RUN_DIR/$1-${SLURM_JOB_ID:-local$$}.${SLURM_RESTART_COUNT:-0}.env.txt"
  pref_log_environment "$f"
  {
    echo "srun: $(srun --version 2>/dev/null || echo none)"
    echo "launcher: ${LAUNCH[*]}"
    echo "script: $1 (restart ${SLURM_RESTART_COUNT:-0})"
  } >>"$f"
  pref_log "$1: environment in $f"
}

pref_need_binary() {
  [ -x "$PREF_BIN" ] || pref_die "no $PREF_BIN: build pref first (bash jobs/test.sh, or cmake), or set PREF_BUILD_DIR"
}
