#!/usr/bin/env bash
# The test suite (README.md): installs what is missing, builds pref (Release, into build/) and
# runs every test with ctest. Exits non-zero when any test fails. Extra arguments go to ctest,
# e.g. `bash jobs/test.sh -L mpi` or `bash jobs/test.sh -R test_base`.
#
# Environment: those of jobs/setup.sh (PREF_BUILD_DIR, PREF_CMAKE_ARGS, PREF_JOBS).
#SBATCH --job-name=pref-test
#SBATCH --ntasks=2
#SBATCH --time=01:00:00
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"  # sbatch runs a spool copy
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

pref_ensure_packages
pref_build
pref_log "test: ctest --output-on-failure${*:+ $*} in $PREF_BUILD_DIR"
cd "$PREF_BUILD_DIR"
status=0
ctest --output-on-failure "$@" || status=$?
if [ "$status" -eq 0 ]; then
  pref_log "test: all passed"
else
  pref_log "test: FAILED (ctest exit status $status)"
fi
exit "$status"
