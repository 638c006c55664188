// pref: personalized reward factorization at scale. See README.md and ../shared/CLI.md.
#include <cstdio>
#include <exception>

#include "io/hdf5.hpp"
#include "solver/base/error.hpp"
#include "solver/base/mpi.hpp"
#include "solver/cli/commands.hpp"

int main(int argc, char** argv) {
  pref::mpi::Environment env(argc, argv);
  pref::h5::silence_errors();
  int code = 0;
  const int rank = pref::mpi::Comm::world().rank();
  try {
    code = pref::cli::run(argc, argv, pref::mpi::Comm::world());
  } catch (const pref::Error& e) {
    if (e.collective()) {
      // Every rank holds this error: print it once, and every rank exits normally with the code.
      if (rank == 0) std::fprintf(stderr, "pref: error: %s\n", e.what());
      code = e.exit_code();
    } else {
      // Only this rank knows: the others may be waiting in a collective call, so end them all.
      std::fprintf(stderr, "pref: error (rank %d): %s\n", rank, e.what());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, e.exit_code());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pref: internal error (rank %d): %s\n", rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  std::fflush(stdout);
  return code;
}
