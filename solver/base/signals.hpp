#pragma once
// Stop requests by signal (docs/checkpoints.md). SIGTERM and SIGUSR1 only set a flag (a
// volatile sig_atomic_t, the one async-signal-safe thing to do); the fit polls it between
// half-steps with stop_requested(), which agrees on it across ranks, writes a checkpoint and
// ends the run with kExitStoppedBySignal.
#include "solver/base/mpi.hpp"

namespace pref::signals {

// Installs the handlers of SIGTERM and SIGUSR1 (SA_RESTART, so that interrupted system calls
// of MPI and HDF5 resume) and unblocks both in the calling thread (a launcher may have started
// the process with them blocked). Idempotent.
void install_stop_handlers();

// The number of the last stop signal this process received, or 0.
int received();

// Collective: the largest signal number any rank has received (0: none), so that every rank
// takes the same decision at the same point.
int stop_requested(const mpi::Comm& comm);

// "SIGTERM", "SIGUSR1", or "signal N".
const char* name(int sig);

}  // namespace pref::signals
