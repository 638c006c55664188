// The production definition of the test seam of solver/cli/stop_poll_hook.hpp: nothing.
#include "solver/cli/stop_poll_hook.hpp"

namespace pref::cli {

void before_stop_poll(const mpi::Comm&, long) {}

}  // namespace pref::cli
