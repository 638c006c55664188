#include "solver/discrete/kmeans.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <functional>
#include <limits>

#include "solver/base/error.hpp"
#include "solver/base/rng.hpp"

namespace pref {

namespace {
using RowM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// acc in, after the ranks before this one have added theirs, then add(acc) adds this rank's
// share; every rank ends with the last rank's acc. Returns what this rank received (its
// prefix).
std::vector<double> chain(const mpi::Comm& comm, std::vector<double>& acc,
                          const std::function<void(std::vector<double>&)>& add) {
  const int me = comm.rank(), P = comm.size();
  const int n = static_cast<int>(acc.size());
  if (me > 0)
    PREF_MPI_CHECK(MPI_Recv(acc.data(), n, MPI_DOUBLE, me - 1, 0, comm.get(), MPI_STATUS_IGNORE));
  std::vector<double> prefix = acc;
  add(acc);
  if (me + 1 < P) PREF_MPI_CHECK(MPI_Send(acc.data(), n, MPI_DOUBLE, me + 1, 0, comm.get()));
  if (P > 1) PREF_MPI_CHECK(MPI_Bcast(acc.data(), n, MPI_DOUBLE, P - 1, comm.get()));
  return prefix;
}
}  // namespace

KMeans kmeans(const mpi::Comm& comm, const double* rows, std::uint64_t first, std::size_t local,
              std::uint64_t n, int J, int K, std::uint64_t seed) {
  if (n == 0 || K < 1) throw InputError("k-means: no rows to cluster");
  Eigen::Map<const RowM> X(rows, static_cast<Eigen::Index>(local), J);
  K = static_cast<int>(std::min<std::uint64_t>(std::uint64_t(K), n));
  Rng rng(seed, static_cast<Stream>(kKMeansStream), 0);
  KMeans out;
  out.K = K;
  out.centres.resize(std::size_t(K) * J);
  Eigen::Map<RowM> C(out.centres.data(), K, J);
  // Row g of the n rows into centre k, from the rank that holds it.
  const std::vector<std::uint64_t> firsts = mpi::allgather<std::uint64_t>(comm, first);
  const std::vector<std::uint64_t> counts = mpi::allgather<std::uint64_t>(comm, local);
  auto take = [&](std::uint64_t g, int k) {
    int owner = 0;
    for (int r = 0; r < comm.size(); ++r)
      if (firsts[r] <= g && g < firsts[r] + counts[r]) owner = r;
    if (comm.rank() == owner) C.row(k) = X.row(static_cast<Eigen::Index>(g - first));
    mpi::broadcast(comm, std::span<double>(&C(k, 0), J), owner);
  };
  // k-means++: the first centre uniform, each next one drawn with probability proportional to
  // the squared distance to the nearest centre so far (a scan of the cumulative sum).
  std::vector<double> d2(local, std::numeric_limits<double>::infinity());
  take(rng.below(n), 0);
  for (int k = 1; k < K; ++k) {
    for (std::size_t i = 0; i < local; ++i)
      d2[i] = std::min(d2[i], (X.row(i) - C.row(k - 1)).squaredNorm());
    std::vector<double> total(1, 0.0);
    const double prefix = chain(comm, total, [&](std::vector<double>& acc) {
      for (std::size_t i = 0; i < local; ++i) acc[0] += d2[i];
    })[0];
    std::uint64_t pick = n - 1;
    if (total[0] > 0) {
      const double r = rng.uniform() * total[0];
      std::uint64_t mine = n;
      double acc = prefix;
      for (std::size_t i = 0; i < local; ++i) {
        acc += d2[i];
        if (r < acc) {
          mine = first + i;
          break;
        }
      }
      const std::uint64_t found = mpi::allreduce_min(comm, mine);
      if (found < n) pick = found;
    } else {
      pick = rng.below(n);
    }
    take(pick, k);
  }
  std::vector<int>& assign = out.assign;
  assign.assign(local, -1);
  const std::size_t width = std::size_t(K) * (J + 1);  // the centres' sums, then their counts
  for (int it = 0; it < kKMeansIterations; ++it) {
    int changed = 0;
    for (std::size_t i = 0; i < local; ++i) {
      int best = 0;
      double bd = (X.row(i) - C.row(0)).squaredNorm();
      for (int k = 1; k < K; ++k) {
        const double d = (X.row(i) - C.row(k)).squaredNorm();
        if (d < bd) bd = d, best = k;
      }
      if (assign[i] != best) changed = 1, assign[i] = best;
    }
    if (!mpi::allreduce(comm, changed, MPI_LOR)) break;
    std::vector<double> sums(width, 0.0);
    chain(comm, sums, [&](std::vector<double>& acc) {
      Eigen::Map<RowM> S(acc.data(), K, J);
      double* count = acc.data() + std::size_t(K) * J;
      for (std::size_t i = 0; i < local; ++i) S.row(assign[i]) += X.row(i), count[assign[i]] += 1;
    });
    Eigen::Map<const RowM> S(sums.data(), K, J);
    const double* count = sums.data() + std::size_t(K) * J;
    for (int k = 0; k < K; ++k)
      if (count[k] > 0) C.row(k) = S.row(k) / count[k];
  }
  return out;
}

KMeans kmeans(const double* rows, std::size_t n, int J, int K, std::uint64_t seed) {
  return kmeans(mpi::Comm::self(), rows, 0, n, n, J, K, seed);
}

}  // namespace pref
