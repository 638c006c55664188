// New-user adaptation (solver/adapt/adapt.cpp) against independent dense references written here:
//  - the MAP (population prior) and the MLE (0.001 I ridge) satisfy their optimality conditions
//    to 1e-8 and match a plain dense Newton (LU solves, direct objective) on small random cases,
//    separable answers included;
//  - the active and bayes criteria pick what a brute-force evaluation of the formula picks
//    (V_t rebuilt from its definition and inverted by LU for every candidate), ties included
//    (every candidate duplicated, so the maximum is always tied and the lowest index must win),
//    and so does every step of a whole question loop, replayed;
//  - the posterior covariance is the inverse of the Hessian recomputed independently;
//  - the held-out AUC at each budget is the Mann-Whitney AUC of the estimate at that budget;
//  - the population moments used as the fallback prior are the same at every rank count;
//  - the tie-aware answer model (issue 24): its margin derivatives and sensitivity match finite
//    differences of log P and P; the tie-aware MAP has a zero gradient (finite differences of
//    the objective written here) and is a local minimum, its V is P + sum F z z^T recomputed;
//    a question loop with it picks the brute-force argmax of the sensitivity criterion; the
//    maximum likelihood of (r, s, a) recovers a planted answer model from its draws.
// Runs at 1, 2 and 4 ranks: every rank computes the same cases (and must agree).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "solver/adapt/adapt.hpp"
#include "solver/base/mpi.hpp"
#include "solver/newton/ordinal.hpp"

using namespace pref;
using Matrix = Eigen::MatrixXd;
using Vector = Eigen::VectorXd;

namespace {

double ref_sigmoid(double m) {
  return 1.0 / (1.0 + std::exp(-m));
}
double ref_softplus(double m) {
  return m > 0 ? m + std::log1p(std::exp(-m)) : std::log1p(std::exp(m));
}

struct Case {
  int J = 4, M = 40;
  RowMatrix Z;
  std::vector<std::uint32_t> idx;
  std::vector<float> y;
  adapt::Penalty prior;
};

Case make_case(unsigned seed, int J, int M, int answers, bool separable) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> nd;
  Case c;
  c.J = J;
  c.M = M;
  c.Z.resize(M, J);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < J; ++j) c.Z(i, j) = nd(gen);
  Vector truth(J);
  for (auto& x : truth) x = nd(gen);
  std::vector<std::uint32_t> perm(M);
  for (int i = 0; i < M; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), gen);
  std::uniform_real_distribution<double> ud;
  for (int k = 0; k < answers; ++k) {
    c.idx.push_back(perm[k]);
    const double m = c.Z.row(perm[k]).dot(truth);
    float y = ud(gen) < ref_sigmoid(m) ? 1.0f : 0.0f;
    if (!separable && ud(gen) < 0.15) y = 0.5f;
    if (separable) y = m > 0 ? 1.0f : 0.0f;
    c.y.push_back(y);
  }
  Matrix A(J, J);
  for (auto& x : A.reshaped()) x = nd(gen);
  Matrix cov = A * A.transpose() / J + 0.3 * Matrix::Identity(J, J);
  Vector mean(J);
  for (auto& x : mean) x = 0.5 * nd(gen);
  c.prior = adapt::Penalty::gaussian(mean, cov, "test");
  return c;
}

// The objective, gradient and Hessian straight from their definitions.
double ref_f(const Case& c, const Vector& u, const adapt::Penalty& p) {
  double f = 0.5 * (u - p.mean).dot(p.precision * (u - p.mean));
  for (std::size_t k = 0; k < c.idx.size(); ++k) {
    const double m = c.Z.row(c.idx[k]).dot(u);
    f += ref_softplus(m) - c.y[k] * m;
  }
  return f;
}
Vector ref_grad(const Case& c, const Vector& u, const adapt::Penalty& p) {
  Vector g = p.precision * (u - p.mean);
  for (std::size_t k = 0; k < c.idx.size(); ++k) {
    const Vector z = c.Z.row(c.idx[k]).transpose();
    g += (ref_sigmoid(z.dot(u)) - c.y[k]) * z;
  }
  return g;
}
Matrix ref_hessian(const Case& c, const std::vector<std::uint32_t>& idx, const Vector& u,
                   const Matrix& P) {
  Matrix H = P;
  for (std::uint32_t i : idx) {
    const Vector z = c.Z.row(i).transpose();
    const double s = ref_sigmoid(z.dot(u));
    H += s * (1 - s) * z * z.transpose();
  }
  return H;
}
// Damped Newton with LU solves and halving on the objective itself; once the gradient is small,
// plain Newton steps (the objective's own differences are then below its rounding).
Vector ref_solve(const Case& c, const adapt::Penalty& p) {
  Vector u = p.mean;
  for (int it = 0; it < 500; ++it) {
    const Vector g = ref_grad(c, u, p);
    if (g.cwiseAbs().maxCoeff() < 1e-13) break;
    const Vector d = -ref_hessian(c, c.idx, u, p.precision).partialPivLu().solve(g);
    double t = 1;
    const double f0 = ref_f(c, u, p);
    if (g.cwiseAbs().maxCoeff() > 1e-6)
      while (t > 1e-10 && ref_f(c, u + t * d, p) > f0 + 1e-4 * t * g.dot(d)) t /= 2;
    u += t * d;
  }
  return u;
}

