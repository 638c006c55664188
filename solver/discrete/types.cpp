#include "solver/discrete/types.hpp"

#include <fmt/core.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "solver/base/error.hpp"
#include "solver/discrete/kmeans.hpp"

namespace pref::types {

namespace {

double dot(const double* a, const double* b, int J) {
  double s = 0;
  for (int i = 0; i < J; ++i) s += a[i] * b[i];
  return s;
}

double norm2(const double* a, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += a[i] * a[i];
  return s;
}

// Rows [part.begin(me), part.end(me)) of a row-major array of `width` columns from every rank,
// into `full` (part.size() x width) on every rank.
template <class T>
void allgather_rows(const mpi::Comm& comm, const Partition& part, int width,
                    const std::vector<T>& local, std::vector<T>& full) {
  full =
      mpi::allgatherv<T>(comm, std::span<const T>(local.data(), part.count(comm.rank()) * width));
}

// A row's labels grouped by partner and outcome: every label of the row with that partner (an
// atom for a comparison's row, a comparison for an atom's) and outcome has the same terms, so
// the row's sums are sum over groups of count x the group's term, in (partner, outcome) order.
struct Group {
  std::uint32_t partner;
  int outcome;
  double count;
};
struct Groups {
  std::vector<std::uint64_t> ptr{0};  // rows + 1
  std::vector<Group> group;
  // Appends a row from counts[partner * 3 + outcome] (partners x 3).
  void add_row(const std::vector<std::uint32_t>& counts) {
    for (std::size_t i = 0; i < counts.size(); ++i)
      if (counts[i] > 0)
        group.push_back(
            {static_cast<std::uint32_t>(i / 3), static_cast<int>(i % 3), double(counts[i])});
    ptr.push_back(group.size());
  }
};

// Maximizes, row by row, sum_{labels of the row} log P(y | w_row . x) - kRidge/2 |w_row|^2
// (R x J, row-major W) by Newton with the Fisher curvature and a per-row Armijo ladder, the
// labels given as groups (partner rows of X, J columns). Every row's sums run over its groups in
// order, so the result is a function of the groups alone. Returns the Newton steps taken (the
// most of any row).
int refit_rows(int R, int J, std::vector<double>& W, const Groups& g, const double* X,
               const ordinal::Params& p) {
  const int nh = J * (J + 1) / 2, stride = 1 + J + nh;
  std::vector<char> active(R, 1);
  std::vector<double> acc(std::size_t(R) * stride), dir(std::size_t(R) * J), slope(R), trial(J), mq;
  double steps[kLadder];
  for (int j = 0; j < kLadder; ++j) steps[j] = std::ldexp(1.0, -j);
  Eigen::MatrixXd H(J, J);
  Eigen::VectorXd G(J);
  int it = 0;
  for (; it < kMaxNewtonSteps; ++it) {
    bool any = false;
    for (int r = 0; r < R; ++r) {
      if (!active[r]) continue;
      double* a = &acc[std::size_t(r) * stride];
      std::fill(a, a + stride, 0.0);
      const double* w = &W[std::size_t(r) * J];
      for (std::uint64_t e = g.ptr[r]; e < g.ptr[r + 1]; ++e) {
        const Group& gr = g.group[e];
        const double* x = X + std::size_t(gr.partner) * J;
        const double m = dot(w, x, J), c = gr.count;
        const ordinal::MDerivs md = ordinal::m_derivs(gr.outcome, m, p);
        const double f = c * ordinal::fisher_m(m, p);
        a[0] += c * md.value;
        for (int i = 0; i < J; ++i) a[1 + i] += c * md.dm * x[i];
        double* h = a + 1 + J;
        for (int i = 0, k = 0; i < J; ++i)
          for (int j = 0; j <= i; ++j, ++k) h[k] += f * x[i] * x[j];
      }
      double gmax = 0;
      for (int i = 0; i < J; ++i) {
        G[i] = a[1 + i] - kRidge * w[i];
        gmax = std::max(gmax, std::abs(G[i]));
      }
      if (!(gmax > kGradTol)) {
        active[r] = 0;
        continue;
      }
      const double* h = a + 1 + J;
      for (int i = 0, k = 0; i < J; ++i)
        for (int j = 0; j <= i; ++j, ++k) H(i, j) = H(j, i) = h[k] + (i == j ? kRidge : 0.0);
      Eigen::LLT<Eigen::MatrixXd> llt(H);
      if (llt.info() != Eigen::Success) {
        active[r] = 0;
        continue;
      }
      Eigen::Map<Eigen::VectorXd> d(&dir[std::size_t(r) * J], J);
      d = llt.solve(G);
      slope[r] = G.dot(d);
      if (!(slope[r] > 0)) {
        active[r] = 0;
        continue;
      }
      any = true;
      // The ladder, one step length at a time (usually the first passes): the row's
      // log-likelihood there, over the groups in order.
      const std::size_t n = g.ptr[r + 1] - g.ptr[r];
      mq.resize(2 * n);
      for (std::size_t e = 0; e < n; ++e) {
        const double* x = X + std::size_t(g.group[g.ptr[r] + e].partner) * J;
        mq[2 * e] = dot(w, x, J);
        mq[2 * e + 1] = dot(d.data(), x, J);
      }
      double* wr = &W[std::size_t(r) * J];
      const double f0 = a[0] - 0.5 * kRidge * norm2(wr, J);
      bool moved = false;
      for (int j = 0; j < kLadder && !moved; ++j) {
        double l = 0;
        for (std::size_t e = 0; e < n; ++e) {
          const Group& gr = g.group[g.ptr[r] + e];
          l += gr.count * ordinal::log_lik(gr.outcome, mq[2 * e] + steps[j] * mq[2 * e + 1], p);
        }
        for (int i = 0; i < J; ++i) trial[i] = wr[i] + steps[j] * d[i];
        const double f = l - 0.5 * kRidge * norm2(trial.data(), J);
        if (f >= f0 + kArmijo * steps[j] * slope[r]) {
          std::copy(trial.begin(), trial.end(), wr);
          moved = true;
        }
      }
      if (!moved) active[r] = 0;
    }
    if (!any) break;
  }
  return it;
}

// Sums over this rank's comparisons' labels of `width` values per comparison (fill(margin,
// outcome, out) adds a label's into its comparison's), gathered and added in comparison order:
// the total does not depend on the rank count. A comparison's K margins are computed once, not
// once per label (the same values).
template <class Fill>
std::vector<double> comparison_sums(const mpi::Comm& comm, const LabelMatrix& lm, const Model& m,
                                    int width, Fill&& fill) {
  const int J = m.J;
  const std::uint64_t c0 = lm.parts.comparisons.begin(comm.rank());
  const std::size_t rows = lm.by_comparison.rows();
  std::vector<double> local(rows * width, 0.0), full, margin(m.K);
  // A label's share depends only on (atom, outcome): made once per comparison and pair (fill
  // into zeros gives the values fill adds) and added label by label, in the same order.
  std::vector<double> share(std::size_t(m.K) * 3 * width);
  std::vector<std::uint32_t> stamp(std::size_t(m.K) * 3, 0);
  for (std::size_t r = 0; r < rows; ++r) {
    const double* z = &m.Z[(c0 + r) * J];
    for (int k = 0; k < m.K; ++k) margin[k] = dot(&m.atoms[std::size_t(k) * J], z, J);
    double* out = &local[r * width];
    const auto pass = static_cast<std::uint32_t>(r + 1);
    for (std::uint64_t e = lm.by_comparison.ptr[r]; e < lm.by_comparison.ptr[r + 1]; ++e) {
      const int k = m.assign[lm.by_comparison.col[e]];
      const int o = ordinal::outcome(lm.by_comparison.val[e]);
      const std::size_t i = std::size_t(k) * 3 + o;
      double* v = &share[i * width];
      if (stamp[i] != pass) {
        stamp[i] = pass;
        std::fill(v, v + width, 0.0);
        fill(margin[k], o, v);
      }
      for (int j = 0; j < width; ++j) out[j] += v[j];
    }
  }
  allgather_rows(comm, lm.parts.comparisons, width, local, full);
  std::vector<double> total(width, 0.0);
  for (std::size_t c = 0; c < lm.comparisons; ++c)
    for (int i = 0; i < width; ++i) total[i] += full[c * width + i];
  return total;
}

// (r, s, a) by maximum likelihood (ordinal::maximize_params) with sums in comparison order.
int refit_params(const mpi::Comm& comm, const LabelMatrix& lm, Model& m) {
  const double tol = 1e-10 * double(std::max<std::uint64_t>(lm.labels, 1));
  return ordinal::maximize_params(
      m.params, tol, kMaxNewtonSteps, [&](const ordinal::Params& p, bool derivs) {
        return comparison_sums(comm, lm, m, derivs ? 10 : 1, [&](double mg, int o, double* out) {
          ordinal::add_param_sums(o, mg, p, derivs, out);
        });
      });
}

// Each of this rank's users to the atom maximizing its labels' log-likelihood (-1 without
// labels), gathered into m.assign. Returns the users whose atom changed (all ranks).
std::uint64_t assign_users(const mpi::Comm& comm, const LabelMatrix& lm, Model& m) {
  const int J = m.J, K = m.K;
  const std::uint64_t u0 = lm.parts.users.begin(comm.rank());
  const std::size_t rows = lm.by_user.rows();
  std::vector<int> local(rows, -1);
  std::vector<double> ll(K);
  std::uint64_t changed = 0;
  // log P(o | a_k . z_p) of every comparison, outcome and atom, made once when it takes at most
  // kAssignTableBytes (the same values as computed label by label: 3 M K evaluations instead of
  // one per label and atom).
  std::vector<double> table;
  const std::uint64_t M = lm.comparisons;
  if (M * 3 * std::uint64_t(K) * sizeof(double) <= kAssignTableBytes) {
    table.resize(M * 3 * K);
    for (std::uint64_t p = 0; p < M; ++p)
      for (int k = 0; k < K; ++k) {
        const double mg = dot(&m.atoms[std::size_t(k) * J], &m.Z[p * J], J);
        for (int o = 0; o < 3; ++o) table[(p * 3 + o) * K + k] = ordinal::log_lik(o, mg, m.params);
      }
  }
  for (std::size_t r = 0; r < rows; ++r) {
    if (lm.by_user.row_size(r) == 0) continue;
    std::fill(ll.begin(), ll.end(), 0.0);
    for (std::uint64_t e = lm.by_user.ptr[r]; e < lm.by_user.ptr[r + 1]; ++e) {
      const std::size_t p = lm.by_user.col[e];
      const int o = ordinal::outcome(lm.by_user.val[e]);
      if (!table.empty()) {
        const double* t = &table[(p * 3 + o) * K];
        for (int k = 0; k < K; ++k) ll[k] += t[k];
        continue;
      }
      const double* z = &m.Z[p * J];
      for (int k = 0; k < K; ++k)
        ll[k] += ordinal::log_lik(o, dot(&m.atoms[std::size_t(k) * J], z, J), m.params);
    }
    int best = 0;
    for (int k = 1; k < K; ++k)
      if (ll[k] > ll[best]) best = k;
    local[r] = best;
    changed += m.assign[u0 + r] != best;
  }
  std::vector<int> full;
  allgather_rows(comm, lm.parts.users, 1, local, full);
  m.assign = std::move(full);
  return mpi::allreduce_sum(comm, changed);
}

// The atoms: each atom's labels are its members', grouped by (comparison, outcome); the counts
// are summed over the ranks (integers: exact in any order), so every rank refits every atom
// from the same groups.
void refit_atoms(const mpi::Comm& comm, const LabelMatrix& lm, Model& m) {
  const std::uint64_t u0 = lm.parts.users.begin(comm.rank());
  const std::size_t M = lm.comparisons, width = M * 3;
  std::vector<std::uint32_t> counts(std::size_t(m.K) * width, 0);
  for (std::size_t r = 0; r < lm.by_user.rows(); ++r) {
    const int k = m.assign[u0 + r];
    if (k < 0) continue;
    for (std::uint64_t e = lm.by_user.ptr[r]; e < lm.by_user.ptr[r + 1]; ++e)
      ++counts[std::size_t(k) * width + std::size_t(lm.by_user.col[e]) * 3 +
               ordinal::outcome(lm.by_user.val[e])];
  }
  mpi::allreduce(comm, std::span<std::uint32_t>(counts), MPI_SUM);
  Groups g;
  std::vector<std::uint32_t> row(width);
  for (int k = 0; k < m.K; ++k) {
    std::copy(counts.begin() + std::size_t(k) * width, counts.begin() + std::size_t(k + 1) * width,
              row.begin());
    g.add_row(row);
  }
  refit_rows(m.K, m.J, m.atoms, g, m.Z.data(), m.params);
}

// Z: each of this rank's comparisons from its labels grouped by (labeler's atom, outcome).
void refit_z(const mpi::Comm& comm, const LabelMatrix& lm, Model& m) {
  const int J = m.J;
  const std::uint64_t c0 = lm.parts.comparisons.begin(comm.rank());
  const std::size_t rows = lm.by_comparison.rows();
  std::vector<double> local(m.Z.begin() + c0 * J, m.Z.begin() + (c0 + rows) * J);
  Groups g;
  std::vector<std::uint32_t> counts(std::size_t(m.K) * 3);
  for (std::size_t r = 0; r < rows; ++r) {
    std::fill(counts.begin(), counts.end(), 0u);
    for (std::uint64_t e = lm.by_comparison.ptr[r]; e < lm.by_comparison.ptr[r + 1]; ++e)
      ++counts[std::size_t(m.assign[lm.by_comparison.col[e]]) * 3 +
               ordinal::outcome(lm.by_comparison.val[e])];
    g.add_row(counts);
  }
  refit_rows(static_cast<int>(rows), J, local, g, m.atoms.data(), m.params);
  allgather_rows(comm, lm.parts.comparisons, J, local, m.Z);
}

}  // namespace

double objective(const mpi::Comm& comm, const LabelMatrix& labels, const Model& m) {
  const double ll = comparison_sums(comm, labels, m, 1, [&](double mg, int o, double* out) {
    out[0] += ordinal::log_lik(o, mg, m.params);
  })[0];
  return ll -
         0.5 * kRidge * (norm2(m.atoms.data(), m.atoms.size()) + norm2(m.Z.data(), m.Z.size()));
}

Model fit(const mpi::Comm& comm, const LabelMatrix& labels, const std::vector<double>& U,
          std::uint64_t U_first, std::vector<double> Z, int J, const Options& opt,
          const std::function<void(const std::string&)>& log) {
  Model m;
  m.J = J;
  m.comparisons = labels.comparisons;
  m.Z = std::move(Z);
  // The k-means of the fitted users (distributed; the same at any rank count), its assignment
  // gathered on every rank, then users without training labels set aside (-1).
  const auto t_kmeans = std::chrono::steady_clock::now();
  KMeans km =
      kmeans(comm, U.data(), U_first, U.size() / std::size_t(J), labels.users, J, opt.K, opt.seed);
  m.K = km.K;
  m.atoms = std::move(km.centres);
  m.assign = mpi::allgatherv<int>(comm, km.assign);
  log(fmt::format(
      "types: k-means of {} fitted users into {} atoms ({:.1f} s)", labels.users, m.K,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_kmeans).count()));
  {
    const std::uint64_t u0 = labels.parts.users.begin(comm.rank());
    std::vector<int> local(labels.by_user.rows());
    for (std::size_t r = 0; r < local.size(); ++r)
      local[r] = labels.by_user.row_size(r) ? m.assign[u0 + r] : -1;
    allgather_rows(comm, labels.parts.users, 1, local, m.assign);
  }
  // (r, s, a) start: a tie rate of a half, s a third of the margins' spread, a = 1 (em.py's).
  {
    const std::vector<double> s =
        comparison_sums(comm, labels, m, 3, [](double mg, int, double* o) {
          o[0] += 1;
          o[1] += mg;
          o[2] += mg * mg;
        });
    const double n = std::max(s[0], 1.0), mean = s[1] / n;
    const double sd = std::sqrt(std::max(s[2] / n - mean * mean, 1e-12));
    m.params = {0.5, sd / 3, 1.0};
  }
  auto t_last = std::chrono::steady_clock::now();
  auto report = [&](const std::string& step) {
    m.objective = objective(comm, labels, m);
    const auto now = std::chrono::steady_clock::now();
    log(fmt::format(
        "types: {}: objective {:.6f} ({:.6f} per label), r={:.6f} s={:.4f} a={:.4f} "
        "({:.1f} s)",
        step, m.objective, m.objective / double(std::max<std::uint64_t>(labels.labels, 1)),
        m.params.r, m.params.s, m.params.a, std::chrono::duration<double>(now - t_last).count()));
    t_last = now;
  };

