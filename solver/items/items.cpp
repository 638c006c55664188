#include "solver/items/items.hpp"

#include <fmt/core.h>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <ctime>

#include "io/label_file.hpp"
#include "solver/base/log.hpp"
#include "solver/newton/blas.hpp"
#include "solver/newton/newton.hpp"

// BLAS (OpenBLAS): the head's products with the embedding rows.
namespace pref {

ItemData load_item_data(const io::LabelFile& file, Items kind, const mpi::Comm& comm,
                        const std::string& option) {
  ItemData d;
  d.kind = kind;
  if (kind == Items::kComparisons) return d;
  mpi::agree(comm, [&] {
    if (!file.has_responses())
      throw InputError(
          fmt::format("{} {}: {} has no response structure (/responses, "
                      "/comparisons; format version 2, docs/format.md); only "
                      "{} comparisons fits it",
                      option, items_name(kind), file.path(), option));
    if (kind == Items::kEmbeddings && file.responses().embedding_dim == 0)
      throw InputError(
          fmt::format("{} embeddings: {} has no /responses/embedding", option, file.path()));
  });
  const io::ResponseTable& t = file.responses();
  d.responses = t.responses;
  d.first = t.first;
  d.second = t.second;
  if (kind == Items::kEmbeddings) {
    d.dim = t.embedding_dim;
    d.response_rows = Partition::uniform(t.responses, comm.size());
    const std::vector<float> e = file.read_embedding(d.response_rows.begin(comm.rank()),
                                                     d.response_rows.count(comm.rank()), comm);
    d.embedding.assign(e.begin(), e.end());
  }
  return d;
}

ItemModel::ItemModel(const mpi::Comm& comm, std::shared_ptr<const ItemData> data,
                     const Partition& comparisons, const ItemConfig& cfg)
    : ItemModel(comm, data, comparisons, cfg, data->kind) {}

ItemModel::ItemModel(const mpi::Comm& comm, std::shared_ptr<const ItemData> data,
                     const Partition& comparisons, const ItemConfig& cfg, Items kind)
    : comm_(comm), data_(std::move(data)), kind_(kind), cfg_(cfg), J_(cfg.J) {
  const int me = comm.rank();
  c0_ = comparisons.begin(me);
  nc_ = comparisons.count(me);
  std::vector<std::uint32_t> need;
  need.reserve(2 * nc_);
  for (std::uint64_t c = 0; c < nc_; ++c) {
    need.push_back(data_->first[c0_ + c]);
    need.push_back(data_->second[c0_ + c]);
  }
  const Partition owners = kind_ == Items::kEmbeddings
                               ? data_->response_rows
                               : Partition::uniform(data_->responses, comm.size());
  plan_ = GhostPlan(comm, IdSet({std::span<const std::uint32_t>(need)}), owners);
  ia_.resize(nc_);
  ib_.resize(nc_);
  for (std::uint64_t c = 0; c < nc_; ++c) {
    ia_[c] = plan_.index_of(data_->first[c0_ + c]);
    ib_[c] = plan_.index_of(data_->second[c0_ + c]);
  }
  if (kind_ == Items::kEmbeddings) {
    const std::uint64_t d = data_->dim;
    plan_.fetch(comm, data_->embedding, static_cast<int>(d), emb_ghost_);
    std::vector<GlobalId> bounds(comm.size() + 1, d);
    bounds[0] = 0;
    rows_ = Partition(bounds);
    theta_.assign(d * J_, 0.0);
  } else {
    rows_ = owners;
    theta_.assign(owners.count(me) * J_, 0.0);
  }
}

std::vector<double> ItemModel::owned_params() const {
  if (kind_ == Items::kEmbeddings && comm_.rank() != 0) return {};
  return theta_;
}

std::vector<double> ItemModel::all_params() const {
  if (kind_ == Items::kEmbeddings) return theta_;  // replicated
  return mpi::allgatherv<double>(
      comm_, std::span<const double>(theta_.data(), rows_.count(comm_.rank()) * J_));
}

bool ItemModel::set_all_params(const std::vector<double>& all) {
  const std::size_t rows = kind_ == Items::kEmbeddings ? data_->dim : rows_.size();
  if (all.size() != rows * J_) return false;
  if (kind_ == Items::kEmbeddings) {
    theta_ = all;
  } else {
    const auto b = all.begin() + static_cast<std::ptrdiff_t>(rows_.begin(comm_.rank()) * J_);
    theta_.assign(b, b + static_cast<std::ptrdiff_t>(rows_.count(comm_.rank()) * J_));
  }
  return true;
}

void ItemModel::difference(std::size_t c, double* x) const {
  const std::uint64_t d = data_->dim;
  const double* a = emb_ghost_.data() + std::size_t(ia_[c]) * d;
  const double* b = emb_ghost_.data() + std::size_t(ib_[c]) * d;
  for (std::uint64_t k = 0; k < d; ++k) x[k] = a[k] - b[k];
}

void ItemModel::embed(const double* V, std::vector<double>& P) const {
  // Column-major views: V^T is J x d, E_ghost^T is d x G (each response's row contiguous), so
  // P^T = V^T E_ghost^T is J x G, i.e. P (G x J) row-major.
  const int G = static_cast<int>(plan_.ghosts()), d = static_cast<int>(data_->dim), J = J_;
  P.assign(std::size_t(G) * J_, 0.0);
  if (G == 0) return;
  const double one = 1, zero = 0;
  dgemm_("N", "N", &J, &G, &d, &one, V, &J, emb_ghost_.data(), &d, &zero, P.data(), &J);
}

void ItemModel::embed_adjoint(const std::vector<double>& S, double* out) const {
  // out^T (J x d) = S^T (J x G) E_ghost (G x d): out is d x J row-major.
  const int G = static_cast<int>(plan_.ghosts()), d = static_cast<int>(data_->dim), J = J_;
  std::fill(out, out + std::size_t(d) * J_, 0.0);
  if (G == 0) return;
  const double one = 1, zero = 0;
  dgemm_("N", "T", &J, &d, &G, &one, S.data(), &J, emb_ghost_.data(), &d, &zero, out, &J);
}

void ItemModel::apply(const std::vector<double>& v, std::vector<double>& out) const {
  out.assign(nc_ * J_, 0.0);
  std::vector<double> ghost;
  // Per response: the head's phi = W^T e (one matrix product), or Phi's rows fetched.
  if (kind_ == Items::kEmbeddings)
    embed(v.data(), ghost);
  else
    plan_.fetch(comm_, v, J_, ghost);
  for (std::uint64_t c = 0; c < nc_; ++c) {
    const double* a = ghost.data() + std::size_t(ia_[c]) * J_;
    const double* b = ghost.data() + std::size_t(ib_[c]) * J_;
    for (int j = 0; j < J_; ++j) out[c * J_ + j] = a[j] - b[j];
  }
}

std::vector<double> ItemModel::adjoint(const std::vector<double>& w) const {
  // The +- scatter of w_p onto the comparison's two responses, then per response: the head's
  // E^T (one matrix product, summed over the ranks), or a reduce to Phi's owners.
  std::vector<double> ghost(plan_.ghosts() * J_, 0.0);
  for (std::uint64_t c = 0; c < nc_; ++c) {
    double* a = ghost.data() + std::size_t(ia_[c]) * J_;
    double* b = ghost.data() + std::size_t(ib_[c]) * J_;
    for (int j = 0; j < J_; ++j) {
      a[j] += w[c * J_ + j];
      b[j] -= w[c * J_ + j];
    }
  }
  if (kind_ == Items::kEmbeddings) {
    std::vector<double> G(data_->dim * J_, 0.0);
    embed_adjoint(ghost, G.data());
    mpi::allreduce(comm_, std::span<double>(G), MPI_SUM);
    return G;
  }
  std::vector<double> out(theta_.size(), 0.0);
  plan_.reduce(comm_, ghost, J_, out);
  return out;
}

void ItemModel::comparisons(std::vector<double>& Z) const {
  apply(theta_, Z);
}

void ItemModel::add_comparisons(std::vector<double>& Z) const {
  std::vector<double> mine;
  apply(theta_, mine);
  for (std::size_t i = 0; i < Z.size(); ++i) Z[i] += mine[i];
}

double ItemModel::dot(const std::vector<double>& a, const std::vector<double>& b) const {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  // Replicated: rank 0's value, so that every decision taken on it is the same everywhere.
  if (kind_ == Items::kEmbeddings) return mpi::broadcast(comm_, s);
  return mpi::allreduce_sum(comm_, s);
}

std::vector<double> ItemModel::gradient(const std::vector<double>& Z,
                                        const std::vector<double>& g) const {
  std::vector<double> r(nc_ * J_);
  for (std::size_t i = 0; i < r.size(); ++i) r[i] = g[i] + cfg_.mu_z * Z[i];
  std::vector<double> G = adjoint(r);
  for (std::size_t i = 0; i < G.size(); ++i) G[i] += cfg_.mu_w * theta_[i];
  mask(G);
  return G;
}

void ItemModel::mask(std::vector<double>& v) const {
  // The fixed rows' gradient and Hessian products are 0: CG from 0 (with the block-diagonal
  // preconditioner) then never moves them.
  for (std::size_t r = 0; r < fixed_.size(); ++r)
    if (fixed_[r])
      std::fill(v.begin() + static_cast<std::ptrdiff_t>(r * J_),
                v.begin() + static_cast<std::ptrdiff_t>((r + 1) * J_), 0.0);
}

void ItemModel::fix_unlabelled(std::span<const char> labelled) {
  if (kind_ != Items::kResponses) throw Error("ItemModel::fix_unlabelled: responses kind only");
  std::vector<double> ghost(plan_.ghosts(), 0.0), count(theta_.size() / J_, 0.0);
  for (std::uint64_t c = 0; c < nc_; ++c)
    if (labelled[c]) {
      ghost[ia_[c]] += 1;
      ghost[ib_[c]] += 1;
    }
  plan_.reduce(comm_, ghost, 1, count);
  fixed_.assign(count.size(), 0);
  for (std::size_t r = 0; r < count.size(); ++r) {
    fixed_[r] = count[r] == 0;
    if (fixed_[r])
      std::fill(theta_.begin() + static_cast<std::ptrdiff_t>(r * J_),
                theta_.begin() + static_cast<std::ptrdiff_t>((r + 1) * J_), 0.0);
  }
}

std::vector<double> ItemModel::hessian_times(const std::vector<double>& H,
                                             const std::vector<double>& v) const {
  std::vector<double> av, w(nc_ * J_);
  apply(v, av);
  const std::size_t JJ = std::size_t(J_) * J_;
  for (std::uint64_t c = 0; c < nc_; ++c) {
    const Eigen::Map<const Eigen::MatrixXd> Hc(H.data() + c * JJ, J_, J_);
    const Eigen::Map<const Eigen::VectorXd> a(av.data() + c * J_, J_);
    Eigen::Map<Eigen::VectorXd>(w.data() + c * J_, J_).noalias() = Hc * a + cfg_.mu_z * a;
  }
  std::vector<double> out = adjoint(w);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] += cfg_.mu_w * v[i];
  mask(out);
  return out;
}

