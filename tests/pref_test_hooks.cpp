// The test seam of solver/cli/stop_poll_hook.hpp for the test-only binary `pref_test_hooks`
// (`pref` with this file instead of solver/cli/stop_poll_hook.cpp): PREF_TEST_RAISE_SIGNAL_AT=N
// makes rank 0 raise SIGUSR1 itself just before the N-th poll of the stop flag (1: after sweep
// 0; 2k: after the user half-step of sweep k; 2k + 1: after sweep k), so that tests/
// test_checkpoint.cpp stops a fit exactly at both kinds of stopping point. The signal is a real
// one, handled by the same handler and the same collective poll as one from outside.
#include <csignal>
#include <cstdlib>

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