adapt::Answers answers_of(const Case& c) {
  return {c.Z.data(), c.J, std::span<const std::uint32_t>(c.idx), std::span<const float>(c.y)};
}

// The argmax of the formula over unasked candidates, V rebuilt and inverted for each candidate.
int brute_force_pick(const Case& c, const std::vector<std::uint32_t>& pool,
                     const std::vector<char>& asked, const std::vector<std::uint32_t>& answered,
                     const Vector& u, const Matrix& P) {
  int best = -1;
  double best_score = -1;
  for (std::size_t k = 0; k < pool.size(); ++k) {
    if (asked[k]) continue;
    const Matrix Vinv = ref_hessian(c, answered, u, P).inverse();
    const Vector z = c.Z.row(pool[k]).transpose();
    const double s = ref_sigmoid(z.dot(u)) * (1 - ref_sigmoid(z.dot(u)));
    const double score = s * s * z.dot(Vinv * z);
    if (best < 0 || score > best_score) {
      best = static_cast<int>(k);
      best_score = score;
    }
  }
  return best;
}

}  // namespace

TEST(Adapt, MapAndMleMeetOptimalityAndMatchDenseReference) {
  int cases = 0;
  for (unsigned seed = 1; seed <= 40; ++seed) {
    for (bool separable : {false, true}) {
      const int J = 1 + seed % 6, answers = 1 + (seed * 7) % 30;
      Case c = make_case(seed, J, 40, answers, separable);
      const adapt::Penalty ridge = adapt::Penalty::ridge(J, adapt::kPaperRidge);
      for (const adapt::Penalty* p : {static_cast<const adapt::Penalty*>(&c.prior), &ridge}) {
        SCOPED_TRACE(::testing::Message()
                     << "seed " << seed << " J " << J << " answers " << answers
                     << (separable ? " separable" : "") << (p == &ridge ? " MLE" : " MAP"));
        adapt::Workspace ws;
        Vector u = p->mean;
        const adapt::SolveStats st = adapt::solve(u, answers_of(c), *p, ws);
        EXPECT_LE(st.grad_inf, 1e-8);
        EXPECT_LE(ref_grad(c, u, *p).cwiseAbs().maxCoeff(), 1e-8);
        const Vector ref = ref_solve(c, *p);
        ASSERT_LE(ref_grad(c, ref, *p).cwiseAbs().maxCoeff(), 1e-12);
        EXPECT_LE((u - ref).cwiseAbs().maxCoeff(), 1e-8 * std::max(1.0, ref.cwiseAbs().maxCoeff()));
        // ws.H is the Hessian at the returned u (V_t of the criterion).
        EXPECT_LE((ws.H - ref_hessian(c, c.idx, u, p->precision)).cwiseAbs().maxCoeff(), 1e-10);
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 160);
}

TEST(Adapt, WarmStartReachesTheSameOptimum) {
  Case c = make_case(7, 5, 50, 25, false);
  adapt::Workspace ws;
  Vector cold = c.prior.mean, warm = Vector::Constant(5, 3.0);
  adapt::solve(cold, answers_of(c), c.prior, ws);
  adapt::solve(warm, answers_of(c), c.prior, ws);
  EXPECT_LE((cold - warm).cwiseAbs().maxCoeff(), 1e-9);
}

TEST(Adapt, CriterionPicksTheBruteForceArgmaxIncludingTies) {
  std::mt19937_64 gen(99);
  int checked = 0, tied = 0;
  for (unsigned seed = 1; seed <= 60; ++seed) {
    const int J = 1 + seed % 7;
    Case c = make_case(seed, J, 30, 0, false);
    // Every comparison twice in the pool, so the best score is always reached twice.
    std::vector<std::uint32_t> pool;
    for (int i = 0; i < 30; ++i) pool.push_back(i);
    for (int i = 0; i < 30; ++i) pool.push_back(i);
    std::vector<char> asked(pool.size(), 0);
    std::vector<std::uint32_t> answered;
    const int t = static_cast<int>(seed % 12);
    for (int k = 0; k < t; ++k) {  // both copies asked, so every unasked score stays tied
      asked[k * 3 % 30] = asked[k * 3 % 30 + 30] = 1;
      answered.push_back(pool[k * 3 % 30]);
    }
    Vector u(J);
    std::normal_distribution<double> nd;
    for (auto& x : u) x = nd(gen);
    const adapt::Penalty ridge = adapt::Penalty::ridge(J, adapt::kPaperRidge);
    for (const adapt::Penalty* p : {&ridge, static_cast<const adapt::Penalty*>(&c.prior)}) {
      RowMatrix cand(pool.size(), J);
      for (std::size_t k = 0; k < pool.size(); ++k) cand.row(k) = c.Z.row(pool[k]);
      Eigen::LLT<Matrix> V(ref_hessian(c, answered, u, p->precision));
      Vector scores;
      Matrix W;
      adapt::criterion(u, V, cand, scores, W);
      const int got = adapt::best_unasked(scores, asked);
      const int want = brute_force_pick(c, pool, asked, answered, u, p->precision);
      EXPECT_EQ(got, want) << "seed " << seed;
      EXPECT_LT(got, 30);  // the first copy of the tied pair
      // The duplicate has exactly the same score: a real tie.
      tied += scores[got] == scores[got + 30];
      ++checked;
    }
  }
  EXPECT_EQ(checked, 120);
  EXPECT_EQ(tied, 120);
}

TEST(Adapt, QuestionLoopMatchesBruteForceAtEveryStep) {
  for (adapt::Select sel : {adapt::Select::kActive, adapt::Select::kBayes}) {
    for (unsigned seed = 1; seed <= 6; ++seed) {
      const int J = 2 + seed % 5, M = 70;
      Case c = make_case(100 + seed, J, M, M, false);  // labels for all M comparisons
      const adapt::Penalty ridge = adapt::Penalty::ridge(J, adapt::kPaperRidge);
      // Pool: comparisons 0..49 askable (their labels c.y by comparison), 50..69 held out.
      std::vector<std::uint32_t> comp(M), test_comp;
      std::vector<float> val(M), test_val;
      for (std::size_t k = 0; k < c.idx.size(); ++k) val[c.idx[k]] = c.y[k];
      for (int i = 0; i < M; ++i) comp[i] = i;
      adapt::UserPool pool{
          {comp.data(), 50}, {val.data(), 50}, {comp.data() + 50, 20}, {val.data() + 50, 20}};
      adapt::Plan plan;
      plan.select = sel;
      plan.answers = 15;
      plan.budgets = {1, 5, 15};
      plan.seed = seed;
      plan.estimate = &c.prior;
      plan.selection = sel == adapt::Select::kBayes ? &c.prior : &ridge;
      adapt::Workspace ws;
      adapt::UserResult res;
      adapt::adapt_user(seed, c.Z.data(), J, pool, plan, ws, res);
      ASSERT_EQ(res.asked.size(), 15u);
      // Replay: before question t, the selection estimate from the first t answers.
      std::vector<char> asked(50, 0);
      std::vector<std::uint32_t> pool_ids(comp.begin(), comp.begin() + 50);
      for (int t = 0; t < 15; ++t) {
        Case sub = c;
        sub.idx.assign(res.asked.begin(), res.asked.begin() + t);
        sub.y.assign(res.answers.begin(), res.answers.begin() + t);
        if (t > 0 || sel == adapt::Select::kBayes) {
          Vector u = plan.selection->mean;
          adapt::Workspace w2;
          adapt::solve(u, answers_of(sub), *plan.selection, w2);
          const int want =
              brute_force_pick(c, pool_ids, asked, sub.idx, u, plan.selection->precision);
          EXPECT_EQ(res.asked[t], pool_ids[want]) << adapt::select_name(sel) << " step " << t;
        }
        EXPECT_FALSE(asked[res.asked[t]]);
        EXPECT_LT(res.asked[t], 50u);  // never a held-out comparison
        EXPECT_EQ(res.answers[t], val[res.asked[t]]);
        asked[res.asked[t]] = 1;
      }
      // The posterior covariance is the inverse of the Hessian at the estimate.
      Case all = c;
      all.idx = res.asked;
      all.y = res.answers;
      const Matrix Hinv = ref_hessian(c, res.asked, res.u, c.prior.precision).inverse();
      EXPECT_LE((res.covariance - Hinv).cwiseAbs().maxCoeff(), 1e-10 * Hinv.cwiseAbs().maxCoeff());
      EXPECT_LE(ref_grad(all, res.u, c.prior).cwiseAbs().maxCoeff(), 1e-8);
      // The held-out AUC at the last budget, by pairs.
      double wins = 0, pairs = 0;
      for (int a = 50; a < M; ++a)
        for (int b = 50; b < M; ++b)
          if (val[a] > 0.5f && val[b] < 0.5f) {
            const double sa = c.Z.row(a).dot(res.u), sb = c.Z.row(b).dot(res.u);
            wins += sa > sb ? 1 : sa == sb ? 0.5 : 0;
            pairs += 1;
          }
      if (pairs > 0) {
        EXPECT_NEAR(res.budget_auc[2], wins / pairs, 1e-12);
      }
    }
  }
}

TEST(Adapt, RandomChoiceIsReproducibleAndUsesOnlyThePool) {
  Case c = make_case(3, 3, 60, 60, false);
  std::vector<std::uint32_t> comp(60);
  std::vector<float> val(60, 1.0f);
  for (int i = 0; i < 60; ++i) comp[i] = i;
  adapt::UserPool pool{
      {comp.data(), 40}, {val.data(), 40}, {comp.data() + 40, 20}, {val.data() + 40, 20}};
  adapt::Plan plan;
  plan.select = adapt::Select::kRandom;
  plan.answers = 40;  // the whole askable pool
  plan.budgets = {40};
  plan.estimate = &c.prior;
  adapt::Workspace ws;
  adapt::UserResult a, b, other;
  adapt::adapt_user(5, c.Z.data(), 3, pool, plan, ws, a);
  adapt::adapt_user(5, c.Z.data(), 3, pool, plan, ws, b);
  adapt::adapt_user(6, c.Z.data(), 3, pool, plan, ws, other);
  EXPECT_EQ(a.asked, b.asked);
  EXPECT_NE(a.asked, other.asked);  // another user, another order
  std::vector<std::uint32_t> sorted = a.asked;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, std::vector<std::uint32_t>(comp.begin(), comp.begin() + 40));
  EXPECT_TRUE(std::isnan(a.budget_auc[0]));  // one class only in the held-out part
}

// --prior mixture: the fitted mixture is a k-means fixed point with the documented covariances;
// the Laplace posterior (per-component MAP, evidence, weights, moments) matches a dense
// reference; the `info` criterion matches the formula evaluated per candidate with LU
// inverses; and a whole `info` question loop picks, at every step, the brute-force argmax.
namespace {

RowMatrix clustered_rows(unsigned seed, int n, int J, int centres) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> nd;
  Matrix C(centres, J);
  for (auto& x : C.reshaped()) x = 2 * nd(gen);
  RowMatrix X(n, J);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < J; ++j) X(i, j) = C(i % centres, j) + 0.3 * nd(gen);
  return X;
}

