#include "solver/adapt.hpp"

#include <fmt/core.h>

#include <Eigen/LU>
#include <cmath>
#include <limits>

#include "solver/base/error.hpp"
#include "solver/base/rng.hpp"
#include "solver/metrics.hpp"

namespace pref::adapt {

namespace {
// max |d^3 BCE(m, y) / dm^3| / 3! = max |sigma''(m)| / 6 = 1 / (36 sqrt 3).
constexpr double kBceCubic = 1.0 / (36.0 * 1.7320508075688772);
// Safety factor for rounding in the bound (the bound itself is exact arithmetic).
constexpr double kCubicMargin = 0.5;
}  // namespace

const char* select_name(Select s) {
  switch (s) {
    case Select::kRandom:
      return "random";
    case Select::kActive:
      return "active";
    case Select::kBayes:
      return "bayes";
    case Select::kInfo:
      return "info";
  }
  return "?";
}

Penalty Penalty::ridge(int J, double lambda) {
  Penalty p;
  p.mean = Eigen::VectorXd::Zero(J);
  p.precision = lambda * Eigen::MatrixXd::Identity(J, J);
  return p;
}

Penalty Penalty::gaussian(const Eigen::VectorXd& mean, const Eigen::MatrixXd& covariance,
                          const std::string& what) {
  const int J = static_cast<int>(mean.size());
  Eigen::LLT<Eigen::MatrixXd> llt(covariance);
  if (llt.info() != Eigen::Success || !mean.allFinite() || !covariance.allFinite())
    throw InputError(what + ": the prior covariance is not positive definite");
  Penalty p;
  p.mean = mean;
  p.precision = llt.solve(Eigen::MatrixXd::Identity(J, J));
  // Exactly symmetric, so that the Hessians built from it are too.
  p.precision = 0.5 * (p.precision + p.precision.transpose()).eval();
  return p;
}

void gradient_hessian(const Eigen::VectorXd& u, const Answers& a, const Penalty& p, Workspace& ws) {
  const int J = a.J;
  const std::size_t n = a.idx.size();
  ws.g.setZero(J);
  ws.H.setZero(J, J);
  ws.row.margins.resize(n);
  ws.row.probs.resize(n);
  LabelPass out;
  out.g = ws.g.data();
  out.H = ws.H.data();
  out.margins = ws.row.margins.data();
  out.probs = ws.row.probs.data();
  if (n > 0) accumulate(u.data(), J, a.Z, a.idx, a.y, out, ws.row);
  // accumulate fills the lower triangle; V_t is used (and written) as a full matrix.
  ws.H.triangularView<Eigen::StrictlyUpper>() = ws.H.transpose();
  ws.diff = u - p.mean;
  ws.g.noalias() += p.precision * ws.diff;
  ws.H += p.precision;
}

SolveStats solve(Eigen::VectorXd& u, const Answers& a, const Penalty& p, Workspace& ws) {
  SolveStats st;
  const int J = a.J;
  const std::size_t n = a.idx.size();
  for (;;) {
    gradient_hessian(u, a, p, ws);
    st.grad_inf = ws.g.cwiseAbs().maxCoeff();
    if (st.grad_inf <= kGradTol || st.steps >= kMaxNewtonSteps) break;
    if (!direction(ws.H, ws.g, ws.d)) break;
    const double gd = ws.g.dot(ws.d);
    if (!(gd < 0)) break;
    ws.row.steps.resize(n);
    if (n > 0) project(ws.d.data(), J, a.Z, a.idx, ws.row.steps.data());
    // The penalty's change along t d, summed apart from the losses' (newton.hpp: the
    // objective's own difference would drown in rounding near the optimum).
    ws.Pd.noalias() = p.precision * ws.d;
    const double lin = ws.diff.dot(ws.Pd), quad = ws.d.dot(ws.Pd);  // diff = u - m, kept
    int chosen = -1;
    // The full step needs no evaluation when it provably passes Armijo: the penalty is
    // quadratic and each BCE term's third derivative is sigma'' (|sigma''| <= 1 / (6 sqrt 3)),
    // so f(u + d) - f(u) <= g.d + d^T H d / 2 + kBceCubic sum_k |z_k . d|^3 with H d = -g
    // (d is the Newton direction: the Cholesky solve of the Hessian at u), that is
    // <= g.d / 2 + kBceCubic sum_k |q_k|^3, which is <= kArmijo g.d when the test below holds.
    // Near the optimum every step is accepted this way, without the line search's logarithms.
    double cubic = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const double q = std::abs(ws.row.steps[k]);
      cubic += q * q * q;
    }
    if (kBceCubic * cubic <= kCubicMargin * (0.5 - kArmijo) * -gd) chosen = 0;
    if (chosen < 0)
      chosen = ladder_search(1.0, lin, quad, gd, ws.row.margins.data(), ws.row.probs.data(),
                             ws.row.steps.data(), a.y.data(), n, ws.row.change);
    if (chosen < 0) break;
    u += ladder_step(chosen) * ws.d;
    ++st.steps;
  }
  return st;
}