Eigen::MatrixXd ItemModel::hessian(const std::vector<double>& H) const {
  const std::uint64_t d = data_->dim;
  const Eigen::Index n = static_cast<Eigen::Index>(d * J_), dd = static_cast<Eigen::Index>(d);
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(n, n);
  // sum_p (x_p x_p^T) (x) (H_p + mu_z I): its (j, i) block of every (k, l) is entry (k, l) of
  // the weighted Gram matrix X^T diag(H_p(j, i) + mu_z [i = j]) X, one product (d^2 per
  // comparison) for each of the J (J + 1) / 2 pairs j >= i.
  const std::size_t JJ = std::size_t(J_) * J_;
  const Eigen::Index nc = static_cast<Eigen::Index>(nc_);
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> X(nc, dd);
  for (std::uint64_t c = 0; c < nc_; ++c) difference(c, X.row(static_cast<Eigen::Index>(c)).data());
  Eigen::MatrixXd WX(nc, dd), G(dd, dd);
  Eigen::VectorXd w(nc);
  for (int j = 0; j < J_; ++j)
    for (int i = 0; i <= j; ++i) {
      for (std::uint64_t c = 0; c < nc_; ++c)
        w[static_cast<Eigen::Index>(c)] =
            H[c * JJ + std::size_t(i) * J_ + j] + (i == j ? cfg_.mu_z : 0.0);
      WX.noalias() = w.asDiagonal() * X;
      G.noalias() = X.transpose() * WX;
      for (Eigen::Index k = 0; k < dd; ++k)
        for (Eigen::Index l = 0; l < dd; ++l) {
          out(k * J_ + j, l * J_ + i) = G(k, l);
          out(k * J_ + i, l * J_ + j) = G(k, l);  // G is symmetric
        }
    }
  mpi::allreduce(comm_, std::span<double>(out.data(), static_cast<std::size_t>(n * n)), MPI_SUM);
  out.diagonal().array() += cfg_.mu_w;
  return out;
}