struct RefComponent {
  Vector u;
  Matrix H;
  double log_evidence;
};

RefComponent ref_component(const Case& c, const adapt::Penalty& p, double log_pi, double ld_cov) {
  RefComponent r;
  r.u = c.idx.empty() ? p.mean : ref_solve(c, p);
  r.H = ref_hessian(c, c.idx, r.u, p.precision);
  r.log_evidence = log_pi - ref_f(c, r.u, p) - 0.5 * std::log(r.H.determinant()) - 0.5 * ld_cov;
  return r;
}

// Every component of the dense reference and its posterior weight (softmax of the log
// evidences).
std::vector<RefComponent> ref_mixture(const Case& c, const adapt::Mixture& mix,
                                      std::vector<double>& weight) {
  std::vector<RefComponent> ref;
  double top = -1e300;
  for (int k = 0; k < mix.size(); ++k) {
    ref.push_back(ref_component(c, mix.components[k], mix.log_weight[k], mix.log_det_cov[k]));
    top = std::max(top, ref.back().log_evidence);
  }
  double total = 0;
  for (auto& r : ref) total += std::exp(r.log_evidence - top);
  weight.clear();
  for (auto& r : ref) weight.push_back(std::exp(r.log_evidence - top) / total);
  return ref;
}

double ref_entropy(double p) {
  return p <= 0 || p >= 1 ? 0 : -(p * std::log(p) + (1 - p) * std::log(1 - p));
}

}  // namespace

