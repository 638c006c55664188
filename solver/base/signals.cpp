#include "solver/base/signals.hpp"

#include <pthread.h>

#include <csignal>
#include <cstring>

namespace pref::signals {

namespace {
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
}
}  // namespace

void install_stop_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGUSR1}) sigaction(sig, &sa, nullptr);
  // A launcher may start us with them blocked (jobs/slurm/term_shield.py blocks SIGTERM so that
  // mpirun does not abort the job; the mask is inherited across exec): the ranks must see them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

int received() {
  return g_signal;
}

int stop_requested(const mpi::Comm& comm) {
  return mpi::allreduce_max(comm, static_cast<int>(g_signal));
}

const char* name(int sig) {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGINT:
      return "SIGINT";
    default:
      return "a signal";
  }
}

}  // namespace pref::signals