std::vector<double> ItemModel::block_jacobi(const std::vector<double>& H) const {
  // Per row a of theta, the J x J block sum_p A_pa^2 (H_p + mu_z I) + mu_w I of the Hessian:
  // for the head A_pa = x_pa (the embedding difference's coordinate a), for Phi +-1.
  const std::size_t JJ = std::size_t(J_) * J_;
  const std::size_t rows = theta_.size() / J_;
  std::vector<double> B(rows * JJ, 0.0);
  if (kind_ == Items::kEmbeddings) {
    // The blocks' lower triangles, T = J (J + 1) / 2 values each: Bt (T x d, column-major) =
    // sum over blocks of comparisons of (H + mu_z I) packed (T x nb) times X2^T (nb x d), X2
    // the squared embedding differences: one matrix product per block.
    const std::uint64_t d = data_->dim;
    const std::size_t T = std::size_t(J_) * (J_ + 1) / 2;
    constexpr std::uint64_t kBlock = 512;
    std::vector<double> X2(d * kBlock), Hb(T * kBlock), Bt(T * d, 0.0);
    for (std::uint64_t c0 = 0; c0 < nc_; c0 += kBlock) {
      const std::uint64_t nb = std::min(kBlock, nc_ - c0);
      for (std::uint64_t c = 0; c < nb; ++c) {
        const double* a = emb_ghost_.data() + std::size_t(ia_[c0 + c]) * d;
        const double* b = emb_ghost_.data() + std::size_t(ib_[c0 + c]) * d;
        double* x = X2.data() + c * d;
        for (std::uint64_t k = 0; k < d; ++k) x[k] = (a[k] - b[k]) * (a[k] - b[k]);
        const double* h = H.data() + (c0 + c) * JJ;
        std::size_t t = c * T;
        for (int j = 0; j < J_; ++j)
          for (int i = j; i < J_; ++i)
            Hb[t++] = h[std::size_t(j) * J_ + i] + (i == j ? cfg_.mu_z : 0.0);
      }
      const int m = static_cast<int>(T), n = static_cast<int>(d), k = static_cast<int>(nb);
      const double one = 1;
      dgemm_("N", "T", &m, &n, &k, &one, Hb.data(), &m, X2.data(), &n, &one, Bt.data(), &m);
    }
    mpi::allreduce(comm_, std::span<double>(Bt), MPI_SUM);
    for (std::uint64_t a = 0; a < d; ++a) {
      std::size_t t = a * T;
      for (int j = 0; j < J_; ++j)
        for (int i = j; i < J_; ++i) {
          B[a * JJ + std::size_t(j) * J_ + i] = Bt[t];
          B[a * JJ + std::size_t(i) * J_ + j] = Bt[t++];
        }
    }
  } else {
    std::vector<double> ghost(plan_.ghosts() * JJ, 0.0);
    for (std::uint64_t c = 0; c < nc_; ++c)
      for (std::size_t k = 0; k < JJ; ++k) {
        const double h = H[c * JJ + k] + (k % (J_ + 1) == 0 ? cfg_.mu_z : 0.0);
        ghost[std::size_t(ia_[c]) * JJ + k] += h;
        ghost[std::size_t(ib_[c]) * JJ + k] += h;
      }
    plan_.reduce(comm_, ghost, static_cast<int>(JJ), B);
  }
  for (std::size_t r = 0; r < rows; ++r) {
    Eigen::Map<Eigen::MatrixXd> b(B.data() + r * JJ, J_, J_);
    b.diagonal().array() += cfg_.mu_w;
    Eigen::LLT<Eigen::MatrixXd> llt(b);
    if (llt.info() == Eigen::Success) {
      b = llt.matrixL();
    } else {  // not expected (the block is positive definite): fall back to its diagonal
      const Eigen::VectorXd diag = b.diagonal().cwiseMax(cfg_.mu_w).cwiseSqrt();
      b.setZero();
      b.diagonal() = diag;
    }
  }
  return B;
}

