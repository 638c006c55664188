// The label kernels (solver/newton/kernels_impl.hpp) of every instruction set this CPU has, against
// naive references: the label pass (loss, gradient, Hessian, margins, probabilities), the
// projection of the line search and the Newton direction, for every J they cover and label
// counts around their block size.
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/LU>
#include <cmath>
#include <vector>

#include "solver/base/rng.hpp"
#include "solver/newton/kernels.hpp"
#include "solver/newton/loss.hpp"
#include "solver/newton/newton.hpp"

using namespace pref;

namespace {

std::vector<const kernels::Table*> tables() {
  static const kernels::Table g = kernels::generic::table(), a2 = kernels::avx2::table(),
                              a5 = kernels::avx512::table();
  std::vector<const kernels::Table*> out{&g};
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(&a2);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    out.push_back(&a5);
  return out;
}

struct Problem {
  int J;
  std::size_t rows = 57;
  std::vector<double> table, w;
  std::vector<std::uint32_t> idx;
  std::vector<float> y;
  Problem(int j, std::size_t n, std::uint64_t seed) : J(j) {
    Rng rng(seed, Stream::kSketch, static_cast<std::uint64_t>(j) * 1000 + n);
    table.resize(rows * J);
    for (auto& v : table) v = 0.7 * rng.normal();
    w.resize(J);
    for (auto& v : w) v = 0.7 * rng.normal();
    for (std::size_t k = 0; k < n; ++k) {
      idx.push_back(static_cast<std::uint32_t>(rng.below(rows)));
      y.push_back(k % 5 == 0 ? 0.5f : (rng.uniform() < 0.5 ? 0.0f : 1.0f));
    }
  }
  const double* x(std::size_t k) const { return table.data() + std::size_t(idx[k]) * J; }
};

double rel(double a, double b) {
  return std::abs(a - b) / std::max(1.0, std::abs(b));
}

}  // namespace

TEST(Kernels, LabelPassMatchesNaiveReference) {
  for (const auto* t : tables()) {
    for (int J = 1; J <= kernels::kMaxSmallJ; ++J) {
      for (std::size_t n : {0, 1, 7, 31, 32, 33, 100}) {
        SCOPED_TRACE(std::string(t->isa) + " J=" + std::to_string(J) + " n=" + std::to_string(n));
        Problem pr(J, n, 11);
        // Reference in plain double loops with libm.
        double loss = 0;
        std::vector<double> g(J, 0.0), H(J * J, 0.0), m(n), p(n);
        for (std::size_t k = 0; k < n; ++k) {
          double mk = 0;
          for (int a = 0; a < J; ++a) mk += pr.x(k)[a] * pr.w[a];
          m[k] = mk;
          p[k] = sigmoid(mk);
          loss += bce(mk, pr.y[k]);
          for (int a = 0; a < J; ++a) {
            g[a] += (p[k] - pr.y[k]) * pr.x(k)[a];
            for (int b = 0; b < J; ++b) H[b * J + a] += p[k] * (1 - p[k]) * pr.x(k)[a] * pr.x(k)[b];
          }
        }
        // Kernel: g and H are added to (start from 1 to check that), lower triangle only.
        std::vector<double> gk(J, 1.0), Hk(J * J, 1.0), mk(n), pk(n);
        LabelPass out;
        out.g = gk.data();
        out.H = Hk.data();
        out.loss = true;
        out.margins = mk.data();
        out.probs = pk.data();
        const double lk = t->accumulate(J, pr.w.data(), pr.table.data(), pr.idx, pr.y, out);
        EXPECT_LT(rel(lk, loss), 1e-13);
        double worst = 0;
        for (int a = 0; a < J; ++a) {
          worst = std::max(worst, rel(gk[a] - 1.0, g[a]));
          for (int b = 0; b <= a; ++b)
            worst = std::max(worst, rel(Hk[b * J + a] - 1.0, H[b * J + a]));
          for (int b = a + 1; b < J; ++b) EXPECT_EQ(Hk[b * J + a], 1.0) << "upper triangle written";
        }
        for (std::size_t k = 0; k < n; ++k) {
          worst = std::max(worst, rel(mk[k], m[k]));
          worst = std::max(worst, rel(pk[k], p[k]));
        }
        EXPECT_LT(worst, 1e-13);
        // The projection of the line search: q_k = x_k . w.
        std::vector<double> q(n);
        t->project(J, pr.w.data(), pr.table.data(), pr.idx, q.data());
        for (std::size_t k = 0; k < n; ++k) EXPECT_LT(rel(q[k], m[k]), 1e-14);
      }
    }
  }
}

