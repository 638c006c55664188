#pragma once
// `pref types` as one library call (issue 13, 24; docs/design.md "Discrete types"): the model and
// the training labels are read and checked, the discrete types fitted (solver/discrete/types.hpp)
// and the types file written (io/types_file.hpp). solver/cli/types.cpp parses the options into a
// Request and prints the Report.
#include <cstdint>
#include <string>

#include "solver/base/mpi.hpp"
#include "solver/newton/ordinal.hpp"

namespace pref::types {

struct Request {
  std::string model, data, out;
  int K = 128, rounds = 3;
  std::uint64_t seed = 1;
  bool overwrite = false;
};

struct Report {
  int K = 0, used = 0;  // atoms, and those with members
  ordinal::Params params;
  double objective = 0, fit_seconds = 0, total_seconds = 0;
};

// Collective. Bad input is a collective InputError naming the file, dataset or option.
Report run(const Request& request, const mpi::Comm& comm);

}  // namespace pref::types
