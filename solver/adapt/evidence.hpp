#pragma once
// `pref adapt --select auto` (issue 24, docs/design.md "Choosing the rule"): the rule is chosen
// by the fitted population's own evidence, never by the new users' answers. A sample of the
// training users of --data is treated as new users with the run's budgets: each candidate rule
// asks their training labels (the askable pool) and is scored by the mean held-out ROC-AUC of
// their validation and test labels, which the fit did not train on (or, in a file without them,
// every fourth training label, held out from the pool). The candidate with the largest mean
// over the budgets is chosen; ties go to the earlier (cheaper) candidate.
//
// The sample is evenly spaced over the training user ids, its labels are gathered on every rank
// in (user, comparison) order, and every user is a pure function of its pool, so the evidence
// and the choice are bitwise the same at any rank count.
#include <cstdint>
#include <string>
#include <vector>

#include "io/label_file.hpp"
#include "solver/adapt/rules.hpp"

namespace pref::adapt {

struct TrainingSample {
  std::vector<std::uint64_t> users;  // sampled training user ids, ascending
  Csr askable, held_out;             // row i: users[i]'s labels, comparison-id order
  std::string held_out_source;       // what held_out is
  bool categorical = true;           // every askable value is 0, 0.5 or 1
  bool ties = false;                 // some askable value is 0.5
};

// Collective. The training users of `data` to sample: at most `size`, evenly spaced over the
// ids (every label file has /labels: io::LabelFile::open checks it).
TrainingSample load_training_sample(const io::LabelFile& data, std::uint64_t size,
                                    const mpi::Comm& comm);

struct Candidate {
  Rule rule;
  Plan plan;
  const double* Z = nullptr;
};

struct Evidence {
  std::vector<int> budgets;
  std::vector<double> auc;    // candidates x budgets: the sample's mean held-out AUC
  std::vector<double> users;  // per budget: sampled users with an AUC (the same for every rule)
  std::vector<double> score;  // per candidate: the mean of its AUC over the budgets with users
  int chosen = 0;
};

// Collective. Every candidate on every sampled user (the ranks share the users), with the
// budgets of plan (answers and budgets capped at a user's askable labels).
Evidence weigh(const std::vector<Candidate>& candidates, const TrainingSample& sample, int J,
               const mpi::Comm& comm);

}  // namespace pref::adapt
