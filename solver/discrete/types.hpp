#pragma once
// `pref types` (issue 13, docs/design.md "Discrete types"): a discrete-type factorization fitted
// by hard EM under the ordinal label model (solver/newton/ordinal.hpp). Every training user is one
// of K atoms a_k, every comparison has factors z_p, and the fit maximizes
//   L = sum_labels log P(y_l | a_{k(u_l)} . z_{p_l}; r, s, a)
//       - kRidge/2 (sum_k |a_k|^2 + sum_p |z_p|^2)
// over the assignment k(u), the atoms, Z and (r, s, a). Start: Z from a fitted model, the atoms
// and the assignment from the k-means of its fitted users; then (0) (r, s, a), and
// kStartAlternations times Z given the atoms followed by (r, s, a); then `rounds` rounds of
//   (a) each user to the atom maximizing its labels' log-likelihood (ties: the lowest atom),
//   (b) each atom by Newton on its members' labels, (c) each z_p by Newton on its labels given
//   its labelers' atoms, (d) (r, s, a) by Newton.
// The Newton steps use the Fisher information in the margin (always >= 0) plus the ridge as the
// curvature, and a backtracking line search (Armijo, steps 1, 1/2, ..., 2^-11) per row, so that
// L never decreases; (r, s, a) uses its 3 x 3 Hessian with eigenvalues clamped to be positive.
//
// Distribution: users (and their labels, by_user) and comparisons (by_comparison) as
// distribute() places them; Z, the atoms, the assignment and (r, s, a) replicated. Sums over
// comparisons (the objective, the likelihood parameters' gradient and Hessian) are gathered per
// comparison and added in comparison order, and each z_p is refit by its owner alone, so they
// do not depend on the rank count; the atoms' labels are counted per (atom, comparison,
// outcome), the counts summed over the ranks (exact), and every rank refits every atom from
// them. So the fit is bitwise the same at every rank count (the tests check it at 1, 2 and 4
// ranks). A row's Newton sums run over its labels grouped by (partner, outcome): count x term.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "solver/base/mpi.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/newton/ordinal.hpp"

namespace pref::types {

inline constexpr double kRidge = 1e-2;
// Step (0): Z given the k-means atoms, then (r, s, a), this many times (refitz.py's 3).
inline constexpr int kStartAlternations = 3;
inline constexpr int kMaxNewtonSteps = 30;
inline constexpr int kLadder = 12;  // step lengths 1, 1/2, ..., 2^-11
inline constexpr double kArmijo = 1e-4;
inline constexpr double kGradTol = 1e-8;  // per row: max |gradient coordinate|
// The users' assignment tabulates log P(outcome | atom . z_p) when it takes at most this per rank.
inline constexpr std::uint64_t kAssignTableBytes = std::uint64_t{1} << 29;

struct Options {
  int K = 128;
  int rounds = 3;
  std::uint64_t seed = 1;
};

struct Model {
  int J = 0, K = 0;
  std::uint64_t comparisons = 0, users = 0;  // users: with at least one training label
  std::vector<double> Z;                     // comparisons x J, row-major
  std::vector<double> atoms;                 // K x J, row-major
  std::vector<double> weights;               // K: share of the assigned users
  std::vector<int> assign;                   // all users of the data (-1: no training label)
  ordinal::Params params;
  double objective = 0;
  std::vector<double> history;     // L after the start, after step (0), after each round
  std::vector<double> reassigned;  // share of users whose atom changed, per round
};

// labels: the training split, distributed (by_user and by_comparison both present).
// U: this rank's rows [U_first, U_first + U.size() / J) of the model's fitted users (the ranks'
// ranges contiguous and in rank order, together every one of the labels.users rows: the
// distributed k-means of solver/discrete/kmeans.hpp); Z: the model's comparison factors
// (replicated). log receives one line per step (rank 0 prints it).
Model fit(const mpi::Comm& comm, const LabelMatrix& labels, const std::vector<double>& U,
          std::uint64_t U_first, std::vector<double> Z, int J, const Options& opt,
          const std::function<void(const std::string&)>& log);

// The objective L of the current state. Collective.
double objective(const mpi::Comm& comm, const LabelMatrix& labels, const Model& m);

}  // namespace pref::types
