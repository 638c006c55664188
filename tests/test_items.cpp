// Item models of the fit (solver/items/items.hpp; issue 14) at 1, 2 and 4 ranks, against references
// written here on one process:
//  - the head's (embeddings) and the per-response factors' (responses) gradient and Hessian
//    against finite differences of a dense objective, and the explicit Hessian against the
//    matrix-free products;
//  - Newton steps of the head to the optimum by Cholesky and by Newton-CG, against a dense
//    Newton solve, to 1e-8;
//  - whole fits: the head's half-step inside fit() against the dense optimum, and `responses`
//    against `embeddings` with one-hot embeddings (e_r = unit vector r), which are the same
//    model: the same factors.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "solver/base/mpi.hpp"
#include "solver/fit/fit.hpp"
#include "solver/items/items.hpp"
#include "solver/newton/newton.hpp"
#include "tests/fit_util.hpp"

using namespace pref;
using namespace pref::fit_test;

namespace {

// A dense problem, the same on every rank: users' weights U (n x J), comparisons p pairing
// responses first[p], second[p], every user labelling every comparison (y in {0, 0.5, 1}), and
// response embeddings E (R x d).
struct Dense {
  int n = 7, M = 14, R = 9, d = 3, J = 2;
  Matrix U, E;
  std::vector<std::uint32_t> first, second;
  std::vector<std::vector<double>> y;  // y[i][p]
  double mu_z = 0.7, mu_w = 0.05;

  explicit Dense(unsigned seed = 3, int d_ = 3, int J_ = 2) : d(d_), J(J_) {
    std::mt19937 gen(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    U = Matrix(n, J);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < J; ++j) U(i, j) = normal(gen);
    E = Matrix(R, d);
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < d; ++k) E(r, k) = normal(gen);
    for (int p = 0; p < M; ++p) {
      const auto a = static_cast<std::uint32_t>(p % R);
      first.push_back(a);
      second.push_back(static_cast<std::uint32_t>((a + 1 + p / R) % R));
    }
    y.assign(n, std::vector<double>(M));
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < M; ++p) y[i][p] = 0.5 * static_cast<double>(gen() % 3);
  }
  Vector x(int p, const Matrix& Emb) const {
    return (Emb.row(first[p]) - Emb.row(second[p])).transpose();
  }
  // Z (M x J) of a head W (d x J) on embeddings Emb.
  Matrix Z(const Matrix& W, const Matrix& Emb) const {
    Matrix Zm(M, J);
    for (int p = 0; p < M; ++p) Zm.row(p) = (W.transpose() * x(p, Emb)).transpose();
    return Zm;
  }
  double F(const Matrix& W, const Matrix& Emb) const {
    const Matrix Zm = Z(W, Emb);
    double f = 0;
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < M; ++p) f += bce(U.row(i).dot(Zm.row(p)), y[i][p]);
    return f + 0.5 * mu_z * Zm.squaredNorm() + 0.5 * mu_w * W.squaredNorm();
  }
  // The gradient in W (d x J), analytic.
  Matrix grad(const Matrix& W, const Matrix& Emb) const {
    const Matrix Zm = Z(W, Emb);
    Matrix G = mu_w * W;
    for (int p = 0; p < M; ++p) {
      Vector gz = mu_z * Zm.row(p).transpose();
      for (int i = 0; i < n; ++i)
        gz += (sigmoid(U.row(i).dot(Zm.row(p))) - y[i][p]) * U.row(i).transpose();
      G += x(p, Emb) * gz.transpose();
    }
    return G;
  }
  // Per-comparison loss derivatives at Zm for comparisons [c0, c0 + nc).
  ComparisonDerivs derivs(const Matrix& Zm, std::uint64_t c0, std::uint64_t nc) const {
    ComparisonDerivs dv;
    dv.g.assign(nc * J, 0.0);
    dv.H.assign(nc * J * J, 0.0);
    for (std::uint64_t c = 0; c < nc; ++c) {
      const int p = static_cast<int>(c0 + c);
      for (int i = 0; i < n; ++i) {
        const double s = sigmoid(U.row(i).dot(Zm.row(p)));
        for (int a = 0; a < J; ++a) {
          dv.g[c * J + a] += (s - y[i][p]) * U(i, a);
          for (int b = 0; b < J; ++b) dv.H[(c * J + a) * J + b] += s * (1 - s) * U(i, a) * U(i, b);
        }
      }
    }
    return dv;
  }
  LabelChange change(const Matrix& Zm, std::uint64_t c0, std::uint64_t nc) const {
    return [this, Zm, c0, nc](const std::vector<double>& V, std::span<const double> steps,
                              std::span<double> out, bool) {
      for (std::uint64_t c = 0; c < nc; ++c) {
        const int p = static_cast<int>(c0 + c);
        for (int i = 0; i < n; ++i) {
          const double m = U.row(i).dot(Zm.row(p));
          double q = 0;
          for (int a = 0; a < J; ++a) q += U(i, a) * V[c * J + a];
          for (std::size_t l = 0; l < steps.size(); ++l)
            out[l] += bce_change(m, steps[l] * q, y[i][p]);
        }
      }
    };
  }
  // The dense optimum of F in W by Newton's method (the Hessian by the same formula written out).
  Matrix optimum(const Matrix& Emb) const {
    const int dE = static_cast<int>(Emb.cols());
    Matrix W = Matrix::Zero(dE, J);
    for (int it = 0; it < 100; ++it) {
      const Matrix Zm = Z(W, Emb);
      Matrix H = mu_w * Matrix::Identity(dE * J, dE * J);
      for (int p = 0; p < M; ++p) {
        Matrix Hp = mu_z * Matrix::Identity(J, J);
        for (int i = 0; i < n; ++i) {
          const double s = sigmoid(U.row(i).dot(Zm.row(p)));
          Hp += s * (1 - s) * U.row(i).transpose() * U.row(i);
        }
        const Vector xp = x(p, Emb);
        for (int k = 0; k < dE; ++k)
          for (int l = 0; l < dE; ++l) H.block(k * J, l * J, J, J) += xp[k] * xp[l] * Hp;
      }
      const Matrix G = grad(W, Emb);
      const Vector g = Eigen::Map<const Vector>(RowMajor(G).data(), dE * J);
      if (g.norm() < 1e-14) break;
      const Vector step = H.llt().solve(-g);
      RowMajor Wr = W;
      Eigen::Map<Vector>(Wr.data(), dE * J) += step;
      W = Wr;
    }
    return W;
  }
};

