#pragma once
// GoogleTest checks of `pref` runs shared by the command-line tests.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/test_util.hpp"

namespace pref::test {

// Runs pref at 1, 2 and 4 ranks: no hang, exit code 2, and one error line holding every needle.
inline void expect_usage_error(const std::vector<std::string>& args,
                               const std::vector<std::string>& needles) {
  for (int np : {1, 2, 4}) {
    const RunResult r = run_pref(np, args, 120);
    SCOPED_TRACE(r.command);
    ASSERT_FALSE(r.timed_out) << r.err;
    EXPECT_EQ(r.exit_code, 2) << r.err;
    const auto lines = error_lines(r);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    for (const auto& n : needles) EXPECT_TRUE(contains(lines[0], n)) << lines[0];
  }
}

}  // namespace pref::test