TEST(Adapt, MixtureFitIsAKMeansFixedPointWithTheDocumentedCovariances) {
  for (unsigned seed = 1; seed <= 4; ++seed) {
    const int J = 3, n = 400;
    const RowMatrix X = clustered_rows(seed, n, J, 5);
    const adapt::Mixture mix = adapt::fit_mixture(X.data(), n, J, 6, seed);
    const adapt::Mixture again = adapt::fit_mixture(X.data(), n, J, 6, seed);
    ASSERT_EQ(mix.size(), again.size());
    ASSERT_GE(mix.size(), 1);
    const int K = mix.size();
    std::vector<int> assign(n);
    std::vector<int> count(K, 0);
    Matrix sums = Matrix::Zero(K, J);
    for (int i = 0; i < n; ++i) {
      int best = 0;
      for (int k = 1; k < K; ++k)
        if ((X.row(i).transpose() - mix.components[k].mean).squaredNorm() <
            (X.row(i).transpose() - mix.components[best].mean).squaredNorm())
          best = k;
      assign[i] = best;
      ++count[best];
      sums.row(best) += X.row(i);
    }
    double wsum = 0;
    for (int k = 0; k < K; ++k) {
      EXPECT_EQ(mix.components[k].mean, again.components[k].mean);
      ASSERT_GT(count[k], 0);
      EXPECT_LT((sums.row(k).transpose() / count[k] - mix.components[k].mean).norm(), 1e-12);
      EXPECT_NEAR(std::exp(mix.log_weight[k]), double(count[k]) / n, 1e-14);
      wsum += std::exp(mix.log_weight[k]);
      if (count[k] > 3 * J) {
        Matrix cov = Matrix::Zero(J, J);
        for (int i = 0; i < n; ++i)
          if (assign[i] == k) {
            const Vector d = X.row(i).transpose() - mix.components[k].mean;
            cov += d * d.transpose();
          }
        cov = cov / count[k] + adapt::kMixtureRidge * Matrix::Identity(J, J);
        EXPECT_LT((cov.inverse() - mix.components[k].precision).norm(),
                  1e-8 * cov.inverse().norm());
        EXPECT_NEAR(mix.log_det_cov[k], std::log(cov.determinant()), 1e-10);
      }
    }
    EXPECT_NEAR(wsum, 1.0, 1e-12);
  }
}