TEST(Kernels, DirectionMatchesEigenCholesky) {
  for (const auto* t : tables()) {
    for (int J = 1; J <= kernels::kMaxSmallJ; ++J) {
      SCOPED_TRACE(std::string(t->isa) + " J=" + std::to_string(J));
      Rng rng(3, Stream::kSketch, J);
      Eigen::MatrixXd A(J + 3, J);
      for (int i = 0; i < A.size(); ++i) A.data()[i] = rng.normal();
      Eigen::MatrixXd H = A.transpose() * A + 0.1 * Eigen::MatrixXd::Identity(J, J);
      Eigen::VectorXd g(J);
      for (int i = 0; i < J; ++i) g[i] = rng.normal();
      const Eigen::VectorXd ref = -H.llt().solve(g);
      Eigen::MatrixXd Hlow = H;  // only the lower triangle may be read
      for (int b = 0; b < J; ++b)
        for (int a = 0; a < b; ++a) Hlow(a, b) = std::nan("");
      Eigen::VectorXd d(J);
      ASSERT_TRUE(t->direction(J, Hlow.data(), g.data(), 1e-8 * H.diagonal().maxCoeff(), d.data()));
      EXPECT_LT((d - ref).norm() / ref.norm(), 1e-10);
      // A singular H (rank J - 1) is refused, so that the caller takes the shifted path.
      if (J > 1) {
        Eigen::MatrixXd B = A.leftCols(J - 1);
        Eigen::MatrixXd S = Eigen::MatrixXd::Zero(J, J);
        S.topLeftCorner(J - 1, J - 1) = B.transpose() * B;
        EXPECT_FALSE(t->direction(J, S.data(), g.data(), 1e-8 * S.diagonal().maxCoeff(), d.data()));
      }
    }
  }
}

