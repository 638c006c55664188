// pref: personalized reward factorization at scale. See README.md and ../shared/CLI.md.
#include <cstdio>
#include <exception>
#include <string>

#include "io/pref_file.hpp"
#include "solver/base/error.hpp"
#include "solver/base/mpi.hpp"
#include "solver/cli/commands.hpp"

namespace {
// Every error is one line (a message built from a file's contents may hold line breaks).
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}
}  // namespace

int main(int argc, char** argv) {
  pref::mpi::Environment env(argc, argv);
  pref::io::init_io();
  int code = 0;
  const int rank = pref::mpi::Comm::world().rank();
  try {
    code = pref::cli::run(argc, argv, pref::mpi::Comm::world());
  } catch (const pref::Error& e) {
    if (e.collective()) {
      // Every rank holds this error: print it once, and every rank exits normally with the code.
      if (rank == 0) std::fprintf(stderr, "pref: error: %s\n", one_line(e.what()).c_str());
      code = e.exit_code();
    } else {
      // Only this rank knows: the others may be waiting in a collective call, so end them all.
      std::fprintf(stderr, "pref: error (rank %d): %s\n", rank, one_line(e.what()).c_str());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, e.exit_code());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pref: internal error (rank %d): %s\n", rank, one_line(e.what()).c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  std::fflush(stdout);
  return code;
}
