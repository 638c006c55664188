#pragma once
// The one seam of `pref fit` for tests (docs/checkpoints.md, "Tests"). The fit calls
// before_stop_poll(comm, N) on every rank just before its N-th poll of the stop flag
// (N = 1: after sweep 0; 2k: after the user half-step of sweep k; 2k + 1: after sweep k).
//
// The production binary `pref` links the no-op of cli/stop_poll_hook.cpp. The test-only binary
// `pref_test_hooks` (tests/pref_test_hooks.cpp, built with the tests, never installed) links one
// that raises SIGUSR1 on rank 0 at a chosen poll, so that the tests stop a fit at an exact
// half-step. Nothing in `pref` reads a test setting.
#include "solver/base/mpi.hpp"

namespace pref::cli {

void before_stop_poll(const mpi::Comm& comm, long poll);

}  // namespace pref::cli