// Rows side by side, one per vector lane: each row's direction and inverse Hessian against
// Eigen's, only the lower triangles read and written, a singular row refused alone, and each
// row's results bitwise the same whichever rows share the call and whichever lane it takes.
TEST(Kernels, DirectionsOfRowsSideBySide) {
  for (const auto* t : tables()) {
    for (int J = 1; J <= kernels::kMaxBatchJ; ++J) {
      SCOPED_TRACE(std::string(t->isa) + " J=" + std::to_string(J));
      constexpr int R = kernels::kMaxRows;
      Rng rng(5, Stream::kSketch, J);
      std::vector<Eigen::MatrixXd> H(R);
      std::vector<Eigen::VectorXd> g(R), d(R);
      std::vector<Eigen::MatrixXd> inv(R);
      const double* Hp[R];
      const double* gp[R];
      double* dp[R];
      double* ip[R];
      double minp[R];
      const int singular = J > 1 ? 3 : -1;
      for (int l = 0; l < R; ++l) {
        Eigen::MatrixXd A(J + 2, J);
        for (int i = 0; i < A.size(); ++i) A.data()[i] = rng.normal();
        if (l == singular) A.col(J - 1) = A.col(0);  // rank J - 1
        H[l] = A.transpose() * A +
               (l == singular ? 0.0 : 0.05 * (l + 1)) * Eigen::MatrixXd::Identity(J, J);
        minp[l] = 1e-8 * H[l].diagonal().maxCoeff();
        for (int b = 0; b < J; ++b)
          for (int a = 0; a < b; ++a) H[l](a, b) = std::nan("");  // only the lower triangle
        g[l].resize(J);
        for (int i = 0; i < J; ++i) g[l][i] = rng.normal();
        d[l] = Eigen::VectorXd::Constant(J, -7.0);
        inv[l] = Eigen::MatrixXd::Constant(J, J, -7.0);
        Hp[l] = H[l].data();
        gp[l] = g[l].data();
        dp[l] = d[l].data();
        ip[l] = inv[l].data();
      }
      const unsigned ok = t->directions(J, R, Hp, gp, minp, dp, ip);
      for (int l = 0; l < R; ++l) {
        SCOPED_TRACE("row " + std::to_string(l));
        if (l == singular) {
          EXPECT_FALSE(ok >> l & 1);
          EXPECT_TRUE((d[l].array() == -7.0).all());
          EXPECT_TRUE((inv[l].array() == -7.0).all());
          continue;
        }
        ASSERT_TRUE(ok >> l & 1);
        const Eigen::MatrixXd full = H[l].selfadjointView<Eigen::Lower>();
        const Eigen::VectorXd ref = -full.llt().solve(g[l]);
        EXPECT_LT((d[l] - ref).norm() / ref.norm(), 1e-10);
        const Eigen::MatrixXd ref_inv = full.inverse();
        double worst = 0;
        for (int b = 0; b < J; ++b)
          for (int a = 0; a < J; ++a) {
            if (a >= b) {
              worst = std::max(worst, std::abs(inv[l](a, b) - ref_inv(a, b)));
            } else {
              EXPECT_EQ(inv[l](a, b), -7.0);
            }
          }
        EXPECT_LT(worst, 1e-10 * ref_inv.cwiseAbs().maxCoeff());
        // Alone, and in the last lane of a call of other rows: bitwise the same.
        for (int at : {0, R - 1}) {
          Eigen::VectorXd d1 = Eigen::VectorXd::Zero(J);
          Eigen::MatrixXd i1 = Eigen::MatrixXd::Zero(J, J);
          const double* Hq[R];
          const double* gq[R];
          double* dq[R];
          double* iq[R];
          double mq[R];
          std::vector<Eigen::VectorXd> dd(R, Eigen::VectorXd::Zero(J));
          std::vector<Eigen::MatrixXd> ii(R, Eigen::MatrixXd::Zero(J, J));
          const int k = (l + 1) % R == singular ? (l + 2) % R : (l + 1) % R;  // another row
          for (int q = 0; q <= at; ++q) {
            const int src = q == at ? l : k;
            Hq[q] = Hp[src];
            gq[q] = gp[src];
            mq[q] = minp[src];
            dq[q] = q == at ? d1.data() : dd[q].data();
            iq[q] = q == at ? i1.data() : ii[q].data();
          }
          ASSERT_TRUE(t->directions(J, at + 1, Hq, gq, mq, dq, iq) >> at & 1);
          for (int a = 0; a < J; ++a) EXPECT_EQ(d1[a], d[l][a]);
          for (int b = 0; b < J; ++b)
            for (int a = b; a < J; ++a) EXPECT_EQ(i1(a, b), inv[l](a, b));
        }
      }
    }
  }
}

