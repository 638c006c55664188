#!/usr/bin/env bash
# The checks beyond the test suite (docs/design.md, "Checks"), each in a build directory of its
# own beside build/; CI (.ci/run) runs both after `bash jobs/test.sh`. Exits non-zero when a
# check fails.
#
#   bash jobs/check.sh sanitize [ctest args]
#       AddressSanitizer + UndefinedBehaviorSanitizer build (clang, -DPREF_FUZZ=ON, which implies
#       -DPREF_SANITIZE=ON; Release optimization) into build-fuzz/, then ctest of the MPI tests at
#       1 and 2 ranks, the fuzz regressions, test_kernels and the fast CLI tests (SANITIZE_*
#       below). Extra arguments go to ctest, e.g. `-R test_exchange`.
#   bash jobs/check.sh format [--fix]
#       The pinned clang-format (.clang-format, clang-format 14 of Debian 12) on every C++ file
#       git tracks: lists the files it would change and fails, or with --fix rewrites them.
#   bash jobs/check.sh fuzz [seconds]
#       libFuzzer targets (clang, -DPREF_FUZZ=ON) into build-fuzz/, each run for `seconds`
#       (default 60) from its seed corpus tests/fuzz/corpus/<target>/. New inputs go to
#       build-fuzz/corpus/<target>/, a failing input to build-fuzz/crashes/<target>/: fix the
#       bug and keep the input as tests/fuzz/regressions/<target>/<name> (test_fuzz_regressions
#       feeds it in every build).
#
# The two share build-fuzz/: one sanitized compile of pref serves the fuzzers and the sanitized
# tests (the library carries libFuzzer's coverage instrumentation, which the tests do not use),
# so CI compiles pref twice (Release and this), not three times (docs/design.md, "Checks").
#
# Environment: those of jobs/setup.sh (PREF_CMAKE_ARGS, PREF_JOBS); PREF_BUILD_DIR is not used,
# the directories above are fixed.
#SBATCH --job-name=pref-check
#SBATCH --ntasks=2
#SBATCH --time=01:00:00
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -f "$here/setup.sh" ] || here="${SLURM_SUBMIT_DIR:-.}/jobs"  # sbatch runs a spool copy
mode="${1:-}"
[ $# -gt 0 ] && shift
case "$mode" in
  sanitize | fuzz) PREF_BUILD_DIR="$(cd "$here/.." && pwd)/build-fuzz" ;;
  format) ;;
  *)
    echo "usage: bash jobs/check.sh sanitize [ctest args] | fuzz [seconds] | format [--fix]" >&2
    exit 2
    ;;
esac
# shellcheck source=jobs/setup.sh
source "$here/setup.sh"

# The sanitized ctest selection: every MPI test at 1 and 2 ranks (labels r1, r2; 61 s in all
# under ASan, test_fit 25 s a rank count) and the fuzz regressions; of the tests without MPI
# ranks, test_kernels (the vectorized label kernels) and the CLI tests test_bad_input (47 s)
# and test_import, which cover the input errors. The other CLI tests run the sanitized `pref`
# under mpirun dozens of times (test_checkpoint alone took 508 s). Measured in docs/design.md.
SANITIZE_LABELS='^(r1|r2|fuzz)$'
SANITIZE_CLI='^(test_bad_input|test_import|test_kernels)$'

# The sanitized clang build both checks use: clang++ with libFuzzer and its sanitizer runtimes,
# and LLVM's OpenMP runtime (Debian's clang finds no OpenMP without libomp-14-dev).
configure_sanitized() {
  pref_ensure_packages clang libclang-rt-14-dev libomp-14-dev
  if [ ! -f "$PREF_BUILD_DIR/CMakeCache.txt" ]; then
    pref_log "configure: clang, -DPREF_FUZZ=ON (ASan + UBSan) into $PREF_BUILD_DIR"
    # shellcheck disable=SC2086  # PREF_CMAKE_ARGS is a list of words
    CC=clang CXX=clang++ cmake -S "$PREF_ROOT" -B "$PREF_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
      -DPREF_FUZZ=ON ${PREF_CMAKE_ARGS:-} >/dev/null
  fi
}