  report("start (model Z, k-means atoms)");
  m.history.push_back(m.objective);
  refit_params(comm, labels, m);
  report("(0) ordinal model for the start");
  for (int i = 0; i < kStartAlternations; ++i) {
    refit_z(comm, labels, m);
    report("(0) Z");
    refit_params(comm, labels, m);
  }
  report("(0) Z refit given the k-means atoms");
  m.history.push_back(m.objective);
  for (int round = 0; round < opt.rounds; ++round) {
    const std::uint64_t changed = assign_users(comm, labels, m);
    std::uint64_t n = 0;
    for (int k : m.assign) n += k >= 0;
    m.reassigned.push_back(double(changed) / double(std::max<std::uint64_t>(n, 1)));
    refit_atoms(comm, labels, m);
    refit_z(comm, labels, m);
    refit_params(comm, labels, m);
    report(
        fmt::format("round {} ({:.3f} of the users reassigned)", round + 1, m.reassigned.back()));
    m.history.push_back(m.objective);
  }
  m.weights.assign(m.K, 0.0);
  std::uint64_t n = 0;
  for (int k : m.assign)
    if (k >= 0) m.weights[k] += 1, ++n;
  m.users = n;
  for (double& w : m.weights) w /= double(std::max<std::uint64_t>(n, 1));
  return m;
}

}  // namespace pref::types
