// The output gate of ctest (PREF_TEST_FAIL_REGEX, cmake/PrefTesting.cmake) is not vacuous: a
// child that prints an HDF5 error stack makes a CLI test fail although the test itself passes.
// ctest runs this with WILL_FAIL, so the gate must turn this passing test into a failure.
#include <gtest/gtest.h>

#include "tests/test_util.hpp"

TEST(OutputGate, ChildHdf5DiagnosticsReachTheGate) {
  const auto r = pref::test::run_command(
      {"sh", "-c", "echo 'HDF5-DIAG: Error detected in HDF5 (1.10.8) MPI-process 0:' >&2"});
  EXPECT_EQ(r.exit_code, 0);
}
