#pragma once
// `pref adapt` as one library call (issue 13, 24; docs/design.md "Adapting new users"): the
// files are opened and checked, the rule is the one given or, by default, the one the training
// users' evidence chooses (solver/adapt/evidence.hpp), every new user of the group runs its
// question loop, and the adapted-users file is written. solver/cli/adapt.cpp parses the options
// into a Request and prints the Report.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "solver/adapt/rules.hpp"
#include "solver/adapt/users.hpp"
#include "solver/base/mpi.hpp"

namespace pref::adapt {

struct Request {
  std::string model, types, data, out, group;  // group empty: /new_users
  // nullopt: --select auto (the default) when no --prior or --likelihood is given; with --prior
  // alone the rule before auto existed: active (info with --prior types).
  std::optional<Select> select;
  bool select_given = false;  // --select appeared (auto included)
  std::optional<Prior> prior;
  std::optional<AnswerModel> answer_model;
  int answers = 10, test_answers = 0, components = 64;
  bool components_given = false;
  std::vector<int> budgets;  // empty: {answers}
  std::uint64_t seed = 1;
  std::uint64_t auto_users = 2048;  // training users sampled by --select auto
  bool overwrite = false;
};

struct Report {
  std::uint64_t users = 0;
  std::vector<int> budgets;
  AucTally tally;
  std::string rule;  // the rule that ran (Rule::name)
  double adapt_seconds = 0, total_seconds = 0;
  std::uint64_t newton_steps = 0;
  std::vector<double> cpu_seconds, peak_rss_mib;  // per rank
};

// Collective. Bad input is a collective InputError naming the file, dataset or option.
Report run(const Request& request, const mpi::Comm& comm);

}  // namespace pref::adapt