void criterion(const Eigen::VectorXd& u, const Eigen::LLT<Eigen::MatrixXd>& V,
               const Eigen::MatrixXd& candidates, Eigen::VectorXd& scores, Eigen::MatrixXd& W) {
  const Eigen::Index n = candidates.rows();
  const int J = static_cast<int>(u.size());
  // z^T V^-1 z = |L^-1 z|^2 for the whole pool at once: a forward substitution on the
  // candidates as columns (column i holds coordinate i of every candidate), so each of its
  // J^2 / 2 updates, and the squared norms, are vectorized passes over the pool.
  thread_local Eigen::ArrayXd norm2;
  W = candidates;
  scores.noalias() = W * u;  // the margins, before W is overwritten
  norm2.setZero(n);
  const Eigen::MatrixXd& L = V.matrixLLT();  // lower triangle
  for (int i = 0; i < J; ++i) {
    for (int j = 0; j < i; ++j) W.col(i) -= L(i, j) * W.col(j);
    W.col(i) *= 1.0 / L(i, i);
    norm2 += W.col(i).array().square();
  }
  // sigma'(m) = e / (1 + e)^2 with e = exp(-|m|) (symmetric, never inf / inf), by Eigen's
  // vectorized exp.
  const Eigen::ArrayXd e = (-scores.array().abs()).exp();
  const Eigen::ArrayXd sp = e / (1 + e).square();
  scores = (sp.square() * norm2).matrix();
}

KMeans kmeans(const double* rows, std::size_t n, int J, int K, std::uint64_t seed) {
  if (n == 0 || K < 1) throw InputError("k-means: no rows to cluster");
  using RowM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowM> X(rows, static_cast<Eigen::Index>(n), J);
  K = static_cast<int>(std::min<std::size_t>(std::size_t(K), n));
  Rng rng(seed, static_cast<Stream>(kMixtureStream), 0);
  KMeans out;
  out.K = K;
  out.centres.resize(std::size_t(K) * J);
  Eigen::Map<RowM> C(out.centres.data(), K, J);
  // k-means++: the first centre uniform, each next one drawn with probability proportional to
  // the squared distance to the nearest centre so far (a scan of the cumulative sum).
  std::vector<double> d2(n, std::numeric_limits<double>::infinity());
  C.row(0) = X.row(static_cast<Eigen::Index>(rng.below(n)));
  for (int k = 1; k < K; ++k) {
    double total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      d2[i] = std::min(d2[i], (X.row(i) - C.row(k - 1)).squaredNorm());
      total += d2[i];
    }
    std::size_t pick = n - 1;
    if (total > 0) {
      const double r = rng.uniform() * total;
      double acc = 0;
      for (std::size_t i = 0; i < n; ++i) {
        acc += d2[i];
        if (r < acc) {
          pick = i;
          break;
        }
      }
    } else {
      pick = rng.below(n);
    }
    C.row(k) = X.row(pick);
  }
  std::vector<int>& assign = out.assign;
  assign.assign(n, -1);
  std::vector<std::size_t> count(K);
  for (int it = 0; it < kMixtureIterations; ++it) {
    bool changed = false;
    for (std::size_t i = 0; i < n; ++i) {
      int best = 0;
      double bd = (X.row(i) - C.row(0)).squaredNorm();
      for (int k = 1; k < K; ++k) {
        const double d = (X.row(i) - C.row(k)).squaredNorm();
        if (d < bd) bd = d, best = k;
      }
      if (assign[i] != best) changed = true, assign[i] = best;
    }
    if (!changed) break;
    RowM S = RowM::Zero(K, J);
    std::fill(count.begin(), count.end(), 0);
    for (std::size_t i = 0; i < n; ++i) S.row(assign[i]) += X.row(i), ++count[assign[i]];
    for (int k = 0; k < K; ++k)
      if (count[k] > 0) C.row(k) = S.row(k) / double(count[k]);
  }
  return out;
}