std::vector<double> ItemModel::solve_cg(const std::vector<double>& H,
                                        const std::vector<double>& G) {
  // Preconditioned CG on (A^T (H + mu_z I) A + mu_w I) D = -G from D = 0, truncated at the
  // relative residual eta: cg_tol, or the forcing term min(cg_forcing, sqrt(|G|)). Any
  // truncation of CG from 0 is a descent direction (the Armijo ladder then takes a step).
  const std::clock_t c0 = std::clock();
  const std::vector<double> L = block_jacobi(H);
  last_precondition_cpu_ = double(std::clock() - c0) / CLOCKS_PER_SEC;
  const std::size_t n = G.size(), JJ = std::size_t(J_) * J_;
  auto precondition = [&](const std::vector<double>& r, std::vector<double>& z) {
    for (std::size_t row = 0; row < n / J_; ++row) {
      const Eigen::Map<const Eigen::MatrixXd> l(L.data() + row * JJ, J_, J_);
      Eigen::Map<Eigen::VectorXd> zr(z.data() + row * J_, J_);
      zr = Eigen::Map<const Eigen::VectorXd>(r.data() + row * J_, J_);
      l.triangularView<Eigen::Lower>().solveInPlace(zr);
      l.transpose().triangularView<Eigen::Upper>().solveInPlace(zr);
    }
  };
  std::vector<double> D(n, 0.0), r(n), z(n), p(n);
  for (std::size_t i = 0; i < n; ++i) r[i] = -G[i];
  precondition(r, z);
  p = z;
  double rz = dot(r, z);
  const double gg = dot(r, r);
  const double eta =
      cfg_.cg_tol > 0 ? cfg_.cg_tol : std::min(cfg_.cg_forcing, std::sqrt(std::sqrt(gg)));
  const double stop = eta * eta * gg;
  last_eta_ = eta;
  last_cg_ = 0;
  double rr = gg;
  for (int it = 0; it < cfg_.cg_max_iterations; ++it) {
    if (rr <= stop) break;
    const std::vector<double> Hp = hessian_times(H, p);
    const double pHp = dot(p, Hp);
    if (!(pHp > 0)) break;
    const double alpha = rz / pHp;
    for (std::size_t i = 0; i < n; ++i) {
      D[i] += alpha * p[i];
      r[i] -= alpha * Hp[i];
    }
    precondition(r, z);
    const double rz_new = dot(r, z);
    const double beta = rz_new / rz;
    rz = rz_new;
    for (std::size_t i = 0; i < n; ++i) p[i] = z[i] + beta * p[i];
    rr = dot(r, r);
    last_cg_ = it + 1;
  }
  return D;
}

