#pragma once
// The randomized range finder of the SVD initialization (`--init svd`, solver/svd/init.hpp) on
// the sparse label matrix, and the stopping rule of its power iterations, which the dense
// randomized path (solver/svd/dense.hpp) shares.
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "solver/base/mpi.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/svd/init.hpp"

namespace pref::svd {

// ---------------------------------------------------------------------------------------------
// The randomized range finder (Halko, Martinsson, Tropp 2011, algorithms 4.4 and 5.1).

// The end of the power iterations (randomized_svd, dense_randomized): settled() is true when
// every one of the top r singular values of R (k x k, replicated) changed by less than tol
// relatively since the previous call. Rank 0 decides and every rank follows, so all ranks
// take the same number of passes.
class PowerStop {
 public:
  PowerStop(int r, double tol) : r_(r), tol_(tol) {}
  bool settled(const mpi::Comm& comm, const std::vector<double>& R, int k) {
    if (!(tol_ > 0)) return false;
    double decided[2] = {0, 0};  // settled, change
    if (comm.rank() == 0) {
      const Eigen::Map<const Eigen::MatrixXd> rm(R.data(), k, k);
      const Eigen::VectorXd sv = Eigen::JacobiSVD<Eigen::MatrixXd>(rm).singularValues();
      if (!prev_.empty()) {
        change_ = 0;
        for (int j = 0; j < std::min(r_, k); ++j)
          change_ = std::max(change_, std::abs(sv[j] - prev_[j]) / std::max(sv[j], 1e-300));
      }
      prev_.assign(sv.data(), sv.data() + k);
      decided[0] = change_ < tol_;
      decided[1] = change_;
    }
    mpi::broadcast(comm, std::span<double>(decided, 2), 0);
    change_ = decided[1];
    return decided[0] != 0;
  }
  // The last change measured (infinity before two calls).
  double change() const { return change_; }

 private:
  int r_;
  double tol_;
  std::vector<double> prev_;
  double change_ = std::numeric_limits<double>::infinity();
};

// The truncated SVD of the sparse M by the range finder above (`--init svd`). Collective.
TruncatedSvd randomized_svd(const mpi::Comm& comm, const LabelMatrix& train, const SvdConfig& cfg);

}  // namespace pref::svd