Mixture fit_mixture(const double* rows, std::size_t n, int J, int K, std::uint64_t seed) {
  if (n == 0 || K < 1) throw InputError("mixture prior: no users to cluster");
  using RowM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowM> X(rows, static_cast<Eigen::Index>(n), J);
  const KMeans km = kmeans(rows, n, J, K, seed);
  K = km.K;
  Eigen::Map<const RowM> C(km.centres.data(), K, J);
  const std::vector<int>& assign = km.assign;
  std::vector<std::size_t> count(K);
  std::fill(count.begin(), count.end(), 0);
  std::vector<Eigen::MatrixXd> cov(K, Eigen::MatrixXd::Zero(J, J));
  Eigen::MatrixXd pooled = Eigen::MatrixXd::Zero(J, J);
  for (std::size_t i = 0; i < n; ++i) {
    const Eigen::VectorXd d = (X.row(i) - C.row(assign[i])).transpose();
    cov[assign[i]].noalias() += d * d.transpose();
    ++count[assign[i]];
  }
  for (int k = 0; k < K; ++k) pooled += cov[k];
  pooled /= double(n);
  Mixture mix;
  const Eigen::MatrixXd ridge = kMixtureRidge * Eigen::MatrixXd::Identity(J, J);
  for (int k = 0; k < K; ++k) {
    if (count[k] == 0) continue;
    const Eigen::MatrixXd S = count[k] > std::size_t(3 * J)
                                  ? Eigen::MatrixXd(cov[k] / double(count[k]) + ridge)
                                  : Eigen::MatrixXd(pooled + ridge);
    mix.components.push_back(Penalty::gaussian(C.row(k).transpose(), S, "mixture prior"));
    mix.log_weight.push_back(std::log(double(count[k]) / double(n)));
    Eigen::LLT<Eigen::MatrixXd> L(S);
    mix.log_det_cov.push_back(2 * L.matrixLLT().diagonal().array().log().sum());
  }
  return mix;
}

