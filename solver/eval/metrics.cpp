#include "solver/eval/metrics.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include <fmt/core.h>

#include "solver/newton/newton.hpp"

namespace pref {

namespace {
bool by_score(const Scored& a, const Scored& b) {
  return a.score < b.score;
}

// A NaN score (a model with a NaN factor, or factors so large that u.z is inf - inf) ranks
// lowest, tied with the other NaN scores: a defined AUC, and one total order for the sorts
// (NaN breaks both `<` and the tie grouping's `==`).
void rank_nan_lowest(std::span<Scored> items) {
  for (Scored& s : items)
    if (std::isnan(s.score)) s.score = -std::numeric_limits<decltype(s.score)>::infinity();
}

// Mann-Whitney count over items sorted by score, with `neg_before` negatives on lower ranks:
// returns twice the number of (positive, negative) pairs ordered correctly, ties counting half.
std::uint64_t twice_u(std::span<const Scored> sorted, std::uint64_t& neg_before) {
  std::uint64_t u2 = 0;
  for (std::size_t i = 0; i < sorted.size();) {
    std::size_t j = i;
    std::uint64_t pos = 0, neg = 0;
    // (j == i: every group holds at least its first item, whatever the scores compare as)
    while (j < sorted.size() && (j == i || sorted[j].score == sorted[i].score)) {
      pos += sorted[j].label > 0.5f;
      neg += sorted[j].label < 0.5f;
      ++j;
    }
    u2 += pos * (2 * neg_before + neg);
    neg_before += neg;
    i = j;
  }
  return u2;
}

// Sorts by a double key with an LSD radix sort on its order-preserving 64-bit image (11-bit
// digits; digits that all keys share are skipped). Stable, so the order is the same on every
// run; -0.0 sorts with +0.0.
template <class T, class Key>
void radix_sort(std::vector<T>& items, Key key, std::vector<T>& tmp) {
  const std::size_t n = items.size();
  if (n < 2048) {
    std::stable_sort(items.begin(), items.end(),
                     [&](const T& a, const T& b) { return key(a) < key(b); });
    return;
  }
  auto image = [&](const T& t) {
    double d = key(t);
    if (d == 0) d = 0.0;
    const std::uint64_t b = std::bit_cast<std::uint64_t>(d);
    return (b >> 63) ? ~b : b | (std::uint64_t{1} << 63);
  };
  constexpr int kBits = 11, kRadix = 1 << kBits, kPasses = (64 + kBits - 1) / kBits;
  // The key image is recomputed per pass rather than stored: the only extra memory is one copy
  // of the items (tmp, whose memory stays with the caller).
  tmp.resize(n);
  std::vector<std::uint64_t> count(kRadix);
  for (int pass = 0; pass < kPasses; ++pass) {
    const int shift = pass * kBits;
    std::fill(count.begin(), count.end(), 0);
    for (const T& t : items) ++count[(image(t) >> shift) & (kRadix - 1)];
    if (count[(image(items[0]) >> shift) & (kRadix - 1)] == n) continue;  // one digit: no-op
    std::uint64_t sum = 0;
    for (auto& c : count) {
      const std::uint64_t v = c;
      c = sum;
      sum += v;
    }
    for (const T& t : items) tmp[count[(image(t) >> shift) & (kRadix - 1)]++] = t;
    items.swap(tmp);
  }
}

// Distributed sample sort by score: on return `items` holds this rank's slice of the global
// order (all scores on rank r <= all on rank r+1). Splitters come from regularly spaced samples
// of every rank's (unsorted) items, so the items are sorted once, after the exchange.
template <class T, class Key>
void sample_sort(const mpi::Comm& comm, std::vector<T>& items, Key key, std::vector<T>& scratch) {
  const int p = comm.size();
  if (p == 1) {
    radix_sort(items, key, scratch);
    return;
  }
  constexpr int kPerSplitter = 32;
  const std::size_t ns = std::size_t(kPerSplitter) * (p - 1);
  std::vector<double> samples(ns, std::numeric_limits<double>::infinity());
  for (std::size_t k = 0; k < ns && !items.empty(); ++k)
    samples[k] = key(items[items.size() * (2 * k + 1) / (2 * ns)]);
  std::vector<double> all(ns * p);
  PREF_MPI_CHECK(MPI_Allgather(samples.data(), static_cast<int>(ns), MPI_DOUBLE, all.data(),
                               static_cast<int>(ns), MPI_DOUBLE, comm.get()));
  std::sort(all.begin(), all.end());
  std::vector<double> splitters(p - 1);
  for (int k = 1; k < p; ++k) splitters[k - 1] = all[all.size() * k / p];
  // Equal keys go to the same rank: bucket = number of splitters below the key.
  auto bucket = [&](const T& t) {
    return std::lower_bound(splitters.begin(), splitters.end(), key(t)) - splitters.begin();
  };
  std::vector<std::uint64_t> counts(p, 0), at(p, 0);
  for (const T& t : items) ++counts[bucket(t)];
  for (int r = 1; r < p; ++r) at[r] = at[r - 1] + counts[r - 1];
  scratch.resize(items.size());
  for (const T& t : items) scratch[at[bucket(t)]++] = t;
  items = mpi::alltoallv<T>(comm, scratch, counts);
  radix_sort(items, key, scratch);
}
}  // namespace

double group_auc(std::span<Scored> items) {
  rank_nan_lowest(items);
  std::sort(items.begin(), items.end(), by_score);
  std::uint64_t pos = 0, neg = 0;
  for (auto& s : items) {
    pos += s.label > 0.5f;
    neg += s.label < 0.5f;
  }
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  std::uint64_t neg_before = 0;
  return 0.5 * static_cast<double>(twice_u(items, neg_before)) / (double(pos) * double(neg));
}

double global_auc(const mpi::Comm& comm, std::vector<Scored>& items) {
  std::vector<Scored> scratch;
  return global_auc(comm, items, scratch);
}

double global_auc(const mpi::Comm& comm, std::vector<Scored>& items, std::vector<Scored>& scratch) {
  std::erase_if(items, [](const Scored& s) { return s.label == 0.5f; });
  rank_nan_lowest(items);
  sample_sort(
      comm, items, [](const Scored& s) { return s.score; }, scratch);
  std::uint64_t pos = 0, neg = 0;
  for (auto& s : items) {
    pos += s.label > 0.5f;
    neg += s.label < 0.5f;
  }
  std::uint64_t neg_before = mpi::exscan_sum(comm, neg);
  const std::uint64_t u2 = mpi::allreduce_sum(comm, twice_u(items, neg_before));
  const double P = static_cast<double>(mpi::allreduce_sum(comm, pos));
  const double N = static_cast<double>(mpi::allreduce_sum(comm, neg));
  if (P == 0 || N == 0) return std::numeric_limits<double>::quiet_NaN();
  return 0.5 * static_cast<double>(u2) / (P * N);
}

std::vector<double> global_quantiles(const mpi::Comm& comm, std::vector<double> values,
                                     std::span<const double> qs) {
  std::vector<double> scratch;
  sample_sort(
      comm, values, [](double v) { return v; }, scratch);
  const std::uint64_t n_local = values.size();
  const std::uint64_t before = mpi::exscan_sum(comm, n_local);
  const std::uint64_t n = mpi::allreduce_sum(comm, n_local);
  std::vector<double> out(qs.size(), std::numeric_limits<double>::quiet_NaN());
  if (n == 0) return out;
  for (std::size_t k = 0; k < qs.size(); ++k) {
    const std::uint64_t idx = std::min<std::uint64_t>(
        n - 1, static_cast<std::uint64_t>(std::ceil(qs[k] * double(n))) - (qs[k] > 0 ? 1 : 0));
    double v = -std::numeric_limits<double>::infinity();
    if (idx >= before && idx < before + n_local) v = values[idx - before];
    out[k] = mpi::allreduce_max(comm, v);
  }
  return out;
}

void MetricsAccumulator::add_user(std::span<Scored> items) {
  double loss = 0;
  for (const Scored& s : items) loss += bce(s.score, s.label);
  add_user(items, loss);
}

void MetricsAccumulator::add_user(std::span<Scored> items, double loss) {
  loss_ += loss;
  for (const Scored& s : items) {
    if (s.label != 0.5f) {
      ++decided_;
      const bool pos = s.label > 0.5f;
      correct_ += s.score == 0 ? 0.5 : ((s.score > 0) == pos ? 1.0 : 0.0);
    }
    all_.push_back(s);
  }
  const double a = group_auc(items);
  if (!std::isnan(a)) user_aucs_.push_back(a);
}

SplitMetrics MetricsAccumulator::finish(const mpi::Comm& comm, std::vector<double>* user_aucs,
                                        bool with_auc) {
  SplitMetrics m;
  m.labels = mpi::allreduce_sum(comm, static_cast<std::uint64_t>(all_.size()));
  double sums[3] = {loss_, correct_, 0};
  for (double a : user_aucs_) sums[2] += a;
  mpi::allreduce(comm, std::span<double>(sums, 3), MPI_SUM);
  const std::uint64_t decided = mpi::allreduce_sum(comm, decided_);
  m.users_with_auc = mpi::allreduce_sum(comm, static_cast<std::uint64_t>(user_aucs_.size()));
  m.logloss = m.labels ? sums[0] / double(m.labels) : std::numeric_limits<double>::quiet_NaN();
  m.accuracy = decided ? sums[1] / double(decided) : std::numeric_limits<double>::quiet_NaN();
  m.user_auc_mean = m.users_with_auc ? sums[2] / double(m.users_with_auc)
                                     : std::numeric_limits<double>::quiet_NaN();
  m.auc = with_auc ? global_auc(comm, all_, scratch_) : std::numeric_limits<double>::quiet_NaN();
  if (user_aucs) *user_aucs = std::move(user_aucs_);
  all_.clear();
  user_aucs_.clear();
  loss_ = correct_ = 0;
  decided_ = 0;
  return m;
}

std::string chance_verdict(double train_logloss, const SplitMetrics* validation) {
  constexpr double kLn2 = 0.69314718055994531;
  if (validation && validation->labels > 0 && std::isfinite(validation->auc)) {
    const double n = static_cast<double>(validation->labels);
    const double se = std::sqrt((n + 1) / (3 * n * n));
    if (validation->auc < 0.5 + 3 * se)
      return fmt::format(
          "its validation ROC-AUC {:.4f} over {} labels is within 3 standard "
          "errors ({:.4f} each) of a coin's 0.5",
          validation->auc, validation->labels, se);
    return {};
  }
  if (collapsed(train_logloss))
    return fmt::format(
        "its training log-loss is {:.4f}, a coin's is {:.4f}: every prediction is "
        "about 1/2 (the factors collapsed)",
        train_logloss, kLn2);
  return {};
}

bool collapsed(double train_logloss) {
  constexpr double kLn2 = 0.69314718055994531;
  return std::isfinite(train_logloss) && train_logloss > kLn2 - 1e-3;
}

}  // namespace pref