namespace {
// The Armijo ladder of an item step (solver/newton/loss.hpp): Z moves along V, the parameters along
// their direction D. The change of F at each step length t, term by term
// (solver/newton/newton.hpp): the labels' change from `change`, z's ridge mu_z t (z.V + t/2 |V|^2),
// the parameters' ridge mu t (td + t/2 dd) with td = theta.D and dd = |D|^2 (summed over the
// blocks, mu = 1, when several models move together). Returns the step taken, 0 for none;
// *measured: whether the labels were measured at it (the first rung). Collective.
double item_ladder(const mpi::Comm& comm, const std::vector<double>& Z,
                   const std::vector<double>& V, double mu_z, double mu, double td, double dd,
                   double gd, const LabelChange& change, bool* measured) {
  double zv = 0, vv = 0;
  for (std::size_t i = 0; i < V.size(); ++i) {
    zv += Z[i] * V[i];
    vv += V[i] * V[i];
  }
  constexpr int kPerRound = 2;
  for (int l0 = 0; l0 < kLadder; l0 += kPerRound) {
    const int nl = std::min(kPerRound, kLadder - l0);
    double steps[kPerRound] = {0, 0}, ch[kPerRound] = {0, 0};
    for (int l = 0; l < nl; ++l) steps[l] = ladder_step(l0 + l);
    change(V, std::span<const double>(steps, nl), std::span<double>(ch, nl), l0 == 0);
    for (int l = 0; l < nl; ++l) ch[l] += mu_z * steps[l] * (zv + 0.5 * steps[l] * vv);
    mpi::allreduce(comm, std::span<double>(ch, nl), MPI_SUM);
    for (int l = 0; l < nl; ++l) {
      const double t = steps[l];
      if (ch[l] + mu * t * (td + 0.5 * t * dd) <= kArmijo * t * gd) {
        *measured = l0 == 0 && l == 0;
        return t;
      }
    }
  }
  return 0;
}
}  // namespace