check_sanitize() {
  pref_ensure_packages
  configure_sanitized
  cd "$PREF_BUILD_DIR"
  # Only what the selected tests run: a test is named after its executable (name or name.rN).
  local selected=(-L "$SANITIZE_LABELS") targets
  targets="$({ ctest -N "${selected[@]}" "$@"; ctest -N -R "$SANITIZE_CLI"; } |
    sed -n 's/^ *Test *#[0-9]*: \([A-Za-z0-9_]*\).*/\1/p' | sort -u | tr '\n' ' ')"
  pref_log "build: pref $targets"
  # shellcheck disable=SC2086  # targets is a list of words
  cmake --build . --parallel "${PREF_JOBS:-$PREF_CORES}" --target pref $targets 2>&1 |
    { grep -v -E '^\[ *[0-9]+%\] (Built target|Building|Linking)|^Consolidate compiler|^-- ' || true; }
  [ "${PIPESTATUS[0]}" -eq 0 ] || pref_die "build failed"
  local status=0
  pref_log "sanitize: ctest -L '$SANITIZE_LABELS'${*:+ $*}"
  ctest --output-on-failure "${selected[@]}" "$@" || status=$?
  if [ $# -eq 0 ]; then
    pref_log "sanitize: ctest -R '$SANITIZE_CLI'"
    ctest --output-on-failure -R "$SANITIZE_CLI" || status=$?
  fi
  return "$status"
}

check_fuzz() {
  local seconds="${1:-60}"
  configure_sanitized
  local targets=(import options files) t status=0
  pref_log "build: fuzz targets ${targets[*]}"
  # shellcheck disable=SC2046  # one word per target
  cmake --build "$PREF_BUILD_DIR" --parallel "${PREF_JOBS:-$PREF_CORES}" \
    --target $(printf 'fuzz_%s ' "${targets[@]}") 2>&1 |
    { grep -v -E '^\[ *[0-9]+%\] (Built target|Building|Linking)|^-- ' || true; }
  [ "${PIPESTATUS[0]}" -eq 0 ] || pref_die "build failed"
  check_triage || return 1
  for t in "${targets[@]}"; do
    local bin="$PREF_BUILD_DIR/tests/fuzz/fuzz_$t"
    [ -x "$bin" ] || pref_die "build produced no $bin"
    local corpus="$PREF_BUILD_DIR/corpus/$t" crashes="$PREF_BUILD_DIR/crashes/$t"
    mkdir -p "$corpus" "$crashes"
    pref_log "fuzz: $t for ${seconds} s from tests/fuzz/corpus/$t"
    # The file readers' target: HDF5 itself asks malloc for whatever size a damaged file
    # declares and treats a null result as an error (which pref reports as bad input), so
    # malloc may return null there and a single allocation is not limited (the RSS still is);
    # pref's own allocations go through operator new, whose failure still fails the run. It
    # initializes MPI, which Open MPI does not undo: no leak detection. HDF5's metadata cache
    # also allocates what a damaged object header declares (21 GB for one 7-kB input found on
    # 2026-12-07) and then touches part of it, which broke the RSS limit: single allocations
    # above 2 GiB return null (max_allocation_size_mb), which HDF5 reports as an error.
    local env=() extra=()
    if [ "$t" = files ]; then
      env=(ASAN_OPTIONS="allocator_may_return_null=1:max_allocation_size_mb=2048:detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}")
      extra=(-malloc_limit_mb=1048576 -detect_leaks=0)
    fi
    # New inputs go to the first corpus directory (the build's), never into the repository.
    # A memory error inside HDF5's own decoder of a damaged file, or HDF5 looping on one (the
    # first frame below the sanitizer's and libFuzzer's runtime and the C library is in
    # libhdf5), is a defect of the Debian package, not of pref:
    # its input is kept in crashes/<target>/hdf5/, reported, and fuzzing goes on for the rest
    # of the time. Any other failure fails the check.
    local start=$SECONDS left restarts=0 log="$PREF_BUILD_DIR/fuzz_$t.log" units=0 failed=0
    while :; do
      left=$((seconds - (SECONDS - start)))
      [ "$left" -ge 1 ] || break
      if env "${env[@]}" "$bin" -max_total_time="$left" -timeout=10 -rss_limit_mb=2048 \
        "${extra[@]}" -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" \
        "$PREF_ROOT/tests/fuzz/corpus/$t" >"$log" 2>&1; then
        units=$((units + $(fuzz_units "$log")))
        break
      fi
      if hdf5_defect "$log"; then
        restarts=$((restarts + 1))
        mkdir -p "$crashes/hdf5"
        local a
        for a in "$crashes"/crash-* "$crashes"/leak-* "$crashes"/oom-* "$crashes"/timeout-*; do
          [ -e "$a" ] || continue
          mv "$a" "$crashes/hdf5/"
        done
        # The restart begins again from the repository's seeds: the inputs found so far lie
        # near the defect (they reach it again within seconds, and HDF5's error paths leak).
        find "$corpus" -mindepth 1 -delete
        units=$((units + $(fuzz_units "$log")))
        grep -m1 -A6 -E '^==[0-9]+==ERROR' "$log" >&2
        pref_log "fuzz: $t: a memory error inside libhdf5 on a damaged file (HDF5's defect, not pref's; input in $crashes/hdf5/); fuzzing on"
        cp "$log" "$crashes/hdf5/fuzz_$t.$restarts.log"
        continue
      fi
      status=1 failed=1
      tail -n 40 "$log" >&2
      pref_log "fuzz: $t FAILED; input(s) in $crashes (keep as tests/fuzz/regressions/$t/ once fixed)"
      break
    done
    if [ "$failed" -eq 0 ]; then
      local aside=""
      [ "$restarts" -eq 0 ] || aside=" ($restarts HDF5 defects set aside)"
      pref_log "fuzz: $t: $units inputs, no failure$aside"
    fi
  done
  return "$status"
}