int mixture_update(const Mixture& mix, const Answers& a, MixturePosterior& post, Workspace& ws) {
  const int K = mix.size(), J = a.J;
  if (post.u.size() != std::size_t(K)) {
    post.u.resize(K);
    for (int k = 0; k < K; ++k) post.u[k] = mix.components[k].mean;
    post.H.resize(K);
    post.log_evidence.resize(K);
    post.weight.resize(K);
  }
  int steps = 0;
  double top = -std::numeric_limits<double>::infinity();
  for (int k = 0; k < K; ++k) {
    const Penalty& p = mix.components[k];
    if (a.idx.empty())
      gradient_hessian(post.u[k], a, p, ws);
    else
      steps += solve(post.u[k], a, p, ws).steps;
    // After solve, ws.row.margins, ws.diff and ws.H are those of the returned u_k.
    double f = 0.5 * ws.diff.dot(p.precision * ws.diff);
    for (std::size_t s = 0; s < a.idx.size(); ++s) f += bce(ws.row.margins[s], a.y[s]);
    post.H[k].compute(ws.H);
    const double log_det_H = 2 * post.H[k].matrixLLT().diagonal().array().log().sum();
    post.log_evidence[k] = mix.log_weight[k] - f - 0.5 * log_det_H - 0.5 * mix.log_det_cov[k];
    top = std::max(top, post.log_evidence[k]);
  }
  double total = 0;
  for (int k = 0; k < K; ++k) total += post.weight[k] = std::exp(post.log_evidence[k] - top);
  post.mean.setZero(J);
  for (int k = 0; k < K; ++k) {
    post.weight[k] /= total;
    post.mean += post.weight[k] * post.u[k];
  }
  post.covariance.setZero(J, J);
  const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(J, J);
  for (int k = 0; k < K; ++k) {
    const Eigen::VectorXd d = post.u[k] - post.mean;
    post.covariance += post.weight[k] * (post.H[k].solve(I) + d * d.transpose());
  }
  post.covariance = 0.5 * (post.covariance + post.covariance.transpose()).eval();
  return steps;
}

namespace {
double binary_entropy(double p) {
  if (!(p > 0 && p < 1)) return 0;
  return -(p * std::log(p) + (1 - p) * std::log1p(-p));
}
}  // namespace

void information(const MixturePosterior& post, const Eigen::MatrixXd& candidates,
                 Eigen::VectorXd& scores, Workspace& ws) {
  const Eigen::Index n = candidates.rows();
  const int K = static_cast<int>(post.u.size());
  Eigen::ArrayXd pbar = Eigen::ArrayXd::Zero(n), hbar = Eigen::ArrayXd::Zero(n);
  const double c = M_PI / 8;
  for (int k = 0; k < K; ++k) {
    const double w = post.weight[k];
    if (!(w >= kInfoMinWeight)) continue;
    // z^T H_k^-1 z for the pool at once (as criterion: a forward substitution on columns).
    const Eigen::MatrixXd& L = post.H[k].matrixLLT();
    const int J = static_cast<int>(L.rows());
    ws.W = candidates;
    ws.margins.noalias() = ws.W * post.u[k];
    Eigen::ArrayXd v = Eigen::ArrayXd::Zero(n);
    for (int i = 0; i < J; ++i) {
      for (int j = 0; j < i; ++j) ws.W.col(i) -= L(i, j) * ws.W.col(j);
      ws.W.col(i) *= 1.0 / L(i, i);
      v += ws.W.col(i).array().square();
    }
    for (Eigen::Index r = 0; r < n; ++r) {
      const double p = sigmoid(ws.margins[r] / std::sqrt(1 + c * v[r]));
      pbar[r] += w * p;
      hbar[r] += w * binary_entropy(p);
    }
  }
  scores.resize(n);
  for (Eigen::Index r = 0; r < n; ++r) scores[r] = binary_entropy(pbar[r]) - hbar[r];
}

int best_unasked(const Eigen::VectorXd& scores, const std::vector<char>& asked) {
  int best = -1;
  for (Eigen::Index c = 0; c < scores.size(); ++c) {
    if (asked[c] || std::isnan(scores[c])) continue;
    // Strictly greater: the first (lowest) index of equal scores stays.
    if (best < 0 || scores[c] > scores[best]) best = static_cast<int>(c);
  }
  return best;
}