double ItemModel::newton_step(std::vector<double>& Z, const ComparisonDerivs& d,
                              const LabelChange& change) {
  last_measured_ = false;
  const std::vector<double> G = gradient(Z, d.g);
  if (dot(G, G) == 0) return 0;
  std::vector<double> D;
  const std::uint64_t n = kind_ == Items::kEmbeddings ? data_->dim * J_ : 0;
  if (kind_ == Items::kEmbeddings && n <= cfg_.cholesky_max) {
    last_solver_ = "cholesky";
    last_cg_ = 0;
    Eigen::MatrixXd H = hessian(d.H);
    D.assign(n, 0.0);
    if (comm_.rank() == 0) {
      Eigen::Map<Eigen::VectorXd> Dv(D.data(), static_cast<Eigen::Index>(n));
      const Eigen::Map<const Eigen::VectorXd> Gv(G.data(), static_cast<Eigen::Index>(n));
      Eigen::LLT<Eigen::MatrixXd> llt(H);
      if (llt.info() == Eigen::Success)
        Dv = llt.solve(-Gv);
      else
        Dv = H.ldlt().solve(-Gv);
    }
    // Every rank takes rank 0's solution, so the replicated head stays bitwise one.
    mpi::broadcast(comm_, std::span<double>(D));
  } else {
    last_solver_ = "cg";
    const double t0 = MPI_Wtime();
    const std::clock_t c0 = std::clock();
    D = solve_cg(d.H, G);
    log::info(comm_,
              "items {}: Newton-CG {} iterations (target relative residual {:.2g}), {:.3f} s "
              "({:.3f} s CPU on rank 0, {:.3f} s of it the preconditioner)",
              kind_ == data_->kind ? items_name(kind_) : "residual", last_cg_, last_eta_,
              MPI_Wtime() - t0, double(std::clock() - c0) / CLOCKS_PER_SEC, last_precondition_cpu_);
    if (kind_ == Items::kEmbeddings) mpi::broadcast(comm_, std::span<double>(D));
  }
  const double gd = dot(G, D);
  if (!(gd < 0)) return 0;
  std::vector<double> V;
  apply(D, V);
  const double td = dot(theta_, D), dd = dot(D, D);
  const double taken =
      item_ladder(comm_, Z, V, cfg_.mu_z, cfg_.mu_w, td, dd, gd, change, &last_measured_);
  if (taken == 0) return 0;
  for (std::size_t i = 0; i < theta_.size(); ++i) theta_[i] += taken * D[i];
  // Z + t V = A (theta + t D) up to round-off, and exactly the point the line search (and with
  // last_measured() the caller's measurement) saw; no pass over the embeddings.
  for (std::size_t i = 0; i < Z.size(); ++i) Z[i] += taken * V[i];
  return taken;
}

namespace {
// z = L^{-T} L^{-1} r per J x J block (the block-Jacobi factors of ItemModel::block_jacobi).
void apply_block_jacobi(const std::vector<double>& L, int J, const std::vector<double>& r,
                        std::vector<double>& z) {
  const std::size_t JJ = std::size_t(J) * J;
  z.resize(r.size());
  for (std::size_t row = 0; row < r.size() / J; ++row) {
    const Eigen::Map<const Eigen::MatrixXd> l(L.data() + row * JJ, J, J);
    Eigen::Map<Eigen::VectorXd> zr(z.data() + row * J, J);
    zr = Eigen::Map<const Eigen::VectorXd>(r.data() + row * J, J);
    l.triangularView<Eigen::Lower>().solveInPlace(zr);
    l.transpose().triangularView<Eigen::Upper>().solveInPlace(zr);
  }
}
}  // namespace