std::vector<double> rows_of(const Matrix& m) {
  RowMajor r = m;
  return std::vector<double>(r.data(), r.data() + r.size());
}

std::shared_ptr<ItemData> item_data(const mpi::Comm& comm, const Dense& pb, Items kind,
                                    const Matrix& Emb) {
  auto d = std::make_shared<ItemData>();
  d->kind = kind;
  d->responses = static_cast<std::uint64_t>(pb.R);
  d->first = pb.first;
  d->second = pb.second;
  if (kind == Items::kEmbeddings) {
    d->dim = static_cast<std::uint64_t>(Emb.cols());
    d->response_rows = Partition::uniform(d->responses, comm.size());
    const std::vector<double> all = rows_of(Emb);
    const std::uint64_t r0 = d->response_rows.begin(comm.rank());
    d->embedding.assign(all.begin() + static_cast<std::ptrdiff_t>(r0 * d->dim),
                        all.begin() + static_cast<std::ptrdiff_t>(
                                          (r0 + d->response_rows.count(comm.rank())) * d->dim));
  }
  return d;
}

ItemConfig item_config(const Dense& pb) {
  ItemConfig c;
  c.J = pb.J;
  c.mu_z = pb.mu_z;
  c.mu_w = pb.mu_w;
  // Exact Newton directions (the fit's default is an inexact CG): the references are exact.
  c.cg_tol = 1e-12;
  c.cg_max_iterations = 2000;
  return c;
}

}  // namespace

