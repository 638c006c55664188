#include "solver/prior/moments.hpp"

#include <algorithm>
#include <vector>

#include "io/model_prior.hpp"
#include "solver/base/partition.hpp"

namespace pref {

std::uint64_t population_moment_block(std::uint64_t users) {
  return std::max<std::uint64_t>(4096, (users + 1023) / 1024);
}

Moments row_moments(const mpi::Comm& comm, std::span<const double> rows, std::uint64_t first,
                    std::uint64_t n, int J, std::uint64_t block) {
  const std::uint64_t blocks = (n + block - 1) / block;
  const std::uint64_t end = first + rows.size() / J;
  using RowsMap =
      Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  // The blocks this rank holds rows of, and its rows of block b.
  const std::uint64_t b0 = first / block, b1 = first < end ? (end - 1) / block + 1 : b0;
  auto rows_of = [&](std::uint64_t b) {
    const std::uint64_t lo = std::max(first, b * block), hi = std::min(end, (b + 1) * block);
    return RowsMap(rows.data() + (lo - first) * J, static_cast<Eigen::Index>(hi - lo), J);
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
  m.mean /= static_cast<double>(n);

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
  m.covariance /= static_cast<double>(n);
  return m;
}

Moments population_moments(const mpi::Comm& comm, const std::string& path, std::uint64_t users,
                           int J) {
  const std::uint64_t block = population_moment_block(users);
  const Partition mine = Partition::uniform((users + block - 1) / block, comm.size());
  const int me = comm.rank();
  const std::uint64_t row0 = std::min(users, mine.begin(me) * block);
  const std::uint64_t row1 = std::min(users, mine.end(me) * block);
  const std::vector<double> U =
      io::read_model_rows(path, comm, "user_factors", row0, row1 - row0, J);
  return row_moments(comm, U, row0, users, J, block);
}

}  // namespace pref