// solve_rows is solve_row on each row, with add_spd_inverse of each row's last Hessian: the same
// steps to rounding (the directions' factorizations sum in another order), under the ridge and
// under a Gaussian prior, for rows with many, few and no labels, one and several Newton steps,
// and J past the lanes' limit (there: bitwise). Each row's results do not depend on its group.
TEST(Kernels, SolveRowsIsSolveRowPerRow) {
  for (int J : {1, 3, 8, 16, 17}) {
    for (bool gaussian : {false, true}) {
      for (int steps : {1, 3}) {
        SCOPED_TRACE("J=" + std::to_string(J) + (gaussian ? " prior" : " ridge") +
                     " steps=" + std::to_string(steps));
        constexpr int kRows = 13;
        const std::size_t counts[kRows] = {40, 0, 1, 7, 120, 33, 2, 60, 5, 0, 17, 90, 3};
        std::vector<Problem> rows;
        for (int r = 0; r < kRows; ++r) rows.emplace_back(J, counts[r], 100 + r);
        Eigen::MatrixXd P = Eigen::MatrixXd::Identity(J, J) * 0.8;
        for (int a = 1; a < J; ++a) P(a, a - 1) = P(a - 1, a) = 0.2;
        Eigen::VectorXd mean = Eigen::VectorXd::Constant(J, 0.1);
        const RowPrior prior = gaussian ? RowPrior(P.data(), mean.data()) : RowPrior(0.4);
        const std::size_t JJ = std::size_t(J) * J;
        // The reference: row by row.
        std::vector<std::vector<double>> ref(kRows);
        std::vector<double> ref_acc(JJ, 0.0);
        RowWorkspace ws;
        for (int r = 0; r < kRows; ++r) {
          ref[r] = rows[r].w;
          solve_row(ref[r].data(), J, rows[r].table.data(), rows[r].idx, rows[r].y, prior, steps,
                    ws);
          add_spd_inverse(J, ws.h.data(), ref_acc.data());
        }
        // Groups of each size: rows share a table only within a Problem, so each group's rows
        // use one shared table built from theirs.
        std::vector<std::vector<double>> first;
        for (int size : {1, 5, kernels::kMaxRows}) {
          std::vector<std::vector<double>> w(kRows);
          std::vector<double> acc(JJ, 0.0);
          for (int r0 = 0; r0 < kRows; r0 += size) {
            const int n = std::min(size, kRows - r0);
            std::vector<double> table;
            std::vector<std::vector<std::uint32_t>> idx(n);
            std::vector<GroupRow> group(n);
            for (int i = 0; i < n; ++i) {
              const Problem& pr = rows[r0 + i];
              const auto offset = static_cast<std::uint32_t>(table.size() / J);
              table.insert(table.end(), pr.table.begin(), pr.table.end());
              for (auto k : pr.idx) idx[i].push_back(k + offset);
              w[r0 + i] = pr.w;
            }
            for (int i = 0; i < n; ++i) group[i] = {w[r0 + i].data(), idx[i], rows[r0 + i].y};
            solve_rows(group, J, table.data(), prior, steps, ws, acc.data());
          }
          for (int r = 0; r < kRows; ++r)
            for (int a = 0; a < J; ++a) {
              if (J > kernels::kMaxBatchJ) {
                EXPECT_EQ(w[r][a], ref[r][a]) << "row " << r;
              } else {
                EXPECT_LT(rel(w[r][a], ref[r][a]), 1e-11) << "row " << r;
              }
            }
          double worst = 0, scale = 0;
          for (int b = 0; b < J; ++b)
            for (int a = b; a < J; ++a) {
              worst = std::max(worst, std::abs(acc[b * J + a] - ref_acc[b * J + a]));
              scale = std::max(scale, std::abs(ref_acc[b * J + a]));
            }
          EXPECT_LT(worst, 1e-11 * scale);
          if (first.empty()) {
            first = w;
          } else {
            for (int r = 0; r < kRows; ++r)
              for (int a = 0; a < J; ++a) EXPECT_EQ(w[r][a], first[r][a]) << "row " << r;
          }
        }
      }
    }
  }
}