TEST(Items, HeadGradientAndHessianMatchFiniteDifferences) {
  auto world = mpi::Comm::world();
  const Dense pb(3, 3, 2);
  const Partition comps = Partition::uniform(static_cast<std::uint64_t>(pb.M), world.size());
  const std::uint64_t c0 = comps.begin(world.rank()), nc = comps.count(world.rank());
  ItemModel model(world, item_data(world, pb, Items::kEmbeddings, pb.E), comps, item_config(pb));
  std::mt19937 gen(5);
  std::normal_distribution<double> normal(0.0, 0.7);
  Matrix W(pb.d, pb.J);
  for (int k = 0; k < pb.d; ++k)
    for (int j = 0; j < pb.J; ++j) W(k, j) = normal(gen);
  model.params() = rows_of(W);
  std::vector<double> Z;
  model.comparisons(Z);
  const Matrix Zd = pb.Z(W, pb.E);
  for (std::uint64_t c = 0; c < nc; ++c)
    for (int j = 0; j < pb.J; ++j) EXPECT_NEAR(Z[c * pb.J + j], Zd(c0 + c, j), 1e-12);
  const ComparisonDerivs dv = pb.derivs(Zd, c0, nc);
  const std::vector<double> G = model.gradient(Z, dv.g);
  const Matrix Hx = model.hessian(dv.H);
  const double h = 1e-5;
  const int n = pb.d * pb.J;
  for (int k = 0; k < n; ++k) {
    Matrix Wp = W, Wm = W;
    Wp(k / pb.J, k % pb.J) += h;
    Wm(k / pb.J, k % pb.J) -= h;
    const double fd = (pb.F(Wp, pb.E) - pb.F(Wm, pb.E)) / (2 * h);
    EXPECT_NEAR(G[k], fd, 1e-6 * (1 + std::abs(fd))) << "gradient " << k;
    const std::vector<double> hd = rows_of((pb.grad(Wp, pb.E) - pb.grad(Wm, pb.E)) / (2 * h));
    for (int l = 0; l < n; ++l)
      EXPECT_NEAR(Hx(l, k), hd[l], 1e-6 * (1 + std::abs(hd[l]))) << "Hessian " << l << "," << k;
  }
  // The matrix-free products are the explicit Hessian's.
  std::vector<double> v(n);
  for (auto& x : v) x = normal(gen);
  const std::vector<double> Hv = model.hessian_times(dv.H, v);
  const Vector ref = Hx * Eigen::Map<const Vector>(v.data(), n);
  for (int k = 0; k < n; ++k) EXPECT_NEAR(Hv[k], ref[k], 1e-10 * (1 + std::abs(ref[k])));
}

TEST(Items, ResponseFactorGradientAndHessianMatchFiniteDifferences) {
  // phi_r free: the head on one-hot embeddings, E = I (R x R), but distributed by response.
  auto world = mpi::Comm::world();
  const Dense pb(4, 3, 3);
  const Matrix I = Matrix::Identity(pb.R, pb.R);
  const Partition comps = Partition::uniform(static_cast<std::uint64_t>(pb.M), world.size());
  const std::uint64_t c0 = comps.begin(world.rank()), nc = comps.count(world.rank());
  ItemModel model(world, item_data(world, pb, Items::kResponses, I), comps, item_config(pb));
  const Partition& rows = model.param_rows();
  const std::uint64_t r0 = rows.begin(world.rank()), nr = rows.count(world.rank());
  std::mt19937 gen(6);
  std::normal_distribution<double> normal(0.0, 0.7);
  Matrix Phi(pb.R, pb.J);
  for (int r = 0; r < pb.R; ++r)
    for (int j = 0; j < pb.J; ++j) Phi(r, j) = normal(gen);
  const std::vector<double> all = rows_of(Phi);
  model.params().assign(all.begin() + static_cast<std::ptrdiff_t>(r0 * pb.J),
                        all.begin() + static_cast<std::ptrdiff_t>((r0 + nr) * pb.J));
  std::vector<double> Z;
  model.comparisons(Z);
  const Matrix Zd = pb.Z(Phi, I);
  for (std::uint64_t c = 0; c < nc; ++c)
    for (int j = 0; j < pb.J; ++j) EXPECT_NEAR(Z[c * pb.J + j], Zd(c0 + c, j), 1e-12);
  const ComparisonDerivs dv = pb.derivs(Zd, c0, nc);
  const std::vector<double> G = allgather_rows(world, model.gradient(Z, dv.g));
  ASSERT_EQ(G.size(), static_cast<std::size_t>(pb.R * pb.J));
  std::vector<double> v(pb.R * pb.J);
  for (auto& x : v) x = normal(gen);
  const std::vector<double> vmine(v.begin() + static_cast<std::ptrdiff_t>(r0 * pb.J),
                                  v.begin() + static_cast<std::ptrdiff_t>((r0 + nr) * pb.J));
  const std::vector<double> Hv = allgather_rows(world, model.hessian_times(dv.H, vmine));
  const double h = 1e-5;
  for (int k = 0; k < pb.R * pb.J; ++k) {
    Matrix Pp = Phi, Pm = Phi;
    Pp(k / pb.J, k % pb.J) += h;
    Pm(k / pb.J, k % pb.J) -= h;
    const double fd = (pb.F(Pp, I) - pb.F(Pm, I)) / (2 * h);
    EXPECT_NEAR(G[k], fd, 1e-6 * (1 + std::abs(fd))) << "gradient " << k;
  }
  // H v against the gradient's finite difference along v.
  const Matrix Vm = as_matrix(v, pb.J);
  const std::vector<double> hd =
      rows_of((pb.grad(Phi + h * Vm, I) - pb.grad(Phi - h * Vm, I)) / (2 * h));
  for (int k = 0; k < pb.R * pb.J; ++k)
    EXPECT_NEAR(Hv[k], hd[k], 1e-6 * (1 + std::abs(hd[k]))) << k;
}

