#pragma once
// The row problem of both half-steps: a J-dimensional L2-regularized logistic regression
//   f(w) = sum_k BCE(sigmoid(x_k . w), y_k) + (mu/2) |w|^2,
// solved by Newton steps with the exact Hessian (Cholesky) and a backtracking line search over a
// fixed ladder of step lengths, so that f never increases. The same rule is applied by the
// distributed comparison half-step (solver/fit/fit.cpp), which evaluates the ladder remotely.
#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "solver/base/aligned.hpp"
#include "solver/newton/loss.hpp"

namespace pref {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Newton direction d = -(H)^-1 g for a symmetric H (lower triangle used). When H is not
// positive definite (only possible without regularization), a growing multiple of the identity
// is added. Returns false if no direction could be found.
bool newton_direction(Eigen::MatrixXd& H, const Eigen::VectorXd& g, Eigen::VectorXd& d);
// The same, by the fixed-J Cholesky of solver/newton/kernels.hpp when J <= kMaxSmallJ and H is
// clearly positive definite, else by newton_direction.
bool direction(Eigen::MatrixXd& H, const Eigen::VectorXd& g, Eigen::VectorXd& d);

// q[k] = x_k . d for the partners x_k = table row idx[k].
void project(const double* d, int J, const double* table, std::span<const std::uint32_t> idx,
             double* q);

struct RowStats {
  double grad_norm2 = 0;  // |gradient|^2 at the starting w of the last step tried
  int steps_taken = 0;
  // With solve_row's track_loss: the labels' loss sum_k BCE at the returned w, as the loss at
  // the start of the last step tried plus the accepted step's change (ladder_search's sum),
  // which equals a pass at the new w up to rounding; NaN otherwise.
  double loss = std::numeric_limits<double>::quiet_NaN();
};

// Scratch space of one thread, reused across rows so rows allocate nothing.
struct RowWorkspace {
  RowMatrix x;  // gathered partner rows (chunk x J)
  Eigen::VectorXd m, q, r, s, g, d, pr;
  Eigen::VectorXd pd;  // P d: the prior's curvature along the direction
  Eigen::MatrixXd h;
  std::vector<double> margins, probs, steps, change;
  // A row's partner rows copied into one contiguous block (gather_partners).
  AlignedVector<double> partners;
  std::vector<std::uint32_t> order;  // 0, 1, 2, ...: the block's own row numbers
  // solve_rows: one workspace per row of the group, and the rows' inverse Hessians.
  std::vector<RowWorkspace> group;
  std::vector<double> inverses;
};

// A row's partners: rows idx[k] of table.
struct Partners {
  const double* table;
  std::span<const std::uint32_t> idx;
};
// The copy of gather_partners holds at most this many values (16 MiB per thread).
inline constexpr std::size_t kMaxGatheredValues = std::size_t(1) << 21;

// Copies the partner rows table[idx[k]] into ws.partners (row k at k J) and returns them as
// that block with the indices 0..n-1: the passes of a row over a table far larger than the
// caches (the comparison half-step's U rows) then miss the caches once per label instead of
// once per pass. A row with more than kMaxGatheredValues values is returned as given (table,
// idx), so the copy never costs more than that. Values and the order of every sum are the same
// either way.
Partners gather_partners(int J, const double* table, std::span<const std::uint32_t> idx,
                         RowWorkspace& ws);

// One LabelPass (solver/newton/loss.hpp) over a row's labels by the label kernels.
double accumulate(const double* w, int J, const double* table, std::span<const std::uint32_t> idx,
                  std::span<const float> y, const LabelPass& out, RowWorkspace& ws);

// The change of sum_k BCE along a step: sum_k BCE(m_k + t q_k, y_k) - BCE(m_k, y_k), summed
// term by term (see bce_change); p_k = sigmoid(m_k).
double loss_change(const double* m, const double* p, const double* q, const float* y, std::size_t n,
                   double t, std::vector<double>& scratch);

// The line search of one row along a Newton direction d with slope gd = g.d < 0: the first
// step t of the ladder (solver/newton/loss.hpp) whose change of the objective,
//   scale t (lin + t quad / 2) + sum_k BCE(m_k + t q_k, y_k) - BCE(m_k, y_k),
// passes the Armijo test; -1 when none does. The first term is the penalty's change (for the
// ridge scale mu, lin w.d, quad |d|^2; for a Gaussian prior scale 1, lin d.P(w - m), quad
// d.P d), the sum the labels' (loss_change, with p_k = sigmoid(m_k) and q_k = x_k . d), each
// summed apart as loss.hpp explains. The row solver and adapt's new-user solve share it.
// label_change (optional): the labels' part of the accepted step's change.
int ladder_search(double scale, double lin, double quad, double gd, const double* m,
                  const double* p, const double* q, const float* y, std::size_t n,
                  std::vector<double>& scratch, double* label_change = nullptr);

// The regularization of a row: the ridge (mu/2)|w|^2, or a Gaussian prior
// (1/2)(w - mean)^T precision (w - mean) (precision J x J symmetric, mean J; both outlive the
// call). The ridge converts implicitly, so `solve_row(..., mu, ...)` reads as before.
struct RowPrior {
  double mu = 0;
  const double* precision = nullptr;  // nullptr: the ridge
  const double* mean = nullptr;
  RowPrior(double ridge) : mu(ridge) {}  // NOLINT(google-explicit-constructor)
  RowPrior(const double* precision_, const double* mean_) : precision(precision_), mean(mean_) {}
};

// Solves one row in place: partners are rows idx[k] of `table` (row-major, J columns), labels
// y[k]. steps Newton steps (each with line search). On return ws.h holds the objective's
// Hessian (lower triangle) at the start of the last step: at convergence the Laplace
// approximation's posterior precision of the row. track_loss: RowStats::loss too.
RowStats solve_row(double* w, int J, const double* table, std::span<const std::uint32_t> idx,
                   std::span<const float> y, const RowPrior& prior, int steps, RowWorkspace& ws,
                   bool track_loss = false);

// A row of solve_rows: its w (J values, solved in place), its partners' indices and labels.
struct GroupRow {
  double* w;
  std::span<const std::uint32_t> idx;
  std::span<const float> y;
};

// solve_row on each of `rows` (at most kernels::kMaxRows) against the same table and prior,
// with the rows' Newton directions found together, one row per vector lane
// (kernels::Table::directions): a row's J x J factorization is a chain of dependent steps, and
// rows side by side fill the vector units. Each row's result is its own, whichever rows share
// its group (a row the lanes refuse, H singular to working precision, takes `direction`'s
// path alone). inverse_acc (J x J lower triangle, column-major), when not null: the inverse of
// each row's Hessian at the start of its last Newton step (as solve_row leaves it in ws.h) is
// added to it, row after row (add_spd_inverse; from the same factorization as the direction).
void solve_rows(std::span<const GroupRow> rows, int J, const double* table, const RowPrior& prior,
                int steps, RowWorkspace& ws, double* inverse_acc);

// acc (J x J column-major, lower triangle) += H^-1 for a symmetric positive definite H (lower
// triangle read): the Laplace approximation's posterior covariance of a row whose Hessian is H.
// Fixed-size code for J <= 32.
void add_spd_inverse(int J, const double* H, double* acc);

// Accumulates, for w, the loss sum_k BCE(x_k.w, y_k), the gradient sum_k (s(m_k)-y_k) x_k and the
// Hessian sum_k s'(m_k) x_k x_k^T (its lower triangle, as LabelPass) of the given partners. g and
// H are added to.
double accumulate_row(const double* w, int J, const double* table,
                      std::span<const std::uint32_t> idx, std::span<const float> y,
                      Eigen::VectorXd& g, Eigen::MatrixXd* H, RowWorkspace& ws,
                      std::vector<double>* margins);

}  // namespace pref
