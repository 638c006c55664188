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

// A label of row `row` with partner x; `unit` numbers this rank's users in user order (the
// atoms' refit) and is unused otherwise.
// `key` names x among the row's partners (an atom for a comparison's row, a comparison for an
// atom's) so that refit_rows can memoize what depends only on (row, x, outcome); -1: none.
using Visitor =
    std::function<void(int row, const double* x, int outcome, std::size_t unit, int key)>;
using Visit = std::function<void(const Visitor&)>;

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
  const int P = comm.size();
  std::vector<int> counts(P), displs(P);
  for (int r = 0; r < P; ++r) {
    counts[r] = static_cast<int>(part.count(r) * width);
    displs[r] = static_cast<int>(part.begin(r) * width);
  }
  full.resize(part.size() * width);
  PREF_MPI_CHECK(MPI_Allgatherv(local.data(), counts[comm.rank()], mpi::datatype<T>(), full.data(),
                                counts.data(), displs.data(), mpi::datatype<T>(), comm.get()));
}

// out (R x width) = the sum, over every rank's units in global order, of unit u's `width`
// values (unit_acc row u) added into row unit_row[u] (-1: none): a running sum passed from rank
// to rank, each adding its own units in order, then broadcast from the last. The additions are
// those of one rank adding every unit in order, whatever the rank count.
void chain_fold(const mpi::Comm& comm, const std::vector<int>& unit_row,
                const std::vector<double>& unit_acc, int width, std::vector<double>& out) {
  const int me = comm.rank(), P = comm.size();
  const int n = static_cast<int>(out.size());
  std::fill(out.begin(), out.end(), 0.0);
  if (me > 0)
    PREF_MPI_CHECK(MPI_Recv(out.data(), n, MPI_DOUBLE, me - 1, 0, comm.get(), MPI_STATUS_IGNORE));
  for (std::size_t u = 0; u < unit_row.size(); ++u) {
    if (unit_row[u] < 0) continue;
    double* o = &out[std::size_t(unit_row[u]) * width];
    const double* a = &unit_acc[u * width];
    for (int i = 0; i < width; ++i) o[i] += a[i];
  }
  if (me + 1 < P) PREF_MPI_CHECK(MPI_Send(out.data(), n, MPI_DOUBLE, me + 1, 0, comm.get()));
  if (P > 1) PREF_MPI_CHECK(MPI_Bcast(out.data(), n, MPI_DOUBLE, P - 1, comm.get()));
}

// Maximizes, row by row, sum_{labels of the row} log P(y | w_row . x) - kRidge/2 |w_row|^2
// (rows x J, row-major W) by Newton with the Fisher curvature and a per-row Armijo ladder.
// visit calls its argument for every label this rank holds; with `reduce` the rows' sums
// run over every rank (the atoms): each of this rank's `units` users' sums is formed apart and
// the users are added in global user order (chain_fold), so every rank takes the same
// decisions); without, every row is this rank's alone (no communication). Returns the Newton
// steps taken (the most of any row).
// A label's terms depend only on (row, partner, outcome) within a pass: they are computed once
// per triple when keys > 0 (the partners' count) and the memo takes at most kMemoBytes, and
// reused for the row's other labels with that partner and outcome (the same values, added in
// the same order).
constexpr std::uint64_t kMemoBytes = std::uint64_t{1} << 28;
struct Memo {
  std::vector<std::uint32_t> stamp;  // R x keys x 3: the pass that filled the entry
  std::vector<double> value;         // R x keys x 3 x width
  std::uint32_t pass = 0;
  int width = 0;
  Memo(int R, int keys, int w) : width(w) {
    const std::uint64_t n = std::uint64_t(R) * std::uint64_t(std::max(keys, 0)) * 3;
    if (keys > 0 && n * (4 + 8 * std::uint64_t(w)) <= kMemoBytes) {
      stamp.assign(n, 0);
      value.resize(n * w);
    }
  }
  // The entry of (row, key, outcome) when memoizing, after fill(out) if it is new this pass;
  // nullptr otherwise.
  template <class Fill>
  const double* get(int r, int key, int o, int keys, Fill&& fill) {
    if (stamp.empty() || key < 0) return nullptr;
    const std::size_t i = (std::size_t(r) * keys + key) * 3 + o;
    if (stamp[i] != pass) {
      stamp[i] = pass;
      fill(&value[i * width]);
    }
    return &value[i * width];
  }
};