TEST(Items, HeadNewtonByCholeskyAndByCgReachTheDenseOptimum) {
  auto world = mpi::Comm::world();
  const Dense pb(7, 4, 3);
  const Matrix Wstar = pb.optimum(pb.E);
  const Partition comps = Partition::uniform(static_cast<std::uint64_t>(pb.M), world.size());
  const std::uint64_t c0 = comps.begin(world.rank()), nc = comps.count(world.rank());
  for (bool cg : {false, true}) {
    ItemConfig ic = item_config(pb);
    if (cg) ic.cholesky_max = 0;
    ItemModel model(world, item_data(world, pb, Items::kEmbeddings, pb.E), comps, ic);
    std::vector<double> Z;
    model.comparisons(Z);
    for (int it = 0; it < 60; ++it) {
      const Matrix W = as_matrix(model.params(), pb.J);
      const Matrix Zd = pb.Z(W, pb.E);
      if (model.newton_step(Z, pb.derivs(Zd, c0, nc), pb.change(Zd, c0, nc)) == 0) break;
    }
    EXPECT_STREQ(model.last_solver(), cg ? "cg" : "cholesky");
    const Matrix W = as_matrix(model.params(), pb.J);
    EXPECT_LT((W - Wstar).cwiseAbs().maxCoeff(), 1e-8) << (cg ? "CG" : "Cholesky") << "\n"
                                                       << W << "\nvs\n"
                                                       << Wstar;
    EXPECT_GT(Wstar.norm(), 0.1);  // not a trivial optimum
  }
}

namespace {
// The dense problem as fit() labels: every user labels every comparison.
Problem as_problem(const Dense& pb) {
  Problem out;
  out.users = static_cast<std::uint64_t>(pb.n);
  out.comparisons = static_cast<std::uint64_t>(pb.M);
  for (int i = 0; i < pb.n; ++i)
    for (int p = 0; p < pb.M; ++p)
      out.cols.push_back(static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(p),
                         static_cast<float>(pb.y[i][p]));
  return out;
}

// Two whole fits that must be the same: the objective sweep by sweep to obj_tol (relative), U
// and Z to factor_tol, and the item parameters (gathered) to factor_tol.
void expect_same_fit(const mpi::Comm& world, const DistFit& a, const DistFit& b, int J,
                     double obj_tol, double factor_tol) {
  ASSERT_EQ(a.res.history.size(), b.res.history.size());
  for (std::size_t s = 0; s < a.res.history.size(); ++s)
    EXPECT_NEAR(a.res.history[s].objective, b.res.history[s].objective,
                obj_tol * std::abs(b.res.history[s].objective))
        << "sweep " << s;
  EXPECT_LT((as_matrix(a.Z, J) - as_matrix(b.Z, J)).cwiseAbs().maxCoeff(), factor_tol);
  EXPECT_LT((as_matrix(a.U, J) - as_matrix(b.U, J)).cwiseAbs().maxCoeff(), factor_tol);
  const std::vector<double> ta = allgather_rows(world, a.res.item_params);
  const std::vector<double> tb = allgather_rows(world, b.res.item_params);
  ASSERT_EQ(ta.size(), tb.size());
  for (std::size_t k = 0; k < ta.size(); ++k) EXPECT_NEAR(ta[k], tb[k], factor_tol) << k;
}

}  // namespace

TEST(Items, FitHeadHalfStepReachesTheDenseOptimumAtFixedUsers) {
  // max_sweeps 0: the fit only fits the head to its initial users (random_factors), which the
  // dense reference then takes as its U.
  auto world = mpi::Comm::world();
  Dense pb(8, 3, 2);
  FitConfig cfg;
  cfg.J = pb.J;
  cfg.mu_z = pb.mu_z;
  cfg.prior = UserPrior::kRidge;
  cfg.max_sweeps = 0;
  cfg.item.mu_w = pb.mu_w;
  cfg.item_init_steps = 60;
  cfg.init_scale = 1.0;
  cfg.items = item_data(world, pb, Items::kEmbeddings, pb.E);
  const DistFit f = run_fit(world, as_problem(pb), cfg);
  pb.U = as_matrix(f.U, pb.J);
  const Matrix Wstar = pb.optimum(pb.E);
  const Matrix Zstar = pb.Z(Wstar, pb.E);
  EXPECT_LT((as_matrix(f.Z, pb.J) - Zstar).cwiseAbs().maxCoeff(), 1e-8);
  const std::vector<double> W = allgather_rows(world, f.res.item_params);  // rank 0's rows
  ASSERT_EQ(W.size(), static_cast<std::size_t>(pb.d * pb.J));
  EXPECT_LT((as_matrix(W, pb.J) - Wstar).cwiseAbs().maxCoeff(), 1e-8);
}