TEST(Adapt, MixturePosteriorMatchesDenseReference) {
  for (unsigned seed = 1; seed <= 12; ++seed) {
    const int J = 3;
    const RowMatrix X = clustered_rows(seed, 300, J, 4);
    const adapt::Mixture mix = adapt::fit_mixture(X.data(), 300, J, 4, seed);
    for (int answers : {0, 1, 3, 12}) {
      Case c = make_case(100 + seed, J, 30, answers, seed % 3 == 0);
      adapt::Workspace ws;
      adapt::MixturePosterior post;
      adapt::mixture_update(mix, answers_of(c), post, ws);
      const int K = mix.size();
      std::vector<double> weight;
      const std::vector<RefComponent> ref = ref_mixture(c, mix, weight);
      Vector mean = Vector::Zero(J);
      for (int k = 0; k < K; ++k) mean += weight[k] * ref[k].u;
      Matrix cov = Matrix::Zero(J, J);
      for (int k = 0; k < K; ++k) {
        const double w = weight[k];
        const Vector d = ref[k].u - mean;
        cov += w * (ref[k].H.inverse() + d * d.transpose());
      }
      for (int k = 0; k < K; ++k) {
        EXPECT_LT((post.u[k] - ref[k].u).cwiseAbs().maxCoeff(), 1e-8) << seed << " " << k;
        EXPECT_NEAR(post.log_evidence[k], ref[k].log_evidence, 1e-8);
      }
      EXPECT_LT((post.mean - mean).cwiseAbs().maxCoeff(), 1e-8);
      EXPECT_LT((post.covariance - cov).cwiseAbs().maxCoeff(), 1e-8);
      EXPECT_EQ(post.covariance, post.covariance.transpose());

      // info: the formula per candidate, H_k inverted by LU.
      Matrix cand(c.M, J);
      for (int i = 0; i < c.M; ++i) cand.row(i) = c.Z.row(i);
      Vector scores;
      adapt::information(post, cand, scores, ws);
      for (int i = 0; i < c.M; ++i) {
        const Vector z = cand.row(i).transpose();
        double pbar = 0, hbar = 0;
        for (int k = 0; k < K; ++k) {
          const double w = weight[k];
          if (w < adapt::kInfoMinWeight) continue;
          const double v = z.dot(ref[k].H.partialPivLu().solve(z));
          const double p = ref_sigmoid(z.dot(ref[k].u) / std::sqrt(1 + M_PI / 8 * v));
          pbar += w * p;
          hbar += w * ref_entropy(p);
        }
        EXPECT_NEAR(scores[i], ref_entropy(pbar) - hbar, 1e-9) << seed << " cand " << i;
      }
    }
  }
}

