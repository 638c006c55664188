#pragma once
// The rank-distributed alternating Newton fit of U (users x J) and Z (comparisons x J).
//
// A sweep is a user half-step (every u_i solved with Z fixed) then a comparison half-step (every
// z_p with U fixed). Users always read the Z rows they need from their owners (fetch). For the
// comparison half-step there are two exchange patterns:
//   ship:   comparison owners fetch the U rows of their labels and solve locally;
//   reduce: users stay in place; every rank sums, per comparison it touches, the partial
//           gradient, Hessian and loss of its own users, and reduces them to the owner, which
//           takes the Newton step; the line search runs the same way.
// A cost model (bytes exchanged per sweep) picks one unless forced.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "solver/base/mpi.hpp"
#include "solver/distribute.hpp"
#include "solver/metrics.hpp"

namespace pref {

enum class Exchange { kAuto, kShip, kReduce };
const char* exchange_name(Exchange e);

struct FitConfig {
  int J = 8;
  double mu_u = 1.0, mu_z = 1.0;
  int max_sweeps = 100;
  double tol = 1e-6;  // stop when the relative objective change falls below
  int newton_steps = 1;
  std::uint64_t seed = 1;
  double init_scale = 0.1;  // random init: N(0, init_scale^2) entries
  Exchange exchange = Exchange::kAuto;
  bool shared = false;  // the non-personalized baseline: u_i = 1 for all users, J = 1
  int threads = 1;
};

struct SweepRecord {
  int sweep = 0;  // 0: the initial state
  double objective = 0, train_logloss = 0, grad_norm = 0, rel_change = 0;
  std::optional<SplitMetrics> validation;
  double seconds_user = 0, seconds_comparison = 0, seconds_eval = 0;
  std::uint64_t bytes_exchanged = 0;  // by all ranks during the sweep
};

// Factors of this rank's rows (row-major, J columns).
struct Factors {
  int J = 0;
  std::vector<double> U;  // rows: parts.users range of this rank
  std::vector<double> Z;  // rows: parts.comparisons range of this rank
};

// Random initial factors (a pure function of seed and global ids).
Factors random_factors(const mpi::Comm& comm, const Partitions& parts, const FitConfig& cfg);

struct FitResult {
  Factors factors;
  std::vector<SweepRecord> history;
  bool converged = false;
  Exchange exchange = Exchange::kShip;
};

// on_sweep is called on every rank after each record (for progress and metrics files).
// train and validation are consumed (their label arrays become the solver's own).
FitResult fit(const mpi::Comm& comm, LabelMatrix train, std::optional<LabelMatrix> validation,
              Factors init, const FitConfig& cfg,
              const std::function<void(const SweepRecord&)>& on_sweep = {});

// Scores every label of `m` with the given factors: fetches Z rows, computes margins per user.
// The matrix must be partitioned like the factors. Collective.
SplitMetrics evaluate_split(const mpi::Comm& comm, const LabelMatrix& m, const Factors& f,
                            std::vector<double>* user_aucs = nullptr);

}  // namespace pref