TEST(Items, ResponsesAndOneHotEmbeddingsAreTheSameFit) {
  auto world = mpi::Comm::world();
  const Dense pb(9, 3, 2);
  const Matrix I = Matrix::Identity(pb.R, pb.R);
  FitConfig cfg;
  cfg.J = pb.J;
  cfg.mu_z = pb.mu_z;
  cfg.max_sweeps = 6;
  cfg.tol = 0;
  cfg.item.mu_w = pb.mu_w;
  cfg.item.cg_tol = 1e-12;  // Phi by exact Newton-CG, as the head by Cholesky
  cfg.item.cg_max_iterations = 2000;
  cfg.init_scale = 0.5;
  FitConfig cr = cfg, ce = cfg;
  cr.items = item_data(world, pb, Items::kResponses, I);
  ce.items = item_data(world, pb, Items::kEmbeddings, I);
  const Problem prob = as_problem(pb);
  const DistFit fr = run_fit(world, prob, cr);
  const DistFit fe = run_fit(world, prob, ce);
  // Phi (responses, by response rows) is the head on one-hot embeddings.
  expect_same_fit(world, fr, fe, pb.J, 1e-8, 1e-7);
  // The fit moved: the objective decreased over the sweeps.
  EXPECT_LT(fr.res.history.back().objective, fr.res.history.front().objective);
}

TEST(Items, ResponseNewtonStepIsTheOneHotHeadStep) {
  // One Newton step from theta = 0 and a second one: Phi by distributed Newton-CG against the
  // head on one-hot embeddings by Cholesky.
  auto world = mpi::Comm::world();
  const Dense pb(10, 3, 2);
  const Matrix I = Matrix::Identity(pb.R, pb.R);
  const Partition comps = Partition::uniform(static_cast<std::uint64_t>(pb.M), world.size());
  const std::uint64_t c0 = comps.begin(world.rank()), nc = comps.count(world.rank());
  ItemModel resp(world, item_data(world, pb, Items::kResponses, I), comps, item_config(pb));
  ItemModel head(world, item_data(world, pb, Items::kEmbeddings, I), comps, item_config(pb));
  std::vector<double> Zr, Zh;
  resp.comparisons(Zr);
  head.comparisons(Zh);
  for (int step = 0; step < 2; ++step) {
    const Matrix Phi = as_matrix(allgather_rows(world, resp.params()), pb.J);
    const Matrix W = as_matrix(head.params(), pb.J);
    const Matrix Zpr = pb.Z(Phi, I), Zph = pb.Z(W, I);
    const double tr = resp.newton_step(Zr, pb.derivs(Zpr, c0, nc), pb.change(Zpr, c0, nc));
    const double th = head.newton_step(Zh, pb.derivs(Zph, c0, nc), pb.change(Zph, c0, nc));
    EXPECT_EQ(tr, th) << "step " << step;
    EXPECT_STREQ(resp.last_solver(), "cg");
    const Matrix Pn = as_matrix(allgather_rows(world, resp.params()), pb.J);
    const Matrix Wn = as_matrix(head.params(), pb.J);
    EXPECT_LT((Pn - Wn).cwiseAbs().maxCoeff(), 1e-10) << "step " << step << "\n"
                                                      << Pn << "\nvs\n"
                                                      << Wn;
    for (std::size_t k = 0; k < Zr.size(); ++k) EXPECT_NEAR(Zr[k], Zh[k], 1e-10) << k;
  }
}