namespace {
double held_out_auc(const Eigen::VectorXd& u, const double* Z, int J, const UserPool& pool) {
  std::vector<Scored> items(pool.test_comparison.size());
  Eigen::Map<const Eigen::VectorXd> uv(u.data(), J);
  for (std::size_t k = 0; k < items.size(); ++k) {
    Eigen::Map<const Eigen::VectorXd> z(Z + std::size_t(pool.test_comparison[k]) * J, J);
    items[k] = {z.dot(uv), pool.test_value[k]};
  }
  return group_auc(items);
}

// Index of the r-th not yet asked pool entry.
int nth_unasked(const std::vector<char>& asked, std::uint64_t r) {
  for (std::size_t c = 0; c < asked.size(); ++c)
    if (!asked[c] && r-- == 0) return static_cast<int>(c);
  return -1;
}
}  // namespace

Types Types::from_file(const std::vector<double>& atoms, const std::vector<double>& weights, int J,
                       const ordinal::Params& lik) {
  Types t;
  t.J = J;
  t.lik = lik;
  double total = 0;
  for (double w : weights) total += w;
  for (std::size_t k = 0; k < weights.size(); ++k) {
    if (!(weights[k] > 0)) continue;
    t.atoms.insert(t.atoms.end(), atoms.begin() + k * J, atoms.begin() + (k + 1) * J);
    t.log_prior.push_back(std::log(weights[k] / total));
  }
  if (t.log_prior.empty()) throw InputError("the types file has no atom of positive weight");
  return t;
}

namespace {
double entropy3(double a, double b, double c) {
  double h = 0;
  for (double p : {a, b, c})
    if (p > 0) h -= p * std::log(p);
  return h;
}
}  // namespace

void discrete_information(const Eigen::VectorXd& w, const std::array<Eigen::MatrixXd, 3>& Q,
                          const Eigen::MatrixXd& Hq, Eigen::VectorXd& scores) {
  const Eigen::Index n = Q[0].rows();
  const Eigen::VectorXd p0 = Q[0] * w, p1 = Q[1] * w, p2 = Q[2] * w, hbar = Hq * w;
  scores.resize(n);
  for (Eigen::Index c = 0; c < n; ++c) scores[c] = entropy3(p0[c], p1[c], p2[c]) - hbar[c];
}

void Types::answer_row(const double* z, double* row) const {
  const int k_atoms = K();
  for (int k = 0; k < k_atoms; ++k) {
    const double* a = atoms.data() + std::size_t(k) * J;
    double m = 0;
    for (int j = 0; j < J; ++j) m += a[j] * z[j];
    const std::array<double, 3> q = ordinal::probs(m, lik);
    for (int o = 0; o < 3; ++o) {
      row[o * k_atoms + k] = q[o];
      row[(3 + o) * k_atoms + k] = ordinal::log_lik(o, m, lik);
    }
    row[6 * k_atoms + k] = entropy3(q[0], q[1], q[2]);
  }
}

void Types::tabulate(const double* Z, std::uint64_t P) {
  const std::uint64_t width = std::uint64_t(kTableRow) * std::uint64_t(K());
  table.clear();
  if (P * width * sizeof(double) > kTableBytes) return;
  table.resize(P * width);
  for (std::uint64_t p = 0; p < P; ++p) answer_row(Z + p * J, table.data() + p * width);
}