# The triage below, on the reports kept in tests/fuzz/triage/: those under hdf5/ are HDF5's
# defects, those under pref/ are not (a wrong triage either fails CI on HDF5's defects or, worse,
# hides one of pref's).
check_triage() {
  local f bad=0
  for f in "$PREF_ROOT"/tests/fuzz/triage/hdf5/*.log; do
    hdf5_defect "$f" || { pref_log "fuzz: triage takes $f for pref's failure"; bad=1; }
  done
  for f in "$PREF_ROOT"/tests/fuzz/triage/pref/*.log; do
    ! hdf5_defect "$f" || { pref_log "fuzz: triage takes $f for HDF5's defect"; bad=1; }
  done
  [ "$bad" -eq 0 ] && pref_log "fuzz: triage of the kept reports: right"
  return "$bad"
}

# The inputs a libFuzzer log says it ran (0 when it printed no statistics).
fuzz_units() {
  awk '/^stat::number_of_executed_units/ { n = $2 } END { print n + 0 }' "$1"
}

# True when the first sanitizer report (or libFuzzer timeout, deadly signal, out-of-memory or exit)
# of a libFuzzer log has, as its first stack frame outside the runtime, a frame in libhdf5 (HDF5 is
# not instrumented: such a report comes from an interceptor, e.g. memcpy or strdup, called by HDF5's
# decoder, from a SEGV inside HDF5 or inside the C library's memcpy called by HDF5, from HDF5
# aborting, or from HDF5 looping on a damaged file, which may end as a timeout or, when the loop
# allocates, as an out-of-memory report whose largest live allocations HDF5 made). The runtime's
# frames are the C library's (glibc's sources under sysdeps/ or libc.so), libFuzzer's (fuzzer::) and
# those in the fuzz target's own executable whose function is a plain C name (the interceptors:
# memcpy, strdup, __interceptor_*, __asan_*); pref's code there has C++ names, and an abort of
# pref's (an uncaught exception) passes through libstdc++, which is not skipped. (A CI run of
# 2026-12-07 failed on a SEGV whose frame #0 was glibc's memcpy, #1 the interceptor and #2 HDF5's
# H5F__accum_read.)
hdf5_defect() {
  awk '/^==[0-9]+== ?ERROR: (AddressSanitizer|libFuzzer: (timeout|deadly signal|out-of-memory|fuzz target exited))/ { in_report = 1; next }
       in_report && /^ *#[0-9]+ / {
         if ($0 ~ /__interceptor_|__asan_|__asan::|__lsan|__ubsan|__interception|__sanitizer|libclang_rt|compiler-rt/) next
         if ($0 ~ /sysdeps\/|\/libc\.so|\(libc\.so| in fuzzer::/) next
         if ($0 ~ / in [A-Za-z_][A-Za-z_0-9]* \(/ && $0 ~ /\/fuzz_[a-z]+\+0x/) next
         found = ($0 ~ /libhdf5/); exit
       }
       END { exit found ? 0 : 1 }' "$1"
}

check_format() {
  pref_ensure_packages clang-format-14 git
  local files bad=() f
  mapfile -t files < <(git -C "$PREF_ROOT" ls-files '*.cpp' '*.hpp' '*.h')
  for f in "${files[@]}"; do
    if [ "${1:-}" = --fix ]; then
      clang-format-14 -i --style=file "$PREF_ROOT/$f"
    elif ! clang-format-14 --dry-run --Werror --style=file "$PREF_ROOT/$f" >/dev/null 2>&1; then
      bad+=("$f")
    fi
  done
  pref_log "format: ${#files[@]} files, ${#bad[@]} not formatted"
  [ "${#bad[@]}" -eq 0 ] && return 0
  printf '  %s\n' "${bad[@]}" >&2
  pref_log "format: run 'bash jobs/check.sh format --fix' and commit"
  return 1
}

status=0
"check_$mode" "$@" || status=$?
if [ "$status" -eq 0 ]; then
  pref_log "check $mode: passed"
else
  pref_log "check $mode: FAILED"
fi
exit "$status"
