# shellcheck shell=bash disable=SC2120  # (pref_ensure_packages takes optional extras)
# Shared by the job scripts (source it, do not run it): installs what is missing, builds pref,
# and runs MPI programs. Works on a fresh Debian 12 machine as root, in CI and under sbatch.
#
# Environment:
#   PREF_BUILD_DIR   build directory (default: <repository>/build)
#   PREF_CMAKE_ARGS  extra arguments for the first configure, e.g. "-DPREF_WERROR=ON"
#   PREF_JOBS        parallel build jobs (default: the number of cores)

# The repository root: this file lives in <root>/jobs. Under sbatch the job script itself runs
# from a spool copy, so the job scripts find this file through SLURM_SUBMIT_DIR when needed.
PREF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREF_BUILD_DIR="${PREF_BUILD_DIR:-$PREF_ROOT/build}"
PREF_BIN="$PREF_BUILD_DIR/solver/pref"

# Debian packages pref needs to build, test and run (see README.md).
PREF_PACKAGES=(libopenmpi-dev openmpi-bin libscalapack-openmpi-dev libeigen3-dev
  libhdf5-openmpi-dev hdf5-tools libopenblas-dev libgtest-dev cmake g++ pkg-config
  libcli11-dev libfmt-dev nlohmann-json3-dev python3-h5py)

# Cores of this machine (nproc honours OMP_NUM_THREADS, which is set below).
PREF_CORES="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"

# mpirun refuses to start as root without these; oversubscribed ranks must yield, not spin.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1
# One thread per rank unless asked otherwise: ranks already use the cores.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

pref_log() { printf '[%s %s] %s\n' "$(basename "$0")" "$(date +%H:%M:%S)" "$*" >&2; }
pref_die() { pref_log "error: $*"; exit 1; }

# pref_ensure_packages [extra packages...]: installs the missing ones with apt-get. Does nothing
# (and needs no network or root) when all are installed.
pref_ensure_packages() {
  local missing=() p
  for p in "${PREF_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    pref_log "packages: all present"
    return 0
  fi
  command -v apt-get >/dev/null || pref_die "missing packages (${missing[*]}) and no apt-get: install them by hand"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || pref_die "missing packages (${missing[*]}): run as root or install them"
    sudo=(sudo)
  fi
  pref_log "packages: installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" </dev/null
}

# pref_build: configures (only when the build directory has no CMakeCache.txt) and builds the
# Release build incrementally.
pref_build() {
  if [ -f "$PREF_BUILD_DIR/CMakeCache.txt" ]; then
    local type
    type="$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$PREF_BUILD_DIR/CMakeCache.txt")"
    pref_log "configure: $PREF_BUILD_DIR is configured already (${type:-no} build type)"
  else
    pref_log "configure: Release into $PREF_BUILD_DIR"
    # shellcheck disable=SC2086  # PREF_CMAKE_ARGS is a list of words
    cmake -S "$PREF_ROOT" -B "$PREF_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${PREF_CMAKE_ARGS:-} >/dev/null
  fi
  pref_log "build: cmake --build $PREF_BUILD_DIR"
  # Progress lines (and those of a re-run of cmake) are dropped; warnings and errors pass through.
  if ! cmake --build "$PREF_BUILD_DIR" --parallel "${PREF_JOBS:-$PREF_CORES}" 2>&1 |
    { grep -v -E '^\[ *[0-9]+%\] (Built target|Building|Linking)|^Consolidate compiler|^-- ' || true; }; then
    pref_die "build failed"
  fi
  [ -x "$PREF_BIN" ] || pref_die "build produced no $PREF_BIN"
}

# pref_mpirun N command...: mpirun -np N, adding --oversubscribe only when the machine (or the
# Slurm allocation) has fewer than N slots.
declare -A PREF_NEEDS_OVERSUBSCRIBE=()
pref_mpirun() {
  local n="$1"
  shift
  if [ -z "${PREF_NEEDS_OVERSUBSCRIBE[$n]:-}" ]; then
    if mpirun -np "$n" true >/dev/null 2>&1; then
      PREF_NEEDS_OVERSUBSCRIBE[$n]=no
    else
      PREF_NEEDS_OVERSUBSCRIBE[$n]=yes
    fi
  fi
  local extra=()
  [ "${PREF_NEEDS_OVERSUBSCRIBE[$n]}" = yes ] && extra=(--oversubscribe)
  mpirun -np "$n" "${extra[@]}" "$@"
}

# pref_log_environment FILE: what the job ran on, beside its results.
pref_log_environment() {
  {
    echo "date: $(date -Is)"
    echo "host: $(hostname)  cores: $PREF_CORES  memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "commit: $(git -C "$PREF_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$PREF_ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
    echo "pref: $("$PREF_BIN" --version 2>/dev/null || echo unknown)"
    echo "mpirun: $(mpirun --version 2>/dev/null | head -n1)"
    echo "hdf5: $(dpkg-query -W -f='${Version}' libhdf5-openmpi-dev 2>/dev/null)"
    echo "compiler: $(c++ --version | head -n1)"
    printenv | grep -E '^SLURM_' | sort || true
  } >"$1"
}

# pref_data_file DIR SEED GENERATE-ARGS...: generates (once) the label file of
# `pref generate GENERATE-ARGS --seed SEED` in DIR and prints its path; the name encodes the
# arguments, so a changed setting gets its own file.
pref_data_file() {
  local dir="$1" seed="$2"
  shift 2
  local name
  name="$(printf '%s' "$*" | tr -s ' -' '_' | tr -d '/')"
  local f="$dir/data$name-s$seed.h5"
  if [ ! -f "$f" ]; then
    pref_log "generate: seed $seed -> $f"
    "$PREF_BIN" generate "$@" --seed "$seed" --out "$f" >/dev/null 2>&1 ||
      pref_die "generate failed (pref generate $* --seed $seed)"
  fi
  printf '%s\n' "$f"
}
