#include "solver/eval/label_stats.hpp"

#include <algorithm>
#include <vector>

namespace pref {

namespace {
// The k-th smallest (0-based) of all ranks' counts, by two rounds of histograms: one over
// buckets of width w covering [0, max], one inside the bucket that holds rank k.
std::uint64_t kth(const mpi::Comm& comm, std::span<const std::uint64_t> counts, std::uint64_t k,
                  std::uint64_t max) {
  constexpr std::uint64_t kBuckets = 1 << 16;
  const std::uint64_t w = max / kBuckets + 1;
  std::vector<std::uint64_t> h(kBuckets, 0);
  for (auto c : counts) ++h[c / w];
  mpi::allreduce(comm, std::span<std::uint64_t>(h), MPI_SUM);
  std::uint64_t b = 0, below = 0;
  while (below + h[b] <= k) below += h[b++];
  std::vector<std::uint64_t> h2(w, 0);
  for (auto c : counts)
    if (c / w == b) ++h2[c - b * w];
  mpi::allreduce(comm, std::span<std::uint64_t>(h2), MPI_SUM);
  std::uint64_t v = 0;
  while (below + h2[v] <= k) below += h2[v++];
  return b * w + v;
}
}  // namespace

CountSummary summarize_counts(const mpi::Comm& comm, std::span<const std::uint64_t> counts) {
  CountSummary s;
  std::uint64_t lmin = UINT64_MAX, lmax = 0, lsum = 0;
  for (auto c : counts) {
    lmin = std::min(lmin, c);
    lmax = std::max(lmax, c);
    lsum += c;
  }
  const std::uint64_t n = mpi::allreduce_sum(comm, static_cast<std::uint64_t>(counts.size()));
  if (n == 0) return s;
  s.min = mpi::allreduce_min(comm, lmin);
  s.max = mpi::allreduce_max(comm, lmax);
  s.mean = static_cast<double>(mpi::allreduce_sum(comm, lsum)) / static_cast<double>(n);
  const std::uint64_t lo = kth(comm, counts, (n - 1) / 2, s.max);
  const std::uint64_t hi = n % 2 ? lo : kth(comm, counts, n / 2, s.max);
  s.median = 0.5 * (static_cast<double>(lo) + static_cast<double>(hi));
  return s;
}

SplitStats split_stats(const mpi::Comm& comm, const LabelMatrix& m) {
  SplitStats s;
  s.labels = m.labels;
  std::uint64_t ties = 0;
  for (float v : m.by_user.val) ties += v == 0.5f;
  s.ties = mpi::allreduce_sum(comm, ties);
  std::vector<std::uint64_t> c(m.by_user.rows());
  for (std::size_t r = 0; r < c.size(); ++r) c[r] = m.by_user.row_size(r);
  s.per_user = summarize_counts(comm, c);
  std::uint64_t users = 0;
  for (auto k : c) users += k > 0;
  c.resize(m.by_comparison.rows());
  std::uint64_t labelled = 0, single = 0;
  for (std::size_t r = 0; r < c.size(); ++r) {
    c[r] = m.by_comparison.row_size(r);
    labelled += c[r] > 0;
    single += c[r] == 1;
  }
  s.per_comparison = summarize_counts(comm, c);
  s.labelled_users = mpi::allreduce_sum(comm, users);
  s.labelled_comparisons = mpi::allreduce_sum(comm, labelled);
  s.single_label_comparisons = mpi::allreduce_sum(comm, single);
  return s;
}

ResponseStats response_stats(const mpi::Comm& comm, const io::ResponseTable& responses,
                             const LabelMatrix& m) {
  ResponseStats s;
  // A response is labelled when a comparison of it has a label on some rank: an OR over ranks.
  std::vector<std::uint8_t> used(responses.responses, 0);
  const std::uint64_t c0 = m.parts.comparisons.begin(comm.rank());
  for (std::size_t r = 0; r < m.by_comparison.rows(); ++r) {
    if (m.by_comparison.row_size(r) == 0) continue;
    used[responses.first[c0 + r]] = 1;
    used[responses.second[c0 + r]] = 1;
  }
  mpi::allreduce(comm, std::span<std::uint8_t>(used), MPI_MAX);
  for (auto u : used) s.labelled_responses += u;
  // Responses per prompt: every rank holds the whole table; each counts its even share of the
  // prompts.
  const Partition prompts = Partition::uniform(responses.prompts, comm.size());
  std::vector<std::uint64_t> per(prompts.count(comm.rank()), 0);
  for (std::uint32_t q : responses.prompt)
    if (prompts.owner(q) == comm.rank()) ++per[q - prompts.begin(comm.rank())];
  s.per_prompt = summarize_counts(comm, per);
  return s;
}

}  // namespace pref
