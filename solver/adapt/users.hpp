#pragma once
// Many new users (`pref adapt`): the question loop of every user a rank holds, their results in
// the rows of the adapted file, and the held-out AUC of each budget tallied over the users.
#include <cstdint>
#include <functional>
#include <vector>

#include "io/adapted_file.hpp"
#include "solver/adapt/adapt.hpp"
#include "solver/base/labels.hpp"
#include "solver/base/mpi.hpp"

namespace pref::adapt {

// The held-out ROC-AUC of each budget summed over users: its sum, the users with an AUC (both
// classes among their held-out answers) and those above 0.8.
struct AucTally {
  std::vector<double> sum, users, above;
  explicit AucTally(std::size_t budgets = 0) : sum(budgets), users(budgets), above(budgets) {}
  void add(const std::vector<double>& budget_auc);
  // Sums over the ranks (collective).
  void allreduce(const mpi::Comm& comm);
  double mean(std::size_t b) const { return sum[b] / users[b]; }
};

// A rank's users: row r of `pools` (a CSR by user, comparison-id order) is user first + r; the
// last test_answers entries of each row are held out.
struct PoolRows {
  const Csr* pools = nullptr;
  std::uint64_t first = 0;
  std::size_t test_answers = 0;
  std::size_t size() const { return pools->rows(); }
  UserPool pool(std::size_t r) const;
};

// Runs every user's question loop with `plan` over Z (J columns), writing its weights,
// covariance, questions, answers and budget AUCs into rows (resized) and its AUCs into tally.
// progress(r) is called before user r. Returns the Newton steps taken.
std::uint64_t adapt_rows(const PoolRows& users, const double* Z, int J, const Plan& plan,
                         io::AdaptedRows& rows, AucTally& tally,
                         const std::function<void(std::size_t)>& progress);

}  // namespace pref::adapt