// --residual (phi_r = W^T e_r + d_r): the head and the residuals together are the head on the
// augmented embeddings [E | I] (d + R columns), theta = [W; D]; with the residuals' ridge
// mu_residual differing from mu_w the reference adds (mu_residual - mu_w)/2 |D|^2.
namespace {
Matrix augmented(const Dense& pb) {
  Matrix A(pb.R, pb.d + pb.R);
  A << pb.E, Matrix::Identity(pb.R, pb.R);
  return A;
}
Matrix stacked(const Matrix& W, const Matrix& D) {
  Matrix T(W.rows() + D.rows(), W.cols());
  T << W, D;
  return T;
}
// The dense Newton step of F + (mu_r - mu_w)/2 |D|^2 in theta = T = [W; D] on [E | I], the
// Hessian written out (as Dense::optimum, with the residuals' own ridge); a zero matrix at a
// gradient below 1e-14.
Matrix residual_newton_step(const Dense& pb, const Matrix& T, double mu_r) {
  const Matrix Ea = augmented(pb);
  const int n = static_cast<int>(Ea.cols()), J = pb.J;
  {
    const Matrix Zm = pb.Z(T, Ea);
    Matrix H = pb.mu_w * Matrix::Identity(n * J, n * J);
    H.bottomRightCorner(pb.R * J, pb.R * J).diagonal().array() += mu_r - pb.mu_w;
    for (int p = 0; p < pb.M; ++p) {
      Matrix Hp = pb.mu_z * Matrix::Identity(J, J);
      for (int i = 0; i < pb.n; ++i) {
        const double s = sigmoid(pb.U.row(i).dot(Zm.row(p)));
        Hp += s * (1 - s) * pb.U.row(i).transpose() * pb.U.row(i);
      }
      const Vector xp = pb.x(p, Ea);
      for (int k = 0; k < n; ++k)
        for (int l = 0; l < n; ++l) H.block(k * J, l * J, J, J) += xp[k] * xp[l] * Hp;
    }
    Matrix G = pb.grad(T, Ea);
    G.bottomRows(pb.R) += (mu_r - pb.mu_w) * T.bottomRows(pb.R);
    const Vector g = Eigen::Map<const Vector>(RowMajor(G).data(), n * J);
    if (g.norm() < 1e-14) return Matrix::Zero(n, J);
    const Vector step = H.llt().solve(-g);
    RowMajor S(n, J);
    Eigen::Map<Vector>(S.data(), n * J) = step;
    return S;
  }
}
// The dense optimum by Newton's method.
Matrix residual_optimum(const Dense& pb, double mu_r) {
  Matrix T = Matrix::Zero(pb.d + pb.R, pb.J);
  for (int it = 0; it < 100; ++it) {
    const Matrix S = residual_newton_step(pb, T, mu_r);
    if (S.isZero(0)) break;
    T += S;
  }
  return T;
}
}  // namespace

