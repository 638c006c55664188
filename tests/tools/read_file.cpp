// pref_read_file KIND FILE: reads FILE as pref's commands read a file of KIND (model, types,
// adapted, scores, labels, checkpoint: tests/fuzz/targets.hpp) and exits 0 when it is valid, 2
// when it is refused as bad input (the message on standard error), anything else on a bug. For
// jobs/corrupt.sh, which damages files of every kind, including those no command reads yet
// (scores files); built with the tests, never installed.
#include <cstdio>
#include <string>

#include "tests/fuzz/targets.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr,
                 "usage: pref_read_file model|types|adapted|scores|labels|checkpoint FILE\n");
    return 64;
  }
  const std::string kinds[] = {"model", "types", "adapted", "scores", "labels", "checkpoint"};
  int kind = -1;
  for (int k = 0; k < 6; ++k)
    if (argv[1] == kinds[k]) kind = k;
  if (kind < 0) return 64;
  pref::fuzz::ensure_mpi();
  try {
    pref::fuzz::read_file_as(kind, argv[2], pref::mpi::Comm::self());
  } catch (const pref::InputError& e) {
    std::fprintf(stderr, "pref_read_file: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pref_read_file: not an input error: %s\n", e.what());
    return 1;
  }
  return 0;
}