namespace {
// The pool's comparison factors as the candidate rows (ws.candidates), and out emptied for this
// user: the start of every adapt_user path.
void start_user(const double* Z, int J, const UserPool& pool, const Plan& plan, Workspace& ws,
                UserResult& out) {
  const std::size_t nA = pool.comparison.size();
  ws.candidates.resize(static_cast<Eigen::Index>(nA), J);
  for (std::size_t c = 0; c < nA; ++c)
    ws.candidates.row(c) =
        Eigen::Map<const Eigen::RowVectorXd>(Z + std::size_t(pool.comparison[c]) * J, J);
  out.asked.clear();
  out.answers.clear();
  out.budget_auc.assign(plan.budgets.size(), std::numeric_limits<double>::quiet_NaN());
  out.newton_steps = 0;
}

// adapt_user with plan.types: the exact discrete posterior (Types).
void adapt_user_types(std::uint64_t user, const double* Z, int J, const UserPool& pool,
                      const Plan& plan, Workspace& ws, UserResult& out) {
  const Types& ty = *plan.types;
  const std::size_t nA = pool.comparison.size();
  const int K = ty.K();
  start_user(Z, J, pool, plan, ws, out);
  using RowM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowM> A(ty.atoms.data(), K, J);
  thread_local std::array<Eigen::MatrixXd, 3> Q, LQ;
  thread_local Eigen::MatrixXd Hq;
  thread_local std::vector<double> scratch;
  const auto n = static_cast<Eigen::Index>(nA);
  for (int o = 0; o < 3; ++o) {
    Q[o].resize(n, K);
    LQ[o].resize(n, K);
  }
  Hq.resize(n, K);
  scratch.resize(std::size_t(Types::kTableRow) * K);
  for (std::size_t c = 0; c < nA; ++c) {
    const double* row = scratch.data();
    if (ty.table.empty())
      ty.answer_row(Z + std::size_t(pool.comparison[c]) * J, scratch.data());
    else
      row = ty.table.data() + std::size_t(pool.comparison[c]) * Types::kTableRow * K;
    for (int k = 0; k < K; ++k) {
      for (int o = 0; o < 3; ++o) {
        Q[o](c, k) = row[o * K + k];
        LQ[o](c, k) = row[(3 + o) * K + k];
      }
      Hq(c, k) = row[6 * K + k];
    }
  }
  Eigen::VectorXd lw = Eigen::Map<const Eigen::VectorXd>(ty.log_prior.data(), K), w(K);
  auto normalize = [&] {
    const double top = lw.maxCoeff();
    w = (lw.array() - top).exp().matrix();
    w /= w.sum();
  };
  normalize();
  std::vector<char> asked(nA, 0);
  Rng rng(plan.seed, static_cast<Stream>(kAdaptStream), user);
  Eigen::VectorXd mean = A.transpose() * w;
  std::size_t b = 0;
  for (int t = 0; t < plan.answers; ++t) {
    int pick;
    if (plan.select == Select::kInfo) {
      discrete_information(w, Q, Hq, ws.scores);
      pick = best_unasked(ws.scores, asked);
      if (pick < 0) pick = nth_unasked(asked, 0);
    } else {
      pick = nth_unasked(asked, rng.below(nA - std::size_t(t)));
    }
    asked[pick] = 1;
    out.asked.push_back(pool.comparison[pick]);
    out.answers.push_back(pool.value[pick]);
    const int o = ordinal::outcome(pool.value[pick]);
    if (o < 0)
      throw InputError(fmt::format("new user {}: answer {} is not 0, 0.5 or 1 (--types)", user,
                                   pool.value[pick]));
    lw += LQ[o].row(pick).transpose();
    normalize();
    const bool at_budget = b < plan.budgets.size() && plan.budgets[b] == t + 1;
    if (at_budget || t + 1 == plan.answers) {
      mean = A.transpose() * w;
      if (at_budget) out.budget_auc[b++] = held_out_auc(mean, Z, J, pool);
    }
  }
  out.u = mean;
  out.covariance.setZero(J, J);
  for (int k = 0; k < K; ++k) {
    const Eigen::VectorXd d = A.row(k).transpose() - mean;
    out.covariance.noalias() += w[k] * d * d.transpose();
  }
  out.covariance = 0.5 * (out.covariance + out.covariance.transpose()).eval();
}
}  // namespace

