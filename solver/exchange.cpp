#include "solver/exchange.hpp"

#include <algorithm>

namespace pref {

GhostPlan::GhostPlan(const mpi::Comm& comm, std::vector<std::uint32_t> ids,
                     const Partition& owners)
    : ids_(std::move(ids)) {
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

std::uint32_t GhostPlan::index_of(std::uint32_t g) const {
  return static_cast<std::uint32_t>(std::lower_bound(ids_.begin(), ids_.end(), g) - ids_.begin());
}

void GhostPlan::fetch(const mpi::Comm& comm, std::span<const double> local, int width,
                      std::vector<double>& ghost) const {
  const int p = comm.size();
  std::vector<double> send(send_rows_.size() * width);
  for (std::size_t k = 0; k < send_rows_.size(); ++k)
    std::copy_n(local.data() + std::size_t(send_rows_[k]) * width, width,
                send.data() + k * width);
  std::vector<std::uint64_t> sc(p);
  for (int r = 0; r < p; ++r) sc[r] = send_counts_[r] * width;
  ghost = mpi::alltoallv<double>(comm, send, sc);
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

}  // namespace pref