TEST(Items, ResidualGradientAndHessianMatchFiniteDifferences) {
  auto world = mpi::Comm::world();
  const Dense pb(11, 3, 2);
  const double mu_r = 2.5;
  const Matrix Ea = augmented(pb);
  const Partition comps = Partition::uniform(static_cast<std::uint64_t>(pb.M), world.size());
  const std::uint64_t c0 = comps.begin(world.rank()), nc = comps.count(world.rank());
  const auto data = item_data(world, pb, Items::kEmbeddings, pb.E);
  ItemModel head(world, data, comps, item_config(pb));
  ItemConfig rc = item_config(pb);
  rc.mu_w = mu_r;
  ItemModel resid(world, data, comps, rc, Items::kResponses);
  ASSERT_EQ(resid.kind(), Items::kResponses);
  std::mt19937 gen(12);
  std::normal_distribution<double> normal(0.0, 0.6);
  Matrix W(pb.d, pb.J), D(pb.R, pb.J);
  for (auto* m : {&W, &D})
    for (Eigen::Index k = 0; k < m->size(); ++k) m->data()[k] = normal(gen);
  head.params() = rows_of(W);
  const Partition& rows = resid.param_rows();
  const std::uint64_t r0 = rows.begin(world.rank()), nr = rows.count(world.rank());
  const std::vector<double> all = rows_of(D);
  resid.params().assign(all.begin() + static_cast<std::ptrdiff_t>(r0 * pb.J),
                        all.begin() + static_cast<std::ptrdiff_t>((r0 + nr) * pb.J));
  EXPECT_EQ(resid.all_params(), all);
  std::vector<double> Z;
  head.comparisons(Z);
  resid.add_comparisons(Z);
  const Matrix T = stacked(W, D);
  const Matrix Zd = pb.Z(T, Ea);
  for (std::uint64_t c = 0; c < nc; ++c)
    for (int j = 0; j < pb.J; ++j) EXPECT_NEAR(Z[c * pb.J + j], Zd(c0 + c, j), 1e-12);
  auto F = [&](const Matrix& Dm) {
    return pb.F(stacked(W, Dm), Ea) + 0.5 * (mu_r - pb.mu_w) * Dm.squaredNorm();
  };
  auto grad_d = [&](const Matrix& Dm) {  // the gradient in D (R x J)
    return Matrix(pb.grad(stacked(W, Dm), Ea).bottomRows(pb.R) + (mu_r - pb.mu_w) * Dm);
  };
  const ComparisonDerivs dv = pb.derivs(Zd, c0, nc);
  const std::vector<double> G = allgather_rows(world, resid.gradient(Z, dv.g));
  ASSERT_EQ(G.size(), static_cast<std::size_t>(pb.R * pb.J));
  const std::vector<double> ga = rows_of(grad_d(D));
  const double h = 1e-5;
  for (int k = 0; k < pb.R * pb.J; ++k) {
    Matrix Dp = D, Dm = D;
    Dp(k / pb.J, k % pb.J) += h;
    Dm(k / pb.J, k % pb.J) -= h;
    const double fd = (F(Dp) - F(Dm)) / (2 * h);
    EXPECT_NEAR(G[k], fd, 1e-6 * (1 + std::abs(fd))) << "gradient " << k;
    EXPECT_NEAR(G[k], ga[k], 1e-10 * (1 + std::abs(ga[k]))) << "gradient " << k;
  }
  // H v against the analytic gradient's finite difference along v.
  std::vector<double> v(pb.R * pb.J);
  for (auto& x : v) x = normal(gen);
  const std::vector<double> vmine(v.begin() + static_cast<std::ptrdiff_t>(r0 * pb.J),
                                  v.begin() + static_cast<std::ptrdiff_t>((r0 + nr) * pb.J));
  const std::vector<double> Hv = allgather_rows(world, resid.hessian_times(dv.H, vmine));
  const Matrix Vm = as_matrix(v, pb.J);
  const std::vector<double> hd = rows_of((grad_d(D + h * Vm) - grad_d(D - h * Vm)) / (2 * h));
  for (int k = 0; k < pb.R * pb.J; ++k)
    EXPECT_NEAR(Hv[k], hd[k], 1e-6 * (1 + std::abs(hd[k]))) << k;
}

TEST(Items, JointResidualNewtonStepIsTheDenseNewtonStep) {
  // One joint step of (W, D) with an exact CG (cg_tol 1e-12) from a random point is the dense
  // Newton step of the head on [E | I] with the residuals' ridge: the joint Hessian's cross
  // terms included. With the head block by Cholesky and by block-Jacobi.
  auto world = mpi::Comm::world();
  const Dense pb(14, 3, 2);
  const double mu_r = 2.5;
  const Matrix Ea = augmented(pb);
  const Partition comps = Partition::uniform(static_cast<std::uint64_t>(pb.M), world.size());
  const std::uint64_t c0 = comps.begin(world.rank()), nc = comps.count(world.rank());
  const auto data = item_data(world, pb, Items::kEmbeddings, pb.E);
  for (bool cholesky : {true, false}) {
    ItemConfig hc = item_config(pb);
    if (!cholesky) hc.cholesky_max = 0;
    ItemConfig rc = hc;
    rc.mu_w = mu_r;
    ItemModel head(world, data, comps, hc);
    ItemModel resid(world, data, comps, rc, Items::kResponses);
    std::mt19937 gen(15);
    std::normal_distribution<double> normal(0.0, 0.3);
    Matrix W(pb.d, pb.J), D(pb.R, pb.J);
    for (auto* m : {&W, &D})
      for (Eigen::Index k = 0; k < m->size(); ++k) m->data()[k] = normal(gen);
    head.params() = rows_of(W);
    ASSERT_TRUE(resid.set_all_params(rows_of(D)));
    std::vector<double> Z;
    head.comparisons(Z);
    resid.add_comparisons(Z);
    const Matrix T = stacked(W, D);
    const Matrix Zd = pb.Z(T, Ea);
    const double t =
        ItemModel::joint_newton_step(head, resid, Z, pb.derivs(Zd, c0, nc), pb.change(Zd, c0, nc));
    ASSERT_EQ(t, 1.0) << "cholesky " << cholesky;
    const Matrix ref = T + residual_newton_step(pb, T, mu_r);
    const Matrix got = stacked(as_matrix(head.params(), pb.J), as_matrix(resid.all_params(), pb.J));
    EXPECT_LT((got - ref).cwiseAbs().maxCoeff(), 1e-9) << "cholesky " << cholesky << "\n"
                                                       << got << "\nvs\n"
                                                       << ref;
    EXPECT_GT((ref - T).norm(), 0.01);
    const Matrix Zn = pb.Z(ref, Ea);
    for (std::uint64_t c = 0; c < nc; ++c)
      for (int j = 0; j < pb.J; ++j) EXPECT_NEAR(Z[c * pb.J + j], Zn(c0 + c, j), 1e-9);
  }
}

