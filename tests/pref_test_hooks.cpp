// The test seams of the test-only binary `pref_test_hooks` (`pref` with this file instead of
// solver/cli/stop_poll_hook.cpp; built with the tests, never installed):
//
// 1. The stop poll of solver/cli/stop_poll_hook.hpp: PREF_TEST_RAISE_SIGNAL_AT=N makes rank 0
//    raise SIGUSR1 itself just before the N-th poll of the stop flag (1: after sweep 0; 2k: after
//    the user half-step of sweep k; 2k + 1: after sweep k), so that tests/test_checkpoint.cpp
//    stops a fit exactly at both kinds of stopping point. The signal is a real one, handled by
//    the same handler and the same collective poll as one from outside.
//
// 2. A full file system without one (tests/test_faults.cpp): the seam of io/mpiio_guard.hpp.
//    PREF_TEST_FAIL_WRITE=R:B makes rank R (or every rank for R = all) fail each MPI-IO write to
//    a file whose name contains ".partial." (outputs and checkpoints being written) with
//    MPI_ERR_NO_SPACE once it has written B bytes to such files. Only the failing rank sees the
//    error, as on a real file system where one rank's (or one aggregator's) write fails, so what
//    is tested is that every rank learns of it.
#include <mpi.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

#include "io/mpiio_guard.hpp"
#include "solver/cli/stop_poll_hook.hpp"

namespace pref::cli {

void before_stop_poll(const mpi::Comm& comm, long poll) {
  static const long at = [] {
    const char* v = std::getenv("PREF_TEST_RAISE_SIGNAL_AT");
    return v ? std::atol(v) : 0L;
  }();
  if (poll == at && comm.rank() == 0) std::raise(SIGUSR1);
}

}  // namespace pref::cli

namespace pref::io::mpiio {

bool fail_write(const char* filename, long long bytes) {
  static long long budget = -1;  // bytes this rank may still write to output files; -1: no fault
  static const bool active = [] {
    const char* v = std::getenv("PREF_TEST_FAIL_WRITE");
    if (!v || !*v) return false;
    const std::string spec = v;
    const std::size_t colon = spec.find(':');
    const std::string who = spec.substr(0, colon);
    int rank = 0;
    PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
    budget = colon == std::string::npos ? 0 : std::atoll(spec.c_str() + colon + 1);
    return who == "all" || std::atoi(who.c_str()) == rank;
  }();
  if (!active || bytes == 0 || !std::strstr(filename, ".partial.")) return false;
  if (bytes <= budget) {
    budget -= bytes;
    return false;
  }
  budget = 0;
  return true;
}

}  // namespace pref::io::mpiio