// The comparison half-step solves each row from a copy of its partner rows (gather_partners):
// the copy must give bitwise the same Newton step and loss as the scattered table, and a row
// too large for the copy must be handed through untouched.
TEST(Kernels, GatheredPartnersGiveTheSameRowSolve) {
  for (int J : {3, 8, 17, 40}) {
    for (std::size_t n : {0, 1, 33, 500}) {
      SCOPED_TRACE("J=" + std::to_string(J) + " n=" + std::to_string(n));
      Problem pr(J, n, 23);
      RowWorkspace ws_table, ws_copy;
      const Partners copy = gather_partners(J, pr.table.data(), pr.idx, ws_copy);
      ASSERT_EQ(copy.idx.size(), n);
      if (n > 0) {
        EXPECT_NE(copy.table, pr.table.data());
      }
      for (std::size_t k = 0; k < n; ++k) {
        for (int a = 0; a < J; ++a) {
          ASSERT_EQ(copy.table[std::size_t(copy.idx[k]) * J + a], pr.x(k)[a]);
        }
      }
      std::vector<double> w1 = pr.w, w2 = pr.w;
      solve_row(w1.data(), J, pr.table.data(), pr.idx, pr.y, 0.3, 2, ws_table);
      solve_row(w2.data(), J, copy.table, copy.idx, pr.y, 0.3, 2, ws_copy);
      for (int a = 0; a < J; ++a) EXPECT_EQ(w1[a], w2[a]);
      LabelPass pass;
      pass.loss = true;
      EXPECT_EQ(accumulate(w1.data(), J, pr.table.data(), pr.idx, pr.y, pass, ws_table),
                accumulate(w2.data(), J, copy.table, copy.idx, pr.y, pass, ws_copy));
    }
  }
  // Beyond kMaxGatheredValues the table and indices come back as given.
  const int J = 8;
  std::vector<double> table(4 * J, 1.0);
  std::vector<std::uint32_t> idx(kMaxGatheredValues / J + 1, 2);
  RowWorkspace ws;
  const Partners big = gather_partners(J, table.data(), idx, ws);
  EXPECT_EQ(big.table, table.data());
  EXPECT_EQ(big.idx.data(), idx.data());
  EXPECT_TRUE(ws.partners.empty());
}

// The evaluation's per-label log-loss and probability against libm's (loss.hpp's bce and
// sigmoid), over margins from saturated to tiny, at scales the calibration tries: within 2 ulp
// (the relative 4e-16 below).
TEST(Kernels, LogisticTermsMatchLibm) {
  std::vector<double> m;
  for (double v : {0.0, 1e-300, 1e-12, 0.3, 1.0, 2.5, 17.0, 36.0, 40.0, 700.0, 709.0, 800.0})
    for (double sign : {1.0, -1.0}) m.push_back(sign * v);
  Rng rng(3, Stream::kSketch, 0);
  for (int k = 0; k < 200; ++k) m.push_back(6 * rng.normal());
  std::vector<float> y;
  for (std::size_t k = 0; k < m.size(); ++k) y.push_back(k % 3 == 0 ? 0.5f : float(k % 2));
  for (const auto* t : tables()) {
    for (double scale : {1.0, 0.61, 1.7}) {
      std::vector<double> loss(m.size()), p(m.size()), loss_only(m.size());
      t->logistic_terms(m.data(), y.data(), m.size(), scale, loss.data(), p.data());
      t->logistic_terms(m.data(), y.data(), m.size(), scale, loss_only.data(), nullptr);
      for (std::size_t k = 0; k < m.size(); ++k) {
        const double x = scale * m[k];
        EXPECT_NEAR(loss[k], bce(x, y[k]), 4e-16 * std::max(1.0, std::abs(bce(x, y[k]))))
            << t->isa << " m " << m[k] << " scale " << scale;
        // (Below the smallest normal double, about x < -708, a probability may be 0.)
        EXPECT_NEAR(p[k], sigmoid(x), 4e-16 * sigmoid(x) + 2.3e-308)
            << t->isa << " m " << m[k] << " scale " << scale;
        EXPECT_EQ(loss_only[k], loss[k]);
      }
    }
  }
}
