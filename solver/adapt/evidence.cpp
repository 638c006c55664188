#include "solver/adapt/evidence.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "solver/base/error.hpp"
#include "solver/newton/ordinal.hpp"

namespace pref::adapt {

namespace {
// A sampled user's label: row = the user's index in the sample. Travels between ranks as bytes.
struct SampleLabel {
  std::uint32_t row, comparison;
  float value;
};

// The labels of split s of the sampled users, from every rank's slice, on every rank.
std::vector<SampleLabel> gather_sample(const io::LabelFile& data, io::Split s,
                                       const std::vector<std::uint64_t>& users,
                                       const mpi::Comm& comm) {
  if (!data.has(s)) return {};
  const LabelColumns cols = data.read(s, comm);
  std::vector<SampleLabel> mine;
  for (std::size_t i = 0; i < cols.size(); ++i) {
    const auto it = std::lower_bound(users.begin(), users.end(), cols.user[i]);
    if (it != users.end() && *it == cols.user[i])
      mine.push_back(
          {static_cast<std::uint32_t>(it - users.begin()), cols.comparison[i], cols.value[i]});
  }
  return mpi::allgatherv<SampleLabel>(comm, mine);
}

// Rows sorted by (comparison, value): an order that does not depend on the rank count.
Csr to_csr(std::vector<SampleLabel> labels, std::size_t rows) {
  std::sort(labels.begin(), labels.end(), [](const SampleLabel& a, const SampleLabel& b) {
    if (a.row != b.row) return a.row < b.row;
    if (a.comparison != b.comparison) return a.comparison < b.comparison;
    return a.value < b.value;
  });
  Csr c;
  c.ptr.assign(rows + 1, 0);
  for (const SampleLabel& l : labels) ++c.ptr[l.row + 1];
  for (std::size_t r = 0; r < rows; ++r) c.ptr[r + 1] += c.ptr[r];
  c.col.reserve(labels.size());
  c.val.reserve(labels.size());
  for (const SampleLabel& l : labels) {
    c.col.push_back(l.comparison);
    c.val.push_back(l.value);
  }
  return c;
}
}  // namespace

TrainingSample load_training_sample(const io::LabelFile& data, std::uint64_t size,
                                    const mpi::Comm& comm) {
  TrainingSample t;
  const std::uint64_t N = data.users(), S = std::min(size, N);
  for (std::uint64_t j = 0; j < S; ++j) t.users.push_back((2 * j + 1) * N / (2 * S));
  std::vector<SampleLabel> train = gather_sample(data, io::Split::kTrain, t.users, comm);
  if (data.has(io::Split::kValidation) || data.has(io::Split::kTest)) {
    std::vector<SampleLabel> held = gather_sample(data, io::Split::kValidation, t.users, comm);
    const std::vector<SampleLabel> test = gather_sample(data, io::Split::kTest, t.users, comm);
    held.insert(held.end(), test.begin(), test.end());
    t.askable = to_csr(std::move(train), S);
    t.held_out = to_csr(std::move(held), S);
    t.held_out_source = "validation and test labels";
  } else {
    // Every fourth training label of a user (in comparison order) is held out from its pool.
    const Csr all = to_csr(std::move(train), S);
    std::vector<SampleLabel> ask, held;
    for (std::size_t r = 0; r < S; ++r)
      for (std::uint64_t e = all.ptr[r]; e < all.ptr[r + 1]; ++e)
        ((e - all.ptr[r]) % 4 == 3 ? held : ask)
            .push_back({static_cast<std::uint32_t>(r), all.col[e], all.val[e]});
    t.askable = to_csr(std::move(ask), S);
    t.held_out = to_csr(std::move(held), S);
    t.held_out_source = "every fourth training label (the file has no validation or test labels)";
  }
  for (float v : t.askable.val) {
    t.categorical = t.categorical && ordinal::outcome(v) >= 0;
    t.ties = t.ties || v == 0.5f;
  }
  return t;
}

Evidence weigh(const std::vector<Candidate>& candidates, const TrainingSample& sample, int J,
               const mpi::Comm& comm) {
  const std::size_t S = sample.users.size(), C = candidates.size();
  Evidence e;
  e.budgets = candidates.at(0).plan.budgets;
  const std::size_t B = e.budgets.size();
  const int K = candidates[0].plan.answers;
  const std::size_t P = std::size_t(comm.size()), me = std::size_t(comm.rank());
  const std::size_t lo = S * me / P, hi = S * (me + 1) / P;
  std::vector<double> local((hi - lo) * C * B, std::numeric_limits<double>::quiet_NaN());
  mpi::agree(comm, [&] {
    Workspace ws;
    UserResult res;
    for (std::size_t i = lo; i < hi; ++i) {
      const std::uint64_t a = sample.askable.ptr[i], n = sample.askable.row_size(i);
      const std::uint64_t h = sample.held_out.ptr[i], nh = sample.held_out.row_size(i);
      if (n == 0) continue;
      const UserPool pool{{sample.askable.col.data() + a, n},
                          {sample.askable.val.data() + a, n},
                          {sample.held_out.col.data() + h, nh},
                          {sample.held_out.val.data() + h, nh}};
      // The run's budgets, capped at the user's askable labels.
      const int Ki = static_cast<int>(std::min<std::uint64_t>(std::uint64_t(K), n));
      std::vector<int> budgets;
      std::vector<std::size_t> slot(B);
      for (std::size_t b = 0; b < B; ++b) {
        const int v = std::min(e.budgets[b], Ki);
        if (budgets.empty() || budgets.back() != v) budgets.push_back(v);
        slot[b] = budgets.size() - 1;
      }
      for (std::size_t c = 0; c < C; ++c) {
        Plan p = candidates[c].plan;
        p.answers = Ki;
        p.budgets = budgets;
        adapt_user(sample.users[i], candidates[c].Z, J, pool, p, ws, res);
        for (std::size_t b = 0; b < B; ++b)
          local[((i - lo) * C + c) * B + b] = res.budget_auc[slot[b]];
      }
    }
  });
  const std::vector<double> all = mpi::allgatherv<double>(comm, local);
  e.auc.assign(C * B, 0.0);
  e.users.assign(B, 0.0);
  std::vector<double> count(C * B, 0.0);
  for (std::size_t i = 0; i < S; ++i)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t b = 0; b < B; ++b) {
        const double x = all[(i * C + c) * B + b];
        if (std::isnan(x)) continue;
        e.auc[c * B + b] += x;
        count[c * B + b] += 1;
      }
  for (std::size_t b = 0; b < B; ++b) e.users[b] = count[b];
  e.score.assign(C, 0.0);
  for (std::size_t c = 0; c < C; ++c) {
    double used = 0;
    for (std::size_t b = 0; b < B; ++b) {
      e.auc[c * B + b] = count[c * B + b] > 0 ? e.auc[c * B + b] / count[c * B + b]
                                              : std::numeric_limits<double>::quiet_NaN();
      if (count[c * B + b] > 0) e.score[c] += e.auc[c * B + b], used += 1;
    }
    e.score[c] = used > 0 ? e.score[c] / used : std::numeric_limits<double>::quiet_NaN();
    // Strictly larger: equal scores keep the earlier candidate; NaN never wins.
    if (e.score[c] > e.score[e.chosen] || std::isnan(e.score[e.chosen])) e.chosen = int(c);
  }
  return e;
}

}  // namespace pref::adapt