TEST(Adapt, InfoQuestionLoopMatchesBruteForceAtEveryStep) {
  for (unsigned seed = 1; seed <= 6; ++seed) {
    const int J = 3, M = 40, T = 10;
    const RowMatrix X = clustered_rows(seed, 300, J, 4);
    const adapt::Mixture mix = adapt::fit_mixture(X.data(), 300, J, 4, seed);
    Case c = make_case(200 + seed, J, M, 0, false);
    std::mt19937_64 gen(seed);
    std::vector<std::uint32_t> comp(M);
    std::vector<float> val(M);
    for (int i = 0; i < M; ++i) comp[i] = i, val[i] = gen() % 3 == 0 ? 0.5f : float(gen() % 2);
    adapt::UserPool pool{{comp.data(), std::size_t(M - T)},
                         {val.data(), std::size_t(M - T)},
                         {comp.data() + M - T, std::size_t(T)},
                         {val.data() + M - T, std::size_t(T)}};
    adapt::Plan plan;
    plan.select = adapt::Select::kInfo;
    plan.answers = 8;
    plan.budgets = {1, 4, 8};
    plan.mixture = &mix;
    adapt::Workspace ws;
    adapt::UserResult res, again;
    adapt::adapt_user(seed, c.Z.data(), J, pool, plan, ws, res);
    adapt::adapt_user(seed, c.Z.data(), J, pool, plan, ws, again);
    EXPECT_EQ(res.asked, again.asked);
    EXPECT_EQ(res.u, again.u);
    // Replay with the dense reference.
    std::vector<char> asked(M - T, 0);
    for (int t = 0; t < plan.answers; ++t) {
      const int K = mix.size();
      std::vector<double> weight;
      const std::vector<RefComponent> ref = ref_mixture(c, mix, weight);
      int best = -1;
      double best_score = 0;
      for (int i = 0; i < M - T; ++i) {
        if (asked[i]) continue;
        const Vector z = c.Z.row(i).transpose();
        double pbar = 0, hbar = 0;
        for (int k = 0; k < K; ++k) {
          const double w = weight[k];
          if (w < adapt::kInfoMinWeight) continue;
          const double v = z.dot(ref[k].H.partialPivLu().solve(z));
          const double p = ref_sigmoid(z.dot(ref[k].u) / std::sqrt(1 + M_PI / 8 * v));
          pbar += w * p;
          hbar += w * ref_entropy(p);
        }
        const double s = ref_entropy(pbar) - hbar;
        if (best < 0 || s > best_score) best = i, best_score = s;
      }
      ASSERT_EQ(res.asked[t], comp[best]) << "seed " << seed << " step " << t;
      asked[best] = 1;
      c.idx.push_back(comp[best]);
      c.y.push_back(val[best]);
    }
  }
}

namespace {

// f of the tie-aware MAP, written from the model's definition.
double ordinal_objective(const Vector& u, const Case& c, const ordinal::Params& p) {
  double f = 0;
  for (std::size_t k = 0; k < c.idx.size(); ++k) {
    const double m = c.Z.row(c.idx[k]).dot(u);
    const double pt = p.r * std::exp(-m * m / (2 * p.s * p.s));
    const double first = ref_sigmoid(p.a * m);
    const double prob = c.y[k] == 0.5f ? pt : (1 - pt) * (c.y[k] == 1.0f ? first : 1 - first);
    f -= std::log(prob);
  }
  const Vector d = u - c.prior.mean;
  return f + 0.5 * d.dot(c.prior.precision * d);
}

// A case whose answers are 0, 0.5 or 1: ties where the planted margin is small.
Case make_tie_case(unsigned seed, int J, int M, int answers) {
  Case c = make_case(seed, J, M, answers, false);
  std::mt19937_64 gen(seed + 1);
  std::normal_distribution<double> nd;
  Vector truth(J);
  for (auto& x : truth) x = nd(gen);
  for (std::size_t k = 0; k < c.idx.size(); ++k) {
    const double m = c.Z.row(c.idx[k]).dot(truth);
    c.y[k] = std::abs(m) < 0.4 ? 0.5f : (m > 0 ? 1.0f : 0.0f);
  }
  return c;
}

}  // namespace

