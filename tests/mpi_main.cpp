// The shared main of MPI tests: initializes MPI, silences gtest's printer on every rank but 0,
// and makes the exit code collective, so a failure on any rank fails the test on all of them.
#include <gtest/gtest.h>

#include <cstdio>

#include "io/hdf5.hpp"
#include "solver/base/mpi.hpp"

int main(int argc, char** argv) {
  pref::mpi::Environment env(argc, argv);
  pref::h5::silence_errors();
  ::testing::InitGoogleTest(&argc, argv);
  const int rank = pref::mpi::Comm::world().rank();
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0;
  int any = pref::mpi::allreduce_max(pref::mpi::Comm::world(), failed);
  if (rank == 0 && any && !failed)
    std::fprintf(stderr, "a test failed on another rank (its output is silenced)\n");
  if (failed) std::fprintf(stderr, "rank %d: tests failed\n", rank);
  return any;
}
