#include "solver/population_moments.hpp"

#include <algorithm>
#include <vector>

#include "io/model_prior.hpp"
#include "solver/base/partition.hpp"

namespace pref {

Moments population_moments(const mpi::Comm& comm, const std::string& path, std::uint64_t users,
                           int J) {
  // At most about 1024 blocks, so the block sums exchanged stay small (1024 J^2 doubles).
  const std::uint64_t block = std::max<std::uint64_t>(4096, (users + 1023) / 1024);
  const std::uint64_t blocks = (users + block - 1) / block;
  const Partition mine = Partition::uniform(blocks, comm.size());
  const int me = comm.rank();
  const std::uint64_t b0 = mine.begin(me), b1 = mine.end(me);
  const std::uint64_t row0 = std::min(users, b0 * block), row1 = std::min(users, b1 * block);
  const std::vector<double> U =
      io::read_model_rows(path, comm, "user_factors", row0, row1 - row0, J);
  using RowsMap = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic,
                                                 Eigen::RowMajor>>;
  auto rows_of = [&](std::uint64_t b) {
    const std::uint64_t lo = b * block - row0, hi = std::min(users, (b + 1) * block) - row0;
    return RowsMap(U.data() + lo * J, static_cast<Eigen::Index>(hi - lo), J);
  };
  // Other ranks' blocks stay zero here; the sum over ranks adds exact zeros to each block.
  std::vector<double> sums(blocks * J, 0.0);
  for (std::uint64_t b = b0; b < b1; ++b) {
    Eigen::Map<Eigen::VectorXd> s(sums.data() + b * J, J);
    const auto R = rows_of(b);
    for (Eigen::Index i = 0; i < R.rows(); ++i) s += R.row(i).transpose();
  }
  mpi::allreduce(comm, std::span<double>(sums), MPI_SUM);
  Moments m;
  m.mean = Eigen::VectorXd::Zero(J);
  for (std::uint64_t b = 0; b < blocks; ++b)
    m.mean += Eigen::Map<const Eigen::VectorXd>(sums.data() + b * J, J);
  m.mean /= static_cast<double>(users);

  std::vector<double> outer(blocks * J * J, 0.0);
  Eigen::VectorXd c(J);
  for (std::uint64_t b = b0; b < b1; ++b) {
    Eigen::Map<Eigen::MatrixXd> s(outer.data() + b * J * J, J, J);
    const auto R = rows_of(b);
    for (Eigen::Index i = 0; i < R.rows(); ++i) {
      c = R.row(i).transpose() - m.mean;
      s.noalias() += c * c.transpose();
    }
  }
  mpi::allreduce(comm, std::span<double>(outer), MPI_SUM);
  m.covariance = Eigen::MatrixXd::Zero(J, J);
  for (std::uint64_t b = 0; b < blocks; ++b)
    m.covariance += Eigen::Map<const Eigen::MatrixXd>(outer.data() + b * J * J, J, J);
  m.covariance /= static_cast<double>(users);
  return m;
}

}  // namespace pref