void adapt_user(std::uint64_t user, const double* Z, int J, const UserPool& pool, const Plan& plan,
                Workspace& ws, UserResult& out) {
  if (plan.types) {
    if (plan.select != Select::kInfo && plan.select != Select::kRandom)
      throw InputError("--types: --select must be info or random");
    adapt_user_types(user, Z, J, pool, plan, ws, out);
    return;
  }
  const std::size_t nA = pool.comparison.size();
  const int K = plan.answers;
  start_user(Z, J, pool, plan, ws, out);
  std::vector<char> asked(nA, 0);
  Rng rng(plan.seed, static_cast<Stream>(kAdaptStream), user);

  const bool info = plan.select == Select::kInfo;
  if (info && !plan.mixture) throw InputError("--select info needs --prior mixture");
  // The criteria of active and bayes, with their own estimate u_sel.
  const bool chooses = plan.select == Select::kActive || plan.select == Select::kBayes;
  const bool mixture = plan.mixture != nullptr;
  // With the criterion's penalty the same as the estimator's, one solve serves both.
  const bool one_solve = chooses && !mixture && plan.selection == plan.estimate;
  Eigen::VectorXd u_sel = chooses ? plan.selection->mean : Eigen::VectorXd();
  Eigen::VectorXd u_est = mixture ? Eigen::VectorXd() : plan.estimate->mean;
  thread_local MixturePosterior post;
  post = MixturePosterior();
  Eigen::LLT<Eigen::MatrixXd> V;
  auto answers = [&] {
    return Answers{Z, J, std::span<const std::uint32_t>(out.asked),
                   std::span<const float>(out.answers)};
  };
  if (plan.select == Select::kBayes) {
    // No answers yet: the MAP is the prior mean and V_0 the prior precision, so even the first
    // question is chosen by the criterion.
    gradient_hessian(u_sel, answers(), *plan.selection, ws);
    V.compute(ws.H);
  }
  // No answers yet: the mixture's components are its prior, so info chooses the first question.
  if (info) mixture_update(*plan.mixture, answers(), post, ws);
  std::size_t b = 0;
  for (int t = 0; t < K; ++t) {
    int pick;
    if (info) {
      information(post, ws.candidates, ws.scores, ws);
      pick = best_unasked(ws.scores, asked);
      if (pick < 0) pick = nth_unasked(asked, 0);  // every score NaN
    } else if (!chooses || (plan.select == Select::kActive && t == 0)) {
      pick = nth_unasked(asked, rng.below(nA - std::size_t(t)));
    } else {
      criterion(u_sel, V, ws.candidates, ws.scores, ws.W);
      pick = best_unasked(ws.scores, asked);
      if (pick < 0) pick = nth_unasked(asked, 0);  // every score NaN: cannot happen for PD V
    }
    asked[pick] = 1;
    out.asked.push_back(pool.comparison[pick]);
    out.answers.push_back(pool.value[pick]);
    if (chooses) {
      // V_{t+1} is recomputed in full at the new estimate (O(t J^2) + a J x J Cholesky): every
      // asked comparison's weight sigma'(u . z_s) changes with u, so a Sherman-Morrison update
      // by the new answer's term alone would not equal the formula.
      out.newton_steps += solve(u_sel, answers(), *plan.selection, ws).steps;
      V.compute(ws.H);
    }
    const bool at_budget = b < plan.budgets.size() && plan.budgets[b] == t + 1;
    if (info) out.newton_steps += mixture_update(*plan.mixture, answers(), post, ws);
    if (at_budget || t + 1 == K) {
      if (mixture) {
        if (!info) out.newton_steps += mixture_update(*plan.mixture, answers(), post, ws);
        u_est = post.mean;
      } else if (one_solve) {
        u_est = u_sel;
      } else {
        out.newton_steps += solve(u_est, answers(), *plan.estimate, ws).steps;
      }
      if (at_budget) out.budget_auc[b++] = held_out_auc(u_est, Z, J, pool);
    }
  }
  out.u = u_est;
  if (mixture) {
    out.covariance = post.covariance;
    return;
  }
  gradient_hessian(u_est, answers(), *plan.estimate, ws);
  Eigen::LLT<Eigen::MatrixXd> H(ws.H);
  out.covariance = H.solve(Eigen::MatrixXd::Identity(J, J));
  out.covariance = 0.5 * (out.covariance + out.covariance.transpose()).eval();
}

}  // namespace pref::adapt