int refit_rows(const mpi::Comm& comm, int R, int J, std::vector<double>& W, const Visit& visit,
               bool reduce, std::size_t units, const ordinal::Params& p, int keys) {
  const int nh = J * (J + 1) / 2, stride = 1 + J + nh;
  Memo derivs(R, keys, 3), ladder(R, keys, kLadder);
  std::vector<char> active(R, 1);
  std::vector<int> unit_row;
  std::vector<double> unit_acc;
  std::vector<double> acc(std::size_t(R) * stride), lad(std::size_t(R) * kLadder),
      dir(std::size_t(R) * J), slope(R);
  double steps[kLadder];
  for (int j = 0; j < kLadder; ++j) steps[j] = std::ldexp(1.0, -j);
  Eigen::MatrixXd H(J, J);
  Eigen::VectorXd G(J);
  int it = 0;
  for (; it < kMaxNewtonSteps; ++it) {
    std::fill(acc.begin(), acc.end(), 0.0);
    if (reduce) {
      unit_row.assign(units, -1);
      unit_acc.assign(units * stride, 0.0);
    }
    ++derivs.pass;
    visit([&](int r, const double* x, int o, std::size_t unit, int key) {
      if (!active[r]) return;
      auto fill = [&](double* v) {
        const double m = dot(&W[std::size_t(r) * J], x, J);
        const ordinal::MDerivs md = ordinal::m_derivs(o, m, p);
        v[0] = md.value, v[1] = md.dm, v[2] = ordinal::fisher_m(m, p);
      };
      double own[3];
      const double* v = derivs.get(r, key, o, keys, fill);
      if (!v) fill(own), v = own;
      const ordinal::MDerivs md{v[0], v[1]};
      const double w = v[2];
      if (reduce) unit_row[unit] = r;
      double* a = reduce ? &unit_acc[unit * stride] : &acc[std::size_t(r) * stride];
      a[0] += md.value;
      for (int i = 0; i < J; ++i) a[1 + i] += md.dm * x[i];
      double* h = a + 1 + J;
      for (int i = 0, c = 0; i < J; ++i)
        for (int j = 0; j <= i; ++j, ++c) h[c] += w * x[i] * x[j];
    });
    if (reduce) chain_fold(comm, unit_row, unit_acc, stride, acc);
    bool any = false;
    for (int r = 0; r < R; ++r) {
      if (!active[r]) continue;
      const double* a = &acc[std::size_t(r) * stride];
      const double* w = &W[std::size_t(r) * J];
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
      for (int i = 0, c = 0; i < J; ++i)
        for (int j = 0; j <= i; ++j, ++c) H(i, j) = H(j, i) = h[c] + (i == j ? kRidge : 0.0);
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
    }
    if (!any) break;
    std::fill(lad.begin(), lad.end(), 0.0);
    if (reduce) {
      unit_row.assign(units, -1);
      unit_acc.assign(units * kLadder, 0.0);
    }
    ++ladder.pass;
    visit([&](int r, const double* x, int o, std::size_t unit, int key) {
      if (!active[r]) return;
      auto fill = [&](double* v) {
        const double m = dot(&W[std::size_t(r) * J], x, J);
        const double q = dot(&dir[std::size_t(r) * J], x, J);
        for (int j = 0; j < kLadder; ++j) v[j] = ordinal::log_lik(o, m + steps[j] * q, p);
      };
      double own[kLadder];
      const double* v = ladder.get(r, key, o, keys, fill);
      if (!v) fill(own), v = own;
      if (reduce) unit_row[unit] = r;
      double* l = reduce ? &unit_acc[unit * kLadder] : &lad[std::size_t(r) * kLadder];
      for (int j = 0; j < kLadder; ++j) l[j] += v[j];
    });
    if (reduce) chain_fold(comm, unit_row, unit_acc, kLadder, lad);
    std::vector<double> trial(J);
    for (int r = 0; r < R; ++r) {
      if (!active[r]) continue;
      double* w = &W[std::size_t(r) * J];
      const double* d = &dir[std::size_t(r) * J];
      const double f0 = acc[std::size_t(r) * stride] - 0.5 * kRidge * norm2(w, J);
      bool moved = false;
      for (int j = 0; j < kLadder && !moved; ++j) {
        for (int i = 0; i < J; ++i) trial[i] = w[i] + steps[j] * d[i];
        const double f = lad[std::size_t(r) * kLadder + j] - 0.5 * kRidge * norm2(trial.data(), J);
        if (f >= f0 + kArmijo * steps[j] * slope[r]) {
          std::copy(trial.begin(), trial.end(), w);
          moved = true;
        }
      }
      if (!moved) active[r] = 0;
    }
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

void refit_atoms(const mpi::Comm& comm, const LabelMatrix& lm, Model& m) {
  const int J = m.J;
  const std::uint64_t u0 = lm.parts.users.begin(comm.rank());
  refit_rows(
      comm, m.K, J, m.atoms,
      [&](const Visitor& f) {
        for (std::size_t r = 0; r < lm.by_user.rows(); ++r) {
          const int k = m.assign[u0 + r];
          if (k < 0) continue;
          for (std::uint64_t e = lm.by_user.ptr[r]; e < lm.by_user.ptr[r + 1]; ++e)
            f(k, &m.Z[std::size_t(lm.by_user.col[e]) * J], ordinal::outcome(lm.by_user.val[e]), r,
              static_cast<int>(lm.by_user.col[e]));
        }
      },
      true, lm.by_user.rows(), m.params, static_cast<int>(lm.comparisons));
}

void refit_z(const mpi::Comm& comm, const LabelMatrix& lm, Model& m) {
  const int J = m.J;
  const std::uint64_t c0 = lm.parts.comparisons.begin(comm.rank());
  const std::size_t rows = lm.by_comparison.rows();
  std::vector<double> local(m.Z.begin() + c0 * J, m.Z.begin() + (c0 + rows) * J);
  refit_rows(
      comm, static_cast<int>(rows), J, local,
      [&](const Visitor& f) {
        for (std::size_t r = 0; r < rows; ++r)
          for (std::uint64_t e = lm.by_comparison.ptr[r]; e < lm.by_comparison.ptr[r + 1]; ++e)
            f(static_cast<int>(r), &m.atoms[std::size_t(m.assign[lm.by_comparison.col[e]]) * J],
              ordinal::outcome(lm.by_comparison.val[e]), 0, m.assign[lm.by_comparison.col[e]]);
      },
      false, 0, m.params, m.K);
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