TEST(Items, FitResidualReachesTheAugmentedHeadOptimumAtFixedUsers) {
  // The joint Newton steps of (W, D) at fixed users (max_sweeps 0) converge to the joint
  // optimum: the head on [E | I] with the residuals' ridge, by the dense Newton reference;
  // also with mu_residual = mu_w, where W and D trade almost freely (alternating steps of W
  // and of D, tried first, left 1e-3 in W there after 400 steps).
  auto world = mpi::Comm::world();
  for (const double mu_r : {0.05, 1.0}) {
    Dense pb(12, 3, 2);
    FitConfig cfg;
    cfg.J = pb.J;
    cfg.mu_z = pb.mu_z;
    cfg.prior = UserPrior::kRidge;
    cfg.max_sweeps = 0;
    cfg.item.mu_w = pb.mu_w;
    cfg.item.residual = true;
    cfg.item.mu_residual = mu_r;
    cfg.item.cg_tol = 1e-12;
    cfg.item.cg_max_iterations = 2000;
    cfg.item_init_steps = 30;
    cfg.init_scale = 1.0;
    cfg.items = item_data(world, pb, Items::kEmbeddings, pb.E);
    const DistFit f = run_fit(world, as_problem(pb), cfg);
    pb.U = as_matrix(f.U, pb.J);
    const Matrix Ea = augmented(pb);
    ASSERT_EQ(pb.mu_w, 0.05);
    const Matrix Tstar = residual_optimum(pb, mu_r);
    EXPECT_LT((as_matrix(f.Z, pb.J) - pb.Z(Tstar, Ea)).cwiseAbs().maxCoeff(), 1e-8);
    const std::vector<double> W = allgather_rows(world, f.res.item_params);
    const std::vector<double> D = allgather_rows(world, f.res.residual_params);
    ASSERT_EQ(W.size(), static_cast<std::size_t>(pb.d * pb.J));
    ASSERT_EQ(D.size(), static_cast<std::size_t>(pb.R * pb.J));
    EXPECT_LT((as_matrix(W, pb.J) - Tstar.topRows(pb.d)).cwiseAbs().maxCoeff(), 1e-8);
    EXPECT_LT((as_matrix(D, pb.J) - Tstar.bottomRows(pb.R)).cwiseAbs().maxCoeff(), 1e-8);
    EXPECT_GT(Tstar.bottomRows(pb.R).norm(), 0.1);  // the residuals are not trivially 0
  }
}

TEST(Items, HugeResidualRidgeIsThePlainHeadFit) {
  // mu_residual = 1e12: the residuals are O(|gradient| / mu_residual) ~ 1e-12, so whole fits
  // (6 sweeps, users and items) with and without --residual agree to well within 1e-8: the
  // map from the iterates to the next is smooth, and a 1e-12 change of z stays ~1e-12 times the
  // fit's conditioning.
  auto world = mpi::Comm::world();
  const Dense pb(13, 3, 2);
  FitConfig cfg;
  cfg.J = pb.J;
  cfg.mu_z = pb.mu_z;
  cfg.max_sweeps = 6;
  cfg.tol = 0;
  cfg.item.mu_w = pb.mu_w;
  cfg.init_scale = 0.5;
  cfg.items = item_data(world, pb, Items::kEmbeddings, pb.E);
  FitConfig cr = cfg;
  cr.item.residual = true;
  cr.item.mu_residual = 1e12;
  const Problem prob = as_problem(pb);
  const DistFit fp = run_fit(world, prob, cfg);
  const DistFit fr = run_fit(world, prob, cr);
  expect_same_fit(world, fr, fp, pb.J, 1e-10, 1e-8);
  const std::vector<double> D = allgather_rows(world, fr.res.residual_params);
  ASSERT_EQ(D.size(), static_cast<std::size_t>(pb.R * pb.J));
  for (double v : D) EXPECT_LT(std::abs(v), 1e-9);
  EXPECT_LT(fp.res.history.back().objective, fp.res.history.front().objective);
}