double ItemModel::joint_newton_step(ItemModel& h, ItemModel& r, std::vector<double>& Z,
                                    const ComparisonDerivs& d, const LabelChange& change) {
  h.last_measured_ = r.last_measured_ = false;
  const int J = h.J_;
  const std::size_t JJ = std::size_t(J) * J;
  const std::vector<double> Gh = h.gradient(Z, d.g), Gr = r.gradient(Z, d.g);
  const double gg = h.dot(Gh, Gh) + r.dot(Gr, Gr);
  if (gg == 0) return 0;
  const double t0 = MPI_Wtime();
  // Preconditioner: the head's exact block (Cholesky) when it is small enough, else its
  // block-Jacobi; the residuals' block-Jacobi.
  const std::uint64_t n = h.data_->dim * J;
  const bool chol = n <= h.cfg_.cholesky_max;
  Eigen::LLT<Eigen::MatrixXd> llt;
  std::vector<double> Lh;
  if (chol)
    llt.compute(h.hessian(d.H));
  else
    Lh = h.block_jacobi(d.H);
  const std::vector<double> Lr = r.block_jacobi(d.H);
  auto precondition = [&](const std::vector<double>& rh, const std::vector<double>& rr,
                          std::vector<double>& zh, std::vector<double>& zr) {
    if (chol && llt.info() == Eigen::Success) {
      zh.resize(rh.size());
      Eigen::Map<Eigen::VectorXd>(zh.data(), static_cast<Eigen::Index>(zh.size())) = llt.solve(
          Eigen::Map<const Eigen::VectorXd>(rh.data(), static_cast<Eigen::Index>(rh.size())));
    } else if (chol) {
      zh = rh;  // not expected (the block is positive definite)
    } else {
      apply_block_jacobi(Lh, J, rh, zh);
    }
    apply_block_jacobi(Lr, J, rr, zr);
  };
  // The joint Hessian product: a = A_W vh + A_D vr, w = (H_p + mu_z I) a_p, then A_W^T w +
  // mu_w vh and A_D^T w + mu_r vr (the residuals' fixed rows masked).
  auto hessian_times = [&](const std::vector<double>& vh, const std::vector<double>& vr,
                           std::vector<double>& oh, std::vector<double>& orr) {
    std::vector<double> a, ar;
    h.apply(vh, a);
    r.apply(vr, ar);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] += ar[i];
    std::vector<double> w(a.size());
    for (std::uint64_t c = 0; c < h.nc_; ++c) {
      const Eigen::Map<const Eigen::MatrixXd> Hc(d.H.data() + c * JJ, J, J);
      const Eigen::Map<const Eigen::VectorXd> ac(a.data() + c * J, J);
      Eigen::Map<Eigen::VectorXd>(w.data() + c * J, J).noalias() = Hc * ac + h.cfg_.mu_z * ac;
    }
    oh = h.adjoint(w);
    orr = r.adjoint(w);
    for (std::size_t i = 0; i < oh.size(); ++i) oh[i] += h.cfg_.mu_w * vh[i];
    for (std::size_t i = 0; i < orr.size(); ++i) orr[i] += r.cfg_.mu_w * vr[i];
    r.mask(orr);
  };
  std::vector<double> Dh(Gh.size(), 0.0), Dr(Gr.size(), 0.0), rh(Gh.size()), rr(Gr.size());
  for (std::size_t i = 0; i < rh.size(); ++i) rh[i] = -Gh[i];
  for (std::size_t i = 0; i < rr.size(); ++i) rr[i] = -Gr[i];
  std::vector<double> zh, zr, Hh, Hr;
  precondition(rh, rr, zh, zr);
  std::vector<double> ph = zh, pr = zr;
  double rz = h.dot(rh, zh) + r.dot(rr, zr);
  const ItemConfig& cfg = h.cfg_;
  const double eta =
      cfg.cg_tol > 0 ? cfg.cg_tol : std::min(cfg.cg_forcing, std::sqrt(std::sqrt(gg)));
  double res = gg;
  int iterations = 0;
  for (int it = 0; it < cfg.cg_max_iterations; ++it) {
    if (res <= eta * eta * gg) break;
    hessian_times(ph, pr, Hh, Hr);
    const double pHp = h.dot(ph, Hh) + r.dot(pr, Hr);
    if (!(pHp > 0)) break;
    const double alpha = rz / pHp;
    for (std::size_t i = 0; i < Dh.size(); ++i) {
      Dh[i] += alpha * ph[i];
      rh[i] -= alpha * Hh[i];
    }
    for (std::size_t i = 0; i < Dr.size(); ++i) {
      Dr[i] += alpha * pr[i];
      rr[i] -= alpha * Hr[i];
    }
    precondition(rh, rr, zh, zr);
    const double rz_new = h.dot(rh, zh) + r.dot(rr, zr);
    const double beta = rz_new / rz;
    rz = rz_new;
    for (std::size_t i = 0; i < ph.size(); ++i) ph[i] = zh[i] + beta * ph[i];
    for (std::size_t i = 0; i < pr.size(); ++i) pr[i] = zr[i] + beta * pr[i];
    res = h.dot(rh, rh) + r.dot(rr, rr);
    iterations = it + 1;
  }
  // The replicated head's direction: rank 0's, so that the head stays bitwise one.
  mpi::broadcast(h.comm_, std::span<double>(Dh));
  h.last_solver_ = chol ? "cg (cholesky-preconditioned)" : "cg";
  h.last_cg_ = r.last_cg_ = iterations;
  log::info(h.comm_,
            "items embeddings + residual: joint Newton-CG {} iterations (target relative "
            "residual {:.2g}, head block {}), {:.3f} s",
            iterations, eta, chol ? "by Cholesky" : "block-Jacobi", MPI_Wtime() - t0);
  const double gd = h.dot(Gh, Dh) + r.dot(Gr, Dr);
  if (!(gd < 0)) return 0;
  std::vector<double> V, Vr;
  h.apply(Dh, V);
  r.apply(Dr, Vr);
  for (std::size_t i = 0; i < V.size(); ++i) V[i] += Vr[i];
  // The theta regularizations' change at step t: sum over the blocks of mu t (theta.D + t/2 |D|^2).
  const double mh = h.cfg_.mu_w, mr = r.cfg_.mu_w;
  const double td = mh * h.dot(h.theta_, Dh) + mr * r.dot(r.theta_, Dr);
  const double dd = mh * h.dot(Dh, Dh) + mr * r.dot(Dr, Dr);
  bool measured = false;
  const double taken = item_ladder(h.comm_, Z, V, cfg.mu_z, 1.0, td, dd, gd, change, &measured);
  h.last_measured_ = r.last_measured_ = measured;
  if (taken == 0) return 0;
  for (std::size_t i = 0; i < h.theta_.size(); ++i) h.theta_[i] += taken * Dh[i];
  for (std::size_t i = 0; i < r.theta_.size(); ++i) r.theta_[i] += taken * Dr[i];
  for (std::size_t i = 0; i < Z.size(); ++i) Z[i] += taken * V[i];
  return taken;
}

double ItemModel::gradient_norm2_share(const std::vector<double>& Z,
                                       const std::vector<double>& g) const {
  const std::vector<double> G = gradient(Z, g);
  if (kind_ == Items::kEmbeddings && comm_.rank() != 0) return 0;
  double s = 0;
  for (double v : G) s += v * v;
  return s;
}

double ItemModel::regularization_share() const {
  if (kind_ == Items::kEmbeddings && comm_.rank() != 0) return 0;
  double s = 0;
  for (double v : theta_) s += v * v;
  return 0.5 * cfg_.mu_w * s;
}

void ItemModel::rotate(const Eigen::MatrixXd& Q) {
  Eigen::VectorXd tmp(J_);
  for (std::size_t r = 0; r < theta_.size() / J_; ++r) {
    Eigen::Map<Eigen::RowVectorXd> row(theta_.data() + r * J_, J_);
    tmp.noalias() = Q.transpose() * row.transpose();
    row = tmp.transpose();
  }
}

}  // namespace pref