TEST(AdaptOrdinal, MarginDerivativesAndSensitivityMatchFiniteDifferences) {
  const ordinal::Params p{0.8, 0.4, 1.7};
  for (int o = 0; o < 3; ++o)
    for (double m : {-2.1, -0.5, -0.05, 0.0, 0.03, 0.3, 1.2, 3.0}) {
      const double h = 1e-5;
      const ordinal::MDerivs2 d = ordinal::m_derivs2(o, m, p);
      EXPECT_NEAR(d.value, ordinal::log_lik(o, m, p), 1e-12);
      EXPECT_NEAR(d.dm, (ordinal::log_lik(o, m + h, p) - ordinal::log_lik(o, m - h, p)) / (2 * h),
                  1e-6 * (1 + std::abs(d.dm)));
      const double dmm = (ordinal::log_lik(o, m + h, p) - 2 * ordinal::log_lik(o, m, p) +
                          ordinal::log_lik(o, m - h, p)) /
                         (h * h);
      EXPECT_NEAR(d.dmm, dmm, 1e-3 * (1 + std::abs(d.dmm))) << o << " " << m;
    }
  for (double m : {-1.5, -0.2, 0.0, 0.1, 0.7, 2.5}) {
    const double h = 1e-6;
    double want = 0;
    const auto a = ordinal::probs(m + h, p), b = ordinal::probs(m - h, p);
    for (int o = 0; o < 3; ++o) want += std::pow((a[o] - b[o]) / (2 * h), 2);
    EXPECT_NEAR(ordinal::sensitivity(m, p), want, 1e-7 * (1 + want)) << m;
  }
}

// F(m) = sum_o P'(o | m)^2 / P(o | m): the Fisher information from its definition.
double ref_fisher(double m, const ordinal::Params& p) {
  const double h = 1e-6;
  const auto a = ordinal::probs(m + h, p), b = ordinal::probs(m - h, p), q = ordinal::probs(m, p);
  double f = 0;
  for (int o = 0; o < 3; ++o) f += std::pow((a[o] - b[o]) / (2 * h), 2) / q[o];
  return f;
}

Matrix ref_fisher_precision(const Case& c, const std::vector<std::uint32_t>& idx, const Vector& u,
                            const Matrix& P, const ordinal::Params& p) {
  Matrix V = P;
  for (std::uint32_t i : idx) {
    const Vector z = c.Z.row(i).transpose();
    V += ref_fisher(z.dot(u), p) * z * z.transpose();
  }
  return V;
}

TEST(AdaptOrdinal, MapIsAStationaryLocalMinimumWithTheFisherPrecision) {
  const ordinal::Params p{0.7, 0.5, 1.4};
  std::mt19937_64 gen(3);
  std::normal_distribution<double> nd;
  for (unsigned seed = 1; seed <= 12; ++seed) {
    const int J = 2 + int(seed % 4), answers = 3 + 3 * int(seed);
    const Case c = make_tie_case(seed, J, 60, answers);
    SCOPED_TRACE(::testing::Message() << "seed " << seed << " J " << J << " answers " << answers);
    adapt::Workspace ws;
    Vector u = c.prior.mean;
    adapt::solve(u, answers_of(c), c.prior, ws);  // pref adapt starts from the logistic MAP
    const adapt::SolveStats st = adapt::solve_ordinal(u, answers_of(c), c.prior, p, ws);
    EXPECT_LE(st.grad_inf, 1e-8);
    const double f0 = ordinal_objective(u, c, p), h = 1e-6;
    for (int j = 0; j < J; ++j) {
      Vector e = Vector::Zero(J);
      e[j] = h;
      const double g = (ordinal_objective(u + e, c, p) - ordinal_objective(u - e, c, p)) / (2 * h);
      EXPECT_NEAR(g, 0.0, 1e-6 * (1 + std::abs(f0)));
    }
    for (int k = 0; k < 20; ++k) {
      Vector v(J);
      for (auto& x : v) x = nd(gen);
      EXPECT_GE(ordinal_objective(u + 1e-3 * v, c, p), f0 - 1e-12 * std::abs(f0));
    }
    const Matrix V = ref_fisher_precision(c, c.idx, u, c.prior.precision, p);
    EXPECT_LE((ws.H - V).cwiseAbs().maxCoeff(), 1e-6 * V.cwiseAbs().maxCoeff());
  }
}

