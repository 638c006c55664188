#include "solver/adapt/users.hpp"

#include <algorithm>
#include <cmath>

namespace pref::adapt {

void AucTally::add(const std::vector<double>& budget_auc) {
  for (std::size_t b = 0; b < sum.size(); ++b)
    if (!std::isnan(budget_auc[b])) {
      sum[b] += budget_auc[b];
      users[b] += 1;
      above[b] += budget_auc[b] > 0.8;
    }
}

void AucTally::allreduce(const mpi::Comm& comm) {
  mpi::allreduce(comm, std::span<double>(sum), MPI_SUM);
  mpi::allreduce(comm, std::span<double>(users), MPI_SUM);
  mpi::allreduce(comm, std::span<double>(above), MPI_SUM);
}

UserPool PoolRows::pool(std::size_t r) const {
  const std::uint64_t a = pools->ptr[r], n = pools->row_size(r);
  const std::uint64_t nA = n - test_answers;
  return {{pools->col.data() + a, nA},
          {pools->val.data() + a, nA},
          {pools->col.data() + a + nA, n - nA},
          {pools->val.data() + a + nA, n - nA}};
}

std::uint64_t adapt_rows(const PoolRows& users, const double* Z, int J, const Plan& plan,
                         io::AdaptedRows& rows, AucTally& tally,
                         const std::function<void(std::size_t)>& progress) {
  const std::size_t mine = users.size(), K = std::size_t(plan.answers), B = plan.budgets.size();
  rows.weights.resize(mine * J);
  rows.covariance.resize(mine * J * J);
  rows.asked.resize(mine * K);
  rows.answers.resize(mine * K);
  rows.budget_auc.resize(mine * B);
  Workspace ws;
  UserResult res;
  std::uint64_t newton_steps = 0;
  for (std::size_t r = 0; r < mine; ++r) {
    progress(r);
    adapt_user(users.first + r, Z, J, users.pool(r), plan, ws, res);
    std::copy(res.u.data(), res.u.data() + J, rows.weights.data() + r * J);
    std::copy(res.covariance.data(), res.covariance.data() + J * J,
              rows.covariance.data() + r * J * J);  // symmetric: row- and column-major agree
    std::copy(res.asked.begin(), res.asked.end(), rows.asked.begin() + r * K);
    std::copy(res.answers.begin(), res.answers.end(), rows.answers.begin() + r * K);
    std::copy(res.budget_auc.begin(), res.budget_auc.end(), rows.budget_auc.begin() + r * B);
    newton_steps += res.newton_steps;
    tally.add(res.budget_auc);
  }
  return newton_steps;
}

}  // namespace pref::adapt
