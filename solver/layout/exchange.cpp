#include "solver/layout/exchange.hpp"

#include <algorithm>

namespace pref {

IdSet::IdSet(std::initializer_list<std::span<const std::uint32_t>> lists) {
  std::uint32_t lo = UINT32_MAX, hi = 0;
  bool any = false;
  for (auto l : lists)
    for (auto g : l) {
      lo = std::min(lo, g);
      hi = std::max(hi, g);
      any = true;
    }
  if (!any) return;
  lo_ = lo;
  const std::uint64_t span = std::uint64_t(hi) - lo + 1;
  bits_.assign((span + 63) / 64, 0);
  for (auto l : lists)
    for (auto g : l) bits_[(g - lo) >> 6] |= std::uint64_t{1} << ((g - lo) & 63);
  rank_.resize(bits_.size());
  std::uint32_t r = 0;
  for (std::size_t w = 0; w < bits_.size(); ++w) {
    rank_[w] = r;
    r += static_cast<std::uint32_t>(__builtin_popcountll(bits_[w]));
  }
}

std::vector<std::uint32_t> IdSet::sorted() const {
  std::vector<std::uint32_t> out;
  for (std::size_t w = 0; w < bits_.size(); ++w)
    for (std::uint64_t b = bits_[w]; b; b &= b - 1)
      out.push_back(lo_ + static_cast<std::uint32_t>(w * 64 + __builtin_ctzll(b)));
  return out;
}

GhostPlan::GhostPlan(const mpi::Comm& comm, const IdSet& ids, const Partition& owners)
    : set_(ids), ids_(ids.sorted()) {
  const int p = comm.size();
  recv_counts_.assign(p, 0);
  // ids are sorted and owner ranges are contiguous, so each owner's ids are one run.
  for (auto g : ids_) ++recv_counts_[owners.owner(g)];
  const int me = comm.rank();
  for (int r = 0; r < p; ++r)
    if (r != me) remote_rows_ += recv_counts_[r];
  // Tell each owner which of its rows we need.
  std::vector<std::uint32_t> requested =
      mpi::alltoallv<std::uint32_t>(comm, ids_, recv_counts_, &send_counts_);
  const std::uint64_t lo = owners.begin(me);
  send_rows_.resize(requested.size());
  for (std::size_t k = 0; k < requested.size(); ++k)
    send_rows_[k] = static_cast<std::uint32_t>(requested[k] - lo);
}

void GhostPlan::fetch(const mpi::Comm& comm, std::span<const double> local, int width,
                      std::span<double> ghost) const {
  const int p = comm.size();
  send_.resize(send_rows_.size() * width);
  for (std::size_t k = 0; k < send_rows_.size(); ++k)
    std::copy_n(local.data() + std::size_t(send_rows_[k]) * width, width, send_.data() + k * width);
  std::vector<std::uint64_t> sc(p), rc(p);
  for (int r = 0; r < p; ++r) {
    sc[r] = send_counts_[r] * width;
    rc[r] = recv_counts_[r] * width;
  }
  mpi::alltoallv_into<double>(comm, send_, sc, rc, ghost);
}

void GhostPlan::reduce(const mpi::Comm& comm, std::span<const double> ghost, int width,
                       std::vector<double>& local) const {
  const int p = comm.size();
  std::vector<std::uint64_t> sc(p);
  for (int r = 0; r < p; ++r) sc[r] = recv_counts_[r] * width;
  std::vector<double> recv = mpi::alltoallv<double>(comm, ghost, sc);
  std::fill(local.begin(), local.end(), 0.0);
  // Contributions arrive in rank order, so the sums are the same for every run at a given
  // rank count.
  for (std::size_t k = 0; k < send_rows_.size(); ++k) {
    double* dst = local.data() + std::size_t(send_rows_[k]) * width;
    const double* src = recv.data() + k * width;
    for (int c = 0; c < width; ++c) dst[c] += src[c];
  }
}

std::vector<double> move_rows(const mpi::Comm& comm, const Partition& from, const Partition& to,
                              const std::vector<double>& local, int width) {
  const int p = comm.size(), me = comm.rank();
  std::vector<std::uint64_t> counts(p, 0);
  const GlobalId lo = from.begin(me), hi = from.end(me);
  for (int r = 0; r < p; ++r) {
    const GlobalId a = std::max(lo, to.begin(r)), b = std::min(hi, to.end(r));
    if (a < b) counts[r] = (b - a) * static_cast<std::uint64_t>(width);
  }
  // Both layouts are ordered ranges, so this rank's rows go out in order and arrive in order.
  return mpi::alltoallv<double>(comm, local, counts);
}

}  // namespace pref
