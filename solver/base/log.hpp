#pragma once
// Progress and diagnostics on standard error, from rank 0 only, with seconds since start.
// Standard output is kept for results (e.g. --json).
#include <fmt/core.h>

#include <chrono>
#include <cstdio>

#include "solver/base/mpi.hpp"

namespace pref::log {

double seconds_since_start();
void set_quiet(bool quiet);
bool quiet();

template <class... Args>
void info(const mpi::Comm& comm, fmt::format_string<Args...> f, Args&&... args) {
  if (quiet() || comm.rank() != 0) return;
  fmt::print(stderr, "[pref {:8.2f}s] {}\n", seconds_since_start(),
             fmt::format(f, std::forward<Args>(args)...));
  std::fflush(stderr);
}

template <class... Args>
void warn(const mpi::Comm& comm, fmt::format_string<Args...> f, Args&&... args) {
  if (comm.rank() != 0) return;
  fmt::print(stderr, "pref: warning: {}\n", fmt::format(f, std::forward<Args>(args)...));
  std::fflush(stderr);
}

}  // namespace pref::log