// A whole bayes question loop with the tie-aware model: every question is the unasked pool entry
// maximizing sensitivity(u.z) z^T V^-1 z (finite-difference sensitivity, V from its definition)
// at the estimate of the answers so far, and the reported covariance is V^-1 at the end.
TEST(AdaptOrdinal, BayesQuestionLoopPicksTheBruteForceArgmax) {
  const ordinal::Params p{0.6, 0.4, 1.6};
  for (unsigned seed = 1; seed <= 6; ++seed) {
    const int J = 3, pool_size = 30, K = 8;
    const Case c = make_tie_case(100 + seed, J, 60, pool_size);
    std::vector<std::uint32_t> pool = c.idx;
    std::vector<float> vals = c.y;
    adapt::UserPool up{pool, vals, {}, {}};
    adapt::Plan plan;
    plan.select = adapt::Select::kBayes;
    plan.answers = K;
    plan.estimate = plan.selection = &c.prior;
    plan.answer_model = &p;
    adapt::Workspace ws;
    adapt::UserResult res;
    adapt::adapt_user(seed, c.Z.data(), J, up, plan, ws, res);
    ASSERT_EQ(res.asked.size(), std::size_t(K));
    std::vector<char> asked(pool_size, 0);
    std::vector<std::uint32_t> answered;
    std::vector<float> ys;
    Vector u = c.prior.mean;
    for (int t = 0; t < K; ++t) {
      // The estimate after t answers, as adapt computes it (its optimality is checked above).
      if (t > 0) {
        adapt::Answers a{c.Z.data(), J, answered, ys};
        adapt::solve(u, a, c.prior, ws);
        adapt::solve_ordinal(u, a, c.prior, p, ws);
      }
      const Matrix Vinv = ref_fisher_precision(c, answered, u, c.prior.precision, p).inverse();
      int best = -1;
      double top = -1;
      for (int k = 0; k < pool_size; ++k) {
        if (asked[k]) continue;
        const Vector z = c.Z.row(pool[k]).transpose();
        const double m = z.dot(u), h = 1e-6;
        const auto a = ordinal::probs(m + h, p), b = ordinal::probs(m - h, p);
        double sens = 0;
        for (int o = 0; o < 3; ++o) sens += std::pow((a[o] - b[o]) / (2 * h), 2);
        const double score = sens * z.dot(Vinv * z);
        if (best < 0 || score > top) best = k, top = score;
      }
      ASSERT_EQ(res.asked[t], pool[best]) << "seed " << seed << " question " << t;
      asked[best] = 1;
      answered.push_back(pool[best]);
      ys.push_back(vals[best]);
    }
    adapt::Answers a{c.Z.data(), J, answered, ys};
    adapt::solve(u, a, c.prior, ws);
    adapt::solve_ordinal(u, a, c.prior, p, ws);
    EXPECT_LE((res.u - u).cwiseAbs().maxCoeff(), 1e-12);
    const Matrix cov = ref_fisher_precision(c, answered, u, c.prior.precision, p).inverse();
    EXPECT_LE((res.covariance - cov).cwiseAbs().maxCoeff(), 1e-5 * cov.cwiseAbs().maxCoeff());
  }
}

// maximize_params on draws from a planted answer model recovers it.
TEST(AdaptOrdinal, MaximumLikelihoodRecoversAPlantedAnswerModel) {
  const ordinal::Params truth{0.55, 0.6, 1.8};
  std::mt19937_64 gen(9);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud;
  std::vector<double> margins;
  std::vector<int> outcomes;
  for (int i = 0; i < 40000; ++i) {
    const double m = 1.5 * nd(gen);
    const auto q = ordinal::probs(m, truth);
    const double x = ud(gen);
    margins.push_back(m);
    outcomes.push_back(x < q[0] ? 0 : x < q[0] + q[1] ? 1 : 2);
  }
  ordinal::Params p{0.5, 0.5, 1.0};
  ordinal::maximize_params(
      p, 1e-10 * double(margins.size()), 30, [&](const ordinal::Params& q, bool derivs) {
        std::vector<double> out(derivs ? 10 : 1, 0.0);
        for (std::size_t i = 0; i < margins.size(); ++i)
          ordinal::add_param_sums(outcomes[i], margins[i], q, derivs, out.data());
        return out;
      });
  EXPECT_NEAR(p.r, truth.r, 0.03);
  EXPECT_NEAR(std::log(p.s), std::log(truth.s), 0.05);
  EXPECT_NEAR(std::log(p.a), std::log(truth.a), 0.05);
}
