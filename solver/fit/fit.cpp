#include "solver/fit/fit.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include <Eigen/Eigenvalues>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "solver/base/aligned.hpp"
#include "solver/base/log.hpp"
#include "solver/base/rng.hpp"
#include "solver/layout/exchange.hpp"
#include "solver/newton/kernels.hpp"
#include "solver/newton/newton.hpp"

namespace pref {

namespace {

// Cost model constant: seconds per label of the reduce pattern's extra pass (the comparison
// half-step with reduce minus with ship, per label, at 1 rank, J = 8, on the development
// machine with AVX-512 kernels: docs/scaling.md).
constexpr double kReducePassSeconds = 32e-9;

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A fit whose factors or objective stop being finite (a divergent Newton step, an initial scale
// whose margins overflow) can only produce a damaged model: it stops with one collective line
// naming where, before anything is written. Collective.
void require_finite(const mpi::Comm& comm, const std::vector<double>& values, double objective,
                    const std::string& where) {
  mpi::agree(comm, [&] {
    const bool finite =
        std::isfinite(objective) &&
        std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
    if (!finite)
      throw InputError("the fit diverged: " + where +
                       " produced non-finite factors or objective; nothing was written (try a "
                       "larger --mu-u/--mu-z or a smaller --init-scale)");
  });
}

// One orientation of a rank's labels with partners as indices into a ghost table.
struct LocalRows {
  std::vector<std::uint64_t> ptr{0};
  std::vector<std::uint32_t> idx;
  std::vector<float> y;
  std::size_t rows() const { return ptr.size() - 1; }
  std::size_t bytes() const {
    return ptr.size() * sizeof(ptr[0]) + idx.size() * sizeof(idx[0]) + y.size() * sizeof(y[0]);
  }
  std::span<const std::uint32_t> idx_of(std::size_t r) const {
    return {idx.data() + ptr[r], ptr[r + 1] - ptr[r]};
  }
  std::span<const float> y_of(std::size_t r) const {
    return {y.data() + ptr[r], ptr[r + 1] - ptr[r]};
  }
};

IdSet partner_ids(const Csr& a, const Csr* b = nullptr) {
  if (b)
    return IdSet({std::span<const std::uint32_t>(a.col), std::span<const std::uint32_t>(b->col)});
  return IdSet({std::span<const std::uint32_t>(a.col)});
}

// Takes over a CSR, mapping global partner ids to ghost indices in place.
LocalRows localize(Csr&& csr, const GhostPlan& plan) {
  LocalRows out;
  out.ptr = std::move(csr.ptr);
  out.idx = std::move(csr.col);
  out.y = std::move(csr.val);
  for (auto& c : out.idx) c = plan.index_of(c);
  csr = Csr{};
  return out;
}

// Rows = ghosts, entries = (local row of `rows`, label): the transpose of a rank's local rows.
LocalRows transpose(const LocalRows& rows, std::size_t ghosts) {
  LocalRows t;
  t.ptr.assign(ghosts + 1, 0);
  for (auto g : rows.idx) ++t.ptr[g + 1];
  std::partial_sum(t.ptr.begin(), t.ptr.end(), t.ptr.begin());
  std::vector<std::uint64_t> fill(t.ptr.begin(), t.ptr.end() - 1);
  t.idx.resize(rows.idx.size());
  t.y.resize(rows.idx.size());
  for (std::size_t r = 0; r < rows.rows(); ++r)
    for (std::uint64_t k = rows.ptr[r]; k < rows.ptr[r + 1]; ++k) {
      const std::uint64_t at = fill[rows.idx[k]]++;
      t.idx[at] = static_cast<std::uint32_t>(r);
      t.y[at] = rows.y[k];
    }
  return t;
}

class Fitter {
 public:
  Fitter(const mpi::Comm& comm, LabelMatrix&& train, LabelMatrix* validation, Factors&& init,
         const FitConfig& cfg)
      : comm_(comm),
        cfg_(cfg),
        J_(cfg.J),
        f_(std::move(init)),
        parts_(train.parts),
        labels_(train.labels),
        has_validation_(validation && validation->labels > 0) {
    threads_ = std::max(1, cfg.threads);
    ws_.resize(threads_);
    // Users read the Z rows of their training and validation labels.
    zplan_ =
        GhostPlan(comm, partner_ids(train.by_user, validation ? &validation->by_user : nullptr),
                  parts_.comparisons);
    users_ = localize(std::move(train.by_user), zplan_);
    if (validation) users_val_ = localize(std::move(validation->by_user), zplan_);
    uplan_ = GhostPlan(comm, partner_ids(train.by_comparison), parts_.users);
    // Cost model: seconds per sweep of the slowest rank. Both patterns fetch Z rows for the
    // users. Ship also fetches U rows for the comparison owners; reduce instead sends, per ghost
    // comparison and Newton step, the partial gradient and Hessian, then the direction, one or
    // two ladder values and the step back, and makes one more pass over its labels (the ladder)
    // whose gathers from U run in comparison order, i.e. out of cache.
    const int hw = J_ * (J_ + 1) / 2;
    const double rz = static_cast<double>(zplan_.remote_rows());
    const double ru = static_cast<double>(uplan_.remote_rows());
    const double labels_here = static_cast<double>(users_.idx.size());
    bytes_ship_ = mpi::allreduce_max(comm, 8.0 * J_ * (rz + ru));
    bytes_reduce_ = mpi::allreduce_max(
        comm, 8.0 * (J_ * rz + cfg.newton_steps * rz * ((J_ + hw) + J_ + 2 + 1)));
    const double extra_pass = mpi::allreduce_max(comm, labels_here) * cfg.newton_steps;
    cost_ship_ = bytes_ship_ / cfg.net_bytes_per_second;
    cost_reduce_ = bytes_reduce_ / cfg.net_bytes_per_second + extra_pass * kReducePassSeconds;
    exchange_ = cfg.exchange;
    if (exchange_ == Exchange::kAuto)
      exchange_ =
          (comm.size() == 1 || cost_ship_ <= cost_reduce_) ? Exchange::kShip : Exchange::kReduce;
    if (cfg.items && cfg.items->kind != Items::kComparisons) {
      // The item half-step needs each comparison's labels at its owner.
      exchange_ = Exchange::kShip;
      ItemConfig ic = cfg.item;
      ic.J = J_;
      ic.mu_z = cfg.mu_z;
      items_.emplace(comm, cfg.items, parts_.comparisons, ic);
      if (ic.residual && cfg.items->kind == Items::kEmbeddings) {
        // --residual: d_r per response, a responses model on the same data (ridge mu_residual).
        ItemConfig rc = ic;
        rc.mu_w = ic.mu_residual;
        residual_.emplace(comm, cfg.items, parts_.comparisons, rc, Items::kResponses);
      }
    }
    if (exchange_ == Exchange::kShip) {
      comps_ = localize(std::move(train.by_comparison), uplan_);
    } else {
      train.by_comparison = Csr{};
      uplan_ = GhostPlan();
      ghost_comps_ = transpose(users_, zplan_.ghosts());
    }
    if (residual_) {
      // Residuals only for responses in a comparison with training labels (ItemModel::
      // fix_unlabelled): the others, held-out prompts' responses, are the head's alone.
      std::vector<char> labelled(comps_.rows());
      for (std::size_t c = 0; c < labelled.size(); ++c) labelled[c] = !comps_.idx_of(c).empty();
      residual_->fix_unlabelled(labelled);
    }
  }

  Exchange exchange() const { return exchange_; }

  // The population prior (FitConfig::prior), from a checkpoint or N(0, I / mu_u).
  void set_prior(std::optional<PopulationPrior> p) {
    if (cfg_.shared || cfg_.prior != UserPrior::kPopulation) return;
    prior_ = p ? std::move(p) : PopulationPrior::isotropic(J_, cfg_.mu_u, parts_.users.size());
  }
  const PopulationPrior* prior() const { return prior_ ? &*prior_ : nullptr; }

  // Extrapolation (FitConfig::extrapolate). After the user half-step: U_hat = U + beta (U -
  // U_prev), which the comparison half-step and the evaluation then use as U, and the next user
  // half-step starts from; after the sweep: Z_hat = Z + beta (Z - Z_prev), which the next user
  // half-step reads. u_prev_ holds U before extrapolation, z_prev_ Z before extrapolation
  // (nullopt, on every rank alike, until there is one).
  void extrapolate_users(double beta) {
    if (cfg_.shared) return;
    std::vector<double>& prev = *u_prev_;  // (keep_initial_users came first)
    for (std::size_t i = 0; i < f_.U.size(); ++i) {
      const double u = f_.U[i];
      f_.U[i] = u + beta * (u - prev[i]);
      prev[i] = u;
    }
    ughost_fresh_ = false;
  }
  // Before each user half-step: U_0 for the first extrapolation.
  void keep_initial_users() {
    if (!cfg_.shared && !u_prev_) u_prev_.emplace(f_.U.begin(), f_.U.end());
  }
  void extrapolate_comparisons(double beta) {
    if (!z_prev_) z_prev_ = f_.Z;  // no earlier Z: no push
    std::vector<double>& prev = *z_prev_;
    for (std::size_t i = 0; i < f_.Z.size(); ++i) {
      const double z = f_.Z[i];
      f_.Z[i] = z + beta * (z - prev[i]);
      prev[i] = z;
    }
    fetch(zplan_, f_.Z, J_, zghost_);  // the next user half-step reads Z_hat
  }
  // The extrapolation's state for a checkpoint, and back from one.
  const std::vector<double>* users_before_push() const { return u_prev_ ? &*u_prev_ : nullptr; }
  const std::vector<double>* comparisons_before_push() const {
    return z_prev_ ? &*z_prev_ : nullptr;
  }
  void restore_pushes(const std::optional<std::vector<double>>& u,
                      const std::optional<std::vector<double>>& z) {
    u_prev_ = cfg_.shared ? std::nullopt : u;
    z_prev_ = z;
  }
  // Bytes per training label that this rank keeps for both orientations of its labels.
  double label_bytes_per_label() const {
    const std::size_t n = users_.idx.size();
    const std::size_t b =
        users_.bytes() + (exchange_ == Exchange::kShip ? comps_.bytes() : ghost_comps_.bytes());
    return n ? double(b) / double(n) : 0.0;
  }
  double cost_ship() const { return cost_ship_; }
  double cost_reduce() const { return cost_reduce_; }
  double bytes_ship() const { return bytes_ship_; }
  double bytes_reduce() const { return bytes_reduce_; }
  Factors take_factors() { return std::move(f_); }
  const Factors& factors() const { return f_; }

  // For a resumed fit: the Z rows the users read, as the evaluation of the last completed sweep
  // left them (its bytes were counted in that sweep's record, so they are not counted again),
  // or as the push of Z_hat that preceded the checkpoint (counted: they are this sweep's).
  void prepare_resume(bool count_bytes) {
    if (count_bytes)
      fetch(zplan_, f_.Z, J_, zghost_);
    else
      zplan_.fetch(comm_, f_.Z, J_, zghost_);
    ughost_fresh_ = false;
  }

  // Runs fn(row, workspace) for rows [0, n) on the rank's threads. Rows are independent, so
  // results do not depend on the thread count.
  template <class F>
  void parallel_rows(std::size_t n, F&& fn) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads_)
    for (std::size_t r = 0; r < n; ++r) fn(r, ws_[omp_get_thread_num()]);
#else
    for (std::size_t r = 0; r < n; ++r) fn(r, ws_[0]);
#endif
  }

  template <class Vector>
  void fetch(const GhostPlan& plan, std::span<const double> local, int width, Vector& ghost) {
    plan.fetch(comm_, local, width, ghost);
    bytes_ += plan.remote_rows() * width * 8;
  }
  void reduce(const GhostPlan& plan, std::span<const double> ghost, int width,
              std::vector<double>& local) {
    plan.reduce(comm_, ghost, width, local);
    bytes_ += plan.remote_rows() * width * 8;
  }

  void user_half_step() {
    if (cfg_.shared) return;
    ughost_fresh_ = false;
    if (!prior_) {
      parallel_rows(users_.rows(), [&](std::size_t r, RowWorkspace& ws) {
        solve_row(f_.U.data() + r * J_, J_, zghost_.data(), users_.idx_of(r), users_.y_of(r),
                  cfg_.mu_u, cfg_.newton_steps, ws);
      });
      return;
    }
    // Under the prior, each row's posterior covariance (the inverse of its Hessian at the start
    // of its last Newton step, still in the workspace) is summed for the M-step. Rows go in
    // fixed blocks, each summed in row order and the blocks in block order, so that the sum
    // does not depend on the thread count; blocks of at least J^2 rows keep their partial sums
    // at 8 bytes per user or less.
    const PopulationPrior& p = *prior_;
    const RowPrior rp(p.precision.data(), p.mean.data());
    const std::size_t nu = users_.rows(), JJ = std::size_t(J_) * J_;
    const std::size_t per_block = std::max<std::size_t>(64, JJ);
    const std::size_t blocks = (nu + per_block - 1) / per_block;
    spread_blocks_.assign(blocks * JJ, 0.0);
    parallel_rows(blocks, [&](std::size_t b, RowWorkspace& ws) {
      double* acc = spread_blocks_.data() + b * JJ;
      for (std::size_t r = b * per_block; r < std::min(nu, (b + 1) * per_block); ++r) {
        solve_row(f_.U.data() + r * J_, J_, zghost_.data(), users_.idx_of(r), users_.y_of(r), rp,
                  cfg_.newton_steps, ws);
        add_spd_inverse(J_, ws.h.data(), acc);
      }
    });
    std::vector<double> spread(JJ, 0.0);
    for (std::size_t b = 0; b < blocks; ++b)
      for (std::size_t k = 0; k < JJ; ++k) spread[k] += spread_blocks_[b * JJ + k];
    prior_ = update_prior(comm_, J_, f_.U, spread, parts_.users.size());
    if (cfg_.rotate_to_prior) rotate_to_prior_basis();
  }

  // The model is invariant under rotations Q of the factor space (U Q, Z Q, prior mean Q^T m,
  // covariance Q^T Sigma Q; Z's ridge is isotropic), and under the learned prior the sweeps can
  // drift along them: a sweep may end at a rotated copy of where it started, so that the
  // predictions and the objective settle while the factors keep turning and no row is ever
  // stationary with respect to the others. Rotating the whole state into the prior's
  // eigenbasis (largest variance first, each eigenvector's largest entry positive) after every
  // M-step removes that freedom; it changes no prediction. Every rank computes the same Q from
  // the same replicated prior, and ghost rows turn with the same arithmetic as their owners'.
  void rotate_to_prior_basis() {
    PopulationPrior& p = *prior_;
    const int J = J_;
    const Eigen::Map<const Eigen::MatrixXd> S(p.covariance.data(), J, J);
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(S);
    Eigen::MatrixXd Q(J, J);
    for (int k = 0; k < J; ++k) {
      Eigen::VectorXd v = es.eigenvectors().col(J - 1 - k);
      Eigen::Index at = 0;
      v.cwiseAbs().maxCoeff(&at);
      Q.col(k) = v[at] < 0 ? Eigen::VectorXd(-v) : v;
    }
    auto rotate_rows = [&](double* rows, std::size_t n) {
      Eigen::VectorXd tmp(J);
      for (std::size_t r = 0; r < n; ++r) {
        Eigen::Map<Eigen::RowVectorXd> row(rows + r * J, J);
        tmp.noalias() = Q.transpose() * row.transpose();
        row = tmp.transpose();
      }
    };
    rotate_rows(f_.U.data(), f_.U.size() / J);
    rotate_rows(f_.Z.data(), f_.Z.size() / J);
    if (items_) items_->rotate(Q);
    if (residual_) residual_->rotate(Q);
    rotate_rows(zghost_.data(), zghost_.size() / J);
    if (u_prev_) rotate_rows(u_prev_->data(), u_prev_->size() / J);
    if (z_prev_) rotate_rows(z_prev_->data(), z_prev_->size() / J);
    Eigen::VectorXd m = Q.transpose() * Eigen::Map<const Eigen::VectorXd>(p.mean.data(), J);
    p.mean.assign(m.data(), m.data() + J);
    Eigen::MatrixXd c = Q.transpose() * S * Q;
    c = (0.5 * (c + c.transpose())).eval();
    const Eigen::Map<const Eigen::MatrixXd> spread(p.spread.data(), J, J);
    Eigen::MatrixXd sp = Q.transpose() * spread * Q;
    sp = (0.5 * (sp + sp.transpose())).eval();
    p.spread.assign(sp.data(), sp.data() + J * J);
    p.set_covariance(std::vector<double>(c.data(), c.data() + J * J));
    ughost_fresh_ = false;
  }

  // With an item model: Newton steps of theta at the current U (the comparison half-step).
  void item_half_step(int steps) {
    refresh_ughost();
    comparisons_measured_ = false;
    const LabelChange change = [&](const std::vector<double>& V, std::span<const double> steps_,
                                   std::span<double> ch,
                                   bool measure) { label_change(V, steps_, ch, measure); };
    for (int s = 0; s < steps; ++s) {
      // --residual: one Newton step of the head and the residuals together.
      const double t = residual_ ? ItemModel::joint_newton_step(*items_, *residual_, f_.Z,
                                                                comparison_derivs(), change)
                                 : items_->newton_step(f_.Z, comparison_derivs(), change);
      // The line search's pass measured the labels at the step taken: evaluate() uses it.
      comparisons_measured_ = items_->last_measured();
      if (t == 0) break;
    }
  }
  // The labels' loss gradient and Hessian in z_p of every comparison of this rank (ship).
  ComparisonDerivs comparison_derivs() {
    const std::size_t nc = comps_.rows(), JJ = std::size_t(J_) * J_;
    ComparisonDerivs d;
    d.g.assign(nc * J_, 0.0);
    d.H.assign(nc * JJ, 0.0);
    parallel_rows(nc, [&](std::size_t c, RowWorkspace& ws) {
      ws.g.setZero(J_);
      ws.h.setZero(J_, J_);
      accumulate_row(f_.Z.data() + c * J_, J_, ughost_.data(), comps_.idx_of(c), comps_.y_of(c),
                     ws.g, &ws.h, ws, nullptr);
      // The label pass fills the lower triangle only.
      ws.h.triangularView<Eigen::StrictlyUpper>() = ws.h.transpose();
      std::copy(ws.g.data(), ws.g.data() + J_, d.g.data() + c * J_);
      std::copy(ws.h.data(), ws.h.data() + JJ, d.H.data() + c * JJ);
    });
    return d;
  }
  // This rank's sum over its labels of BCE(z_p + t v_p) - BCE(z_p) for each step t; with
  // `measure`, also each comparison's loss and gradient in z_p at z_p + steps[0] v_p (end_loss_,
  // end_g_: evaluate()'s measurement when that step is taken).
  void label_change(const std::vector<double>& V, std::span<const double> steps,
                    std::span<double> change, bool measure) {
    const std::size_t nc = comps_.rows(), nl = steps.size();
    std::vector<double> per(nc * nl, 0.0);
    if (measure) {
      end_loss_.assign(nc, 0.0);
      end_g_.assign(nc * J_, 0.0);
    }
    parallel_rows(nc, [&](std::size_t c, RowWorkspace&) {
      const double* z = f_.Z.data() + c * J_;
      const double* v = V.data() + c * J_;
      double* g = measure ? end_g_.data() + c * J_ : nullptr;
      auto idx = comps_.idx_of(c);
      auto y = comps_.y_of(c);
      double loss = 0;
      for (std::size_t k = 0; k < idx.size(); ++k) {
        const double* u = ughost_.data() + std::size_t(idx[k]) * J_;
        double m = 0, q = 0;
        for (int a = 0; a < J_; ++a) {
          m += u[a] * z[a];
          q += u[a] * v[a];
        }
        for (std::size_t l = 0; l < nl; ++l) per[c * nl + l] += bce_change(m, steps[l] * q, y[k]);
        if (measure) {
          const double mt = m + steps[0] * q;
          loss += bce(mt, y[k]);
          const double r = sigmoid(mt) - y[k];
          for (int a = 0; a < J_; ++a) g[a] += r * u[a];
        }
      }
      if (measure) end_loss_[c] = loss;
    });
    for (std::size_t c = 0; c < nc; ++c)
      for (std::size_t l = 0; l < nl; ++l) change[l] += per[c * nl + l];
  }
  bool has_items() const {
    return items_.has_value();
  }
  // Theta from 0 fitted to the initial U (before sweep 0 of a fresh fit).
  void init_items(int steps) {
    if (!items_) return;
    items_->comparisons(f_.Z);
    if (residual_) residual_->add_comparisons(f_.Z);
    item_half_step(steps);
  }
  Partition item_rows() const {
    return items_ ? items_->param_rows() : Partition();
  }
  std::vector<double> item_params() const {
    return items_ ? items_->owned_params() : std::vector<double>();
  }
  // All of theta on every rank (a checkpoint's), and its restore (a resume). Collective.
  std::vector<double> all_item_params() const {
    std::vector<double> all = items_ ? items_->all_params() : std::vector<double>();
    if (residual_) {
      const std::vector<double> r = residual_->all_params();
      all.insert(all.end(), r.begin(), r.end());
    }
    return all;
  }
  Partition residual_rows() const {
    return residual_ ? residual_->param_rows() : Partition();
  }
  std::vector<double> residual_params() const {
    return residual_ ? residual_->owned_params() : std::vector<double>();
  }
  void restore_items(const std::optional<std::vector<double>>& all) {
    if (!items_) return;
    mpi::agree(comm_, [&] {
      // With --residual: the head's values, then the residuals'.
      const std::size_t nh = items_->all_params().size();
      const std::size_t nr = residual_ ? residual_->all_params().size() : 0;
      bool ok = all && all->size() == nh + nr;
      if (ok) {
        const auto mid = all->begin() + static_cast<std::ptrdiff_t>(nh);
        ok = items_->set_all_params(std::vector<double>(all->begin(), mid)) &&
             (!residual_ || residual_->set_all_params(std::vector<double>(mid, all->end())));
      }
      if (!ok)
        throw InputError(fmt::format(
            "the checkpoint holds {} of the item parameters (--items {}{}: {} values expected)",
            all ? fmt::format("{} values", all->size()) : std::string("none"),
            items_name(items_->kind()), residual_ ? " --residual" : "", nh + nr));
    });
  }

  void comparison_half_step() {
    if (items_) {
      item_half_step(cfg_.newton_steps);
      return;
    }
    if (exchange_ == Exchange::kShip) {
      refresh_ughost();
      // Each row is also measured at its new z while its labels and partner rows are in cache:
      // its loss and gradient are the evaluation's (the rows partition the training labels).
      end_loss_.resize(comps_.rows());
      end_gz_.resize(comps_.rows());
      parallel_rows(comps_.rows(), [&](std::size_t r, RowWorkspace& ws) {
        double* z = f_.Z.data() + r * J_;
        solve_row(z, J_, ughost_.data(), comps_.idx_of(r), comps_.y_of(r), cfg_.mu_z,
                  cfg_.newton_steps, ws);
        ws.g.setZero(J_);
        LabelPass pass;
        pass.g = ws.g.data();
        pass.loss = true;
        end_loss_[r] =
            accumulate(z, J_, ughost_.data(), comps_.idx_of(r), comps_.y_of(r), pass, ws);
        end_gz_[r] = (ws.g + cfg_.mu_z * Eigen::Map<const Eigen::VectorXd>(z, J_)).squaredNorm();
      });
      comparisons_measured_ = true;
      return;
    }
    for (int step = 0; step < cfg_.newton_steps; ++step) reduce_newton_step();
  }

  // One Newton step of every comparison by reduction of partial sums to the owners.
  void reduce_newton_step() {
    const int hw = J_ * (J_ + 1) / 2;
    const int width = J_ + hw;
    const std::size_t T = zplan_.ghosts();
    const std::size_t nc = f_.Z.size() / J_;
    std::vector<double> part(T * width), sums(nc * width);
    parallel_rows(T, [&](std::size_t g, RowWorkspace& ws) {
      ws.g.setZero(J_);
      ws.h.setZero(J_, J_);
      LabelPass pass;
      pass.g = ws.g.data();
      pass.H = ws.h.data();
      accumulate(zghost_.data() + g * J_, J_, f_.U.data(), ghost_comps_.idx_of(g),
                 ghost_comps_.y_of(g), pass, ws);
      double* out = part.data() + g * width;
      for (int a = 0; a < J_; ++a) out[a] = ws.g[a];
      int k = J_;
      for (int a = 0; a < J_; ++a)
        for (int b = 0; b <= a; ++b) out[k++] = ws.h(a, b);
    });
    reduce(zplan_, part, width, sums);
    // Owners: direction and g.d.
    std::vector<double> d(nc * J_, 0.0), gd(nc, 0.0);
    parallel_rows(nc, [&](std::size_t c, RowWorkspace& ws) {
      const double* s = sums.data() + c * width;
      Eigen::Map<Eigen::VectorXd> z(f_.Z.data() + c * J_, J_);
      ws.g = Eigen::Map<const Eigen::VectorXd>(s, J_) + cfg_.mu_z * z;
      ws.h.resize(J_, J_);
      int k = J_;
      for (int a = 0; a < J_; ++a)
        for (int b = 0; b <= a; ++b) ws.h(a, b) = ws.h(b, a) = s[k++];
      ws.h.diagonal().array() += cfg_.mu_z;
      if (ws.g.squaredNorm() == 0 || !direction(ws.h, ws.g, ws.d)) return;
      const double gdc = ws.g.dot(ws.d);
      if (!(gdc < 0)) return;
      gd[c] = gdc;
      Eigen::Map<Eigen::VectorXd>(d.data() + c * J_, J_) = ws.d;
    });
    std::vector<double> dghost;
    fetch(zplan_, d, J_, dghost);
    // The line search walks the ladder a few steps per round; most rows accept the full step in
    // the first round, so rows evaluate few step lengths, and rounds stop when no row is left.
    // t: the chosen step (0: none), or -1 while the row is still searching.
    std::vector<double> t(nc, -1.0), tghost(T, -1.0);
    for (std::size_t c = 0; c < nc; ++c)
      if (gd[c] == 0) t[c] = 0;
    std::vector<double> fl, fsum;
    std::vector<std::uint8_t> pending(T, 1);
    for (std::size_t g = 0; g < T; ++g) {
      bool zero = true;
      for (int a = 0; a < J_; ++a) zero = zero && dghost[g * J_ + a] == 0;
      if (zero) pending[g] = 0;
    }
    constexpr int kPerRound = 2;
    for (int l0 = 0; l0 < kLadder; l0 += kPerRound) {
      const int nl = std::min(kPerRound, kLadder - l0);
      fl.assign(T * nl, 0.0);
      fsum.assign(nc * nl, 0.0);
      // Holders: partial change of the objective at the round's step lengths (term by term, as
      // in solve_row: see bce_change).
      parallel_rows(T, [&](std::size_t g, RowWorkspace&) {
        if (!pending[g]) return;
        const double* z = zghost_.data() + g * J_;
        const double* dd = dghost.data() + g * J_;
        double* out = fl.data() + g * nl;
        auto idx = ghost_comps_.idx_of(g);
        auto y = ghost_comps_.y_of(g);
        for (std::size_t k = 0; k < idx.size(); ++k) {
          const double* u = f_.U.data() + std::size_t(idx[k]) * J_;
          double m = 0, q = 0;
          for (int a = 0; a < J_; ++a) {
            m += u[a] * z[a];
            q += u[a] * dd[a];
          }
          for (int l = 0; l < nl; ++l) out[l] += bce_change(m, ladder_step(l0 + l) * q, y[k]);
        }
      });
      reduce(zplan_, fl, nl, fsum);
      // Owners: the first step of the round meeting the Armijo condition.
      parallel_rows(nc, [&](std::size_t c, RowWorkspace&) {
        if (t[c] >= 0) return;
        Eigen::Map<Eigen::VectorXd> z(f_.Z.data() + c * J_, J_);
        Eigen::Map<const Eigen::VectorXd> dc(d.data() + c * J_, J_);
        for (int l = 0; l < nl; ++l) {
          const double step = ladder_step(l0 + l);
          const double df =
              fsum[c * nl + l] + cfg_.mu_z * step * (z.dot(dc) + 0.5 * step * dc.squaredNorm());
          if (df <= kArmijo * step * gd[c]) {
            t[c] = step;
            z += step * dc;
            return;
          }
        }
        if (l0 + nl >= kLadder) t[c] = 0;  // no step length decreased the objective
      });
      // Holders learn each row's outcome and apply accepted steps to their ghost copies
      // (bitwise the owner's arithmetic).
      fetch(zplan_, t, 1, tghost);
      std::uint64_t left = 0;
      for (std::size_t g = 0; g < T; ++g) {
        if (!pending[g]) continue;
        if (tghost[g] < 0) {
          ++left;
          continue;
        }
        pending[g] = 0;
        for (int a = 0; a < J_; ++a) zghost_[g * J_ + a] += tghost[g] * dghost[g * J_ + a];
      }
      std::uint64_t owners_left = 0;
      for (double tc : t) owners_left += tc < 0;
      if (mpi::allreduce_sum(comm_, left + owners_left) == 0) break;
    }
  }

  void refresh_ughost() {
    if (ughost_fresh_) return;
    fetch(uplan_, f_.U, J_, ughost_);
    ughost_fresh_ = true;
  }

  // Fetches Z rows and measures the state: objective, gradient norm, validation metrics.
  SweepRecord evaluate() {
    SweepRecord rec;
    fetch(zplan_, f_.Z, J_, zghost_);
    const std::size_t nu = users_.rows();
    // The comparison half-step (ship) measured its rows at the current state: the loss and the
    // comparisons' gradients are taken from it, and users need only their gradients.
    const bool measured = comparisons_measured_ && exchange_ == Exchange::kShip;
    comparisons_measured_ = false;
    std::vector<double>& loss = eval_loss_;
    std::vector<double>& gu = eval_gu_;
    std::vector<double>& quad = eval_quad_;  // users' regularization terms
    loss.assign(nu, 0.0);
    gu.assign(nu, 0.0);
    quad.assign(nu, 0.0);
    if (!(measured && cfg_.shared))
      parallel_rows(nu, [&](std::size_t r, RowWorkspace& ws) {
        ws.g.setZero(J_);
        const double* u = f_.U.data() + r * J_;
        const Eigen::Map<const Eigen::VectorXd> uv(u, J_);
        LabelPass pass;
        pass.g = ws.g.data();
        pass.loss = !measured;
        loss[r] = accumulate(u, J_, zghost_.data(), users_.idx_of(r), users_.y_of(r), pass, ws);
        if (cfg_.shared) return;
        if (prior_) {
          const Eigen::Map<const Eigen::MatrixXd> P(prior_->precision.data(), J_, J_);
          ws.d = uv - Eigen::Map<const Eigen::VectorXd>(prior_->mean.data(), J_);
          ws.pr.noalias() = P * ws.d;
          ws.g += ws.pr;
          quad[r] = 0.5 * ws.d.dot(ws.pr);
        } else {
          ws.g += cfg_.mu_u * uv;
          quad[r] = 0.5 * cfg_.mu_u * uv.squaredNorm();
        }
        gu[r] = ws.g.squaredNorm();
      });
    // Comparison gradients: at the owners.
    const std::size_t nc = f_.Z.size() / J_;
    std::vector<double>& gz = eval_gz_;
    gz.assign(nc, 0.0);
    if (measured && items_) {
      // The line search's pass measured the labels at this Z (label_change).
      item_grad_share_ = items_->gradient_norm2_share(f_.Z, end_g_);
      if (residual_) item_grad_share_ += residual_->gradient_norm2_share(f_.Z, end_g_);
    } else if (measured) {
      gz = end_gz_;
    } else if (items_) {
      // The gradient in theta: A^T (g + mu_z z) + mu_w theta.
      refresh_ughost();
      std::vector<double> g(nc * J_, 0.0);
      parallel_rows(nc, [&](std::size_t c, RowWorkspace& ws) {
        ws.g.setZero(J_);
        accumulate_row(f_.Z.data() + c * J_, J_, ughost_.data(), comps_.idx_of(c), comps_.y_of(c),
                       ws.g, nullptr, ws, nullptr);
        std::copy(ws.g.data(), ws.g.data() + J_, g.data() + c * J_);
      });
      item_grad_share_ = items_->gradient_norm2_share(f_.Z, g);
      if (residual_) item_grad_share_ += residual_->gradient_norm2_share(f_.Z, g);
    } else if (exchange_ == Exchange::kShip) {
      refresh_ughost();
      parallel_rows(nc, [&](std::size_t c, RowWorkspace& ws) {
        ws.g.setZero(J_);
        accumulate_row(f_.Z.data() + c * J_, J_, ughost_.data(), comps_.idx_of(c), comps_.y_of(c),
                       ws.g, nullptr, ws, nullptr);
        gz[c] = (ws.g + cfg_.mu_z * Eigen::Map<const Eigen::VectorXd>(f_.Z.data() + c * J_, J_))
                    .squaredNorm();
      });
    } else {
      const std::size_t T = zplan_.ghosts();
      std::vector<double> part(T * J_), sums(nc * J_);
      parallel_rows(T, [&](std::size_t g, RowWorkspace& ws) {
        ws.g.setZero(J_);
        accumulate_row(zghost_.data() + g * J_, J_, f_.U.data(), ghost_comps_.idx_of(g),
                       ghost_comps_.y_of(g), ws.g, nullptr, ws, nullptr);
        Eigen::Map<Eigen::VectorXd>(part.data() + g * J_, J_) = ws.g;
      });
      reduce(zplan_, part, J_, sums);
      for (std::size_t c = 0; c < nc; ++c)
        gz[c] = (Eigen::Map<const Eigen::VectorXd>(sums.data() + c * J_, J_) +
                 cfg_.mu_z * Eigen::Map<const Eigen::VectorXd>(f_.Z.data() + c * J_, J_))
                    .squaredNorm();
    }
    // loss, users' regularization, |Z|^2, |grad|^2, the item parameters' regularization
    double sums[5] = {0, 0, 0, item_grad_share_,
                      (items_ ? items_->regularization_share() : 0.0) +
                          (residual_ ? residual_->regularization_share() : 0.0)};
    item_grad_share_ = 0;
    for (std::size_t r = 0; r < nu; ++r) {
      sums[0] += loss[r];
      sums[1] += quad[r];
      sums[3] += gu[r];
    }
    if (measured)
      for (double l : end_loss_) sums[0] += l;
    for (double v : f_.Z) sums[2] += v * v;
    for (double v : gz) sums[3] += v;
    mpi::allreduce(comm_, std::span<double>(sums, 5), MPI_SUM);
    rec.train_logloss = sums[0] / static_cast<double>(std::max<std::uint64_t>(1, labels_));
    // With the prior: the expected complete-data negative log-likelihood of EM (docs/design.md,
    // "The population prior"), which every half-step and the prior's update decrease.
    rec.objective = sums[0] + (cfg_.shared ? 0.0 : sums[1]) + 0.5 * cfg_.mu_z * sums[2] + sums[4];
    if (prior_) {
      rec.objective += prior_constant(*prior_);
      rec.prior = summarize(*prior_);
    }
    rec.grad_norm = std::sqrt(sums[3]);
    if (has_validation_) {
      // Margins and log-loss by the label kernels; the accumulator keeps its buffers.
      std::vector<Scored> items;
      std::vector<double> margins;
      RowWorkspace& ws = ws_[0];
      for (std::size_t r = 0; r < users_val_.rows(); ++r) {
        auto idx = users_val_.idx_of(r);
        auto y = users_val_.y_of(r);
        margins.resize(idx.size());
        LabelPass pass;
        pass.loss = true;
        pass.margins = margins.data();
        const double l = accumulate(f_.U.data() + r * J_, J_, zghost_.data(), idx, y, pass, ws);
        items.resize(idx.size());
        for (std::size_t k = 0; k < idx.size(); ++k) items[k] = {margins[k], y[k]};
        val_acc_.add_user(items, l);
      }
      rec.validation = val_acc_.finish(comm_);
    }
    return rec;
  }

  std::uint64_t take_bytes() {
    const std::uint64_t b = mpi::allreduce_sum(comm_, bytes_);
    bytes_ = 0;
    return b;
  }

 private:
  const mpi::Comm& comm_;
  FitConfig cfg_;
  int J_;
  Factors f_;
  Partitions parts_;
  std::uint64_t labels_;
  bool has_validation_;
  int threads_ = 1;
  std::vector<RowWorkspace> ws_;
  GhostPlan zplan_, uplan_;
  LocalRows users_, users_val_, comps_, ghost_comps_;
  AlignedVector<double> zghost_, ughost_;  // gathered from: cache-line aligned rows
  // Buffers of evaluate(), kept so that every sweep does not fault in fresh pages.
  std::vector<double> eval_loss_, eval_gu_, eval_gz_, eval_quad_;
  std::optional<PopulationPrior> prior_;  // FitConfig::prior population
  std::vector<double> spread_blocks_;     // per block of users: sum of posterior covariances
  // Loss and squared gradient norm of each comparison row at its new z, from the ship pattern's
  // comparison half-step; valid for the next evaluate() only.
  std::vector<double> end_loss_, end_gz_;
  bool comparisons_measured_ = false;
  std::vector<double> end_g_;  // item models: the labels' gradients in z_p (label_change)
  MetricsAccumulator val_acc_;
  std::optional<std::vector<double>> u_prev_, z_prev_;  // extrapolation: see extrapolate_users
  std::optional<ItemModel> items_;                      // FitConfig::items responses or embeddings
  std::optional<ItemModel> residual_;  // --residual: d_r per response (kind responses)
  double item_grad_share_ = 0;         // evaluate(): this rank's share of |gradient in theta|^2
  bool ughost_fresh_ = false;
  std::uint64_t bytes_ = 0;
  double cost_ship_ = 0, cost_reduce_ = 0, bytes_ship_ = 0, bytes_reduce_ = 0;
  Exchange exchange_ = Exchange::kShip;
};

}  // namespace

void ExtrapolationState::update(bool decreased, bool calm) {
  last_decreased = decreased;
  calm_run = calm ? calm_run + 1 : 0;
  if (decreased) {
    ceiling = std::min(1.0, 1.01 * ceiling);
    previous = beta;
    beta = std::min(ceiling, 1.05 * beta);
  } else {
    ceiling = previous;
    previous = beta;
    beta /= 1.5;
  }
}

FitResult fit(const mpi::Comm& comm, LabelMatrix train, std::optional<LabelMatrix> validation,
              Factors init, const FitConfig& cfg, const FitStart& start, const FitHooks& hooks) {
  Fitter fitter(comm, std::move(train), validation ? &*validation : nullptr, std::move(init), cfg);
  validation.reset();
  fitter.set_prior(start.prior);
  FitResult res;
  res.exchange = fitter.exchange();
  log::info(comm,
            "training labels in memory: {:.1f} bytes per label over both orientations "
            "(largest rank)",
            mpi::allreduce_max(comm, fitter.label_bytes_per_label()));
  log::info(comm,
            "exchange pattern: {} (cost model per sweep, slowest rank: ship {:.3g} MB "
            "{:.3g} s, reduce {:.3g} MB {:.3g} s{}); label kernels: {}",
            exchange_name(res.exchange), fitter.bytes_ship() / 1e6, fitter.cost_ship(),
            fitter.bytes_reduce() / 1e6, fitter.cost_reduce(),
            cfg.exchange == Exchange::kAuto ? "" : ", forced",
            cfg.J <= kernels::kMaxSmallJ ? kernels::best().isa : "BLAS-3 (dsyrk)");
  auto stop_requested = [&] { return hooks.stop_requested && hooks.stop_requested(); };
  ExtrapolationState ex = start.extrapolation;
  double push_seconds =
      0;  // the last push of Z (extrapolation), counted in the next user half-step
  auto offer = [&](int sweep, bool half, bool stopping, const SweepRecord* pending) {
    if (!hooks.on_state) return;
    FitState st{sweep,   half,    stopping, fitter.factors(), pending, res.exchange,
                nullptr, nullptr, {},       fitter.prior()};
    std::vector<double> theta;
    if (fitter.has_items()) {
      theta = fitter.all_item_params();
      st.item_params = &theta;
    }
    if (cfg.extrapolate) {
      st.u_prev = fitter.users_before_push();
      st.z_prev = fitter.comparisons_before_push();
      st.extrapolation = ex;
    }
    hooks.on_state(st);
  };
  auto finish = [&] {
    if (fitter.prior()) res.prior = *fitter.prior();
    res.item_rows = fitter.item_rows();
    res.item_params = fitter.item_params();
    res.residual_rows = fitter.residual_rows();
    res.residual_params = fitter.residual_params();
    res.factors = fitter.take_factors();
    const auto& h = res.history;
    if (!res.stopped && h.size() > 1 && h.front().validation && h.back().validation &&
        h.back().validation->logloss > h.front().validation->logloss)
      log::warn(comm,
                "the fit ends at a validation log-loss of {:.4f}, worse than its "
                "initialization's {:.4f} (over-fitting: docs/design.md, \"The population "
                "prior\")",
                h.back().validation->logloss, h.front().validation->logloss);
    return std::move(res);
  };
  auto t = Clock::now();
  double prev = 0;
  int first = 1;
  bool half_done = false;
  SweepRecord pending;
  if (fitter.has_items() && cfg.extrapolate)
    throw Error("fit: the item models do not support extrapolation");
  if (start.history.empty()) {
    fitter.init_items(cfg.item_init_steps);
    SweepRecord rec = fitter.evaluate();
    rec.seconds_eval = since(t);
    rec.bytes_exchanged = fitter.take_bytes();
    require_finite(comm, fitter.factors().U, rec.objective, "the initialization (sweep 0)");
    require_finite(comm, fitter.factors().Z, 0.0, "the initialization (sweep 0)");
    res.history.push_back(rec);
    if (hooks.on_sweep) hooks.on_sweep(rec);
    prev = rec.objective;
    const bool stop = stop_requested() && cfg.max_sweeps > 0;
    offer(0, false, stop, nullptr);
    if (stop) {
      res.stopped = true;
      return finish();
    }
    // Z_0 becomes the first Z_prev (a push by 0), as after a resume from this state.
    if (cfg.extrapolate && cfg.max_sweeps > 0) fitter.extrapolate_comparisons(0.0);
  } else {
    // theta of the checkpoint; Z is the checkpoint's too (the fit's Z, A theta up to the
    // rotations, bitwise as the uninterrupted fit has it).
    fitter.restore_items(start.item_params);
    res.history = start.history;
    prev = res.history.back().objective;
    first = start.sweep + 1;
    half_done = start.user_half_done;
    pending = start.pending;
    const bool converged =
        cfg.extrapolate ? ex.calm_run >= 2 : res.history.back().rel_change < cfg.tol;
    if (!half_done && start.sweep >= 1 && converged) {
      res.converged = true;  // the checkpoint was written after the converging sweep
      return finish();
    }
    if (cfg.extrapolate) fitter.restore_pushes(start.u_prev, start.z_prev);
    // With extrapolation, a checkpoint between sweeps was written before the push of Z that
    // starts the next one (made here, which fetches the Z rows), one within a sweep after it.
    if (cfg.extrapolate && !half_done && first <= std::max(cfg.max_sweeps, 0))
      fitter.extrapolate_comparisons(ex.last_decreased ? ex.beta : 0.0);
    else
      fitter.prepare_resume(/*count_bytes=*/cfg.extrapolate && half_done);
  }
  // A fit resumed between half-steps completes that sweep whatever the sweep limit.
  const int last = std::max(cfg.max_sweeps, half_done ? first : 0);
  for (int s = first; s <= last; ++s) {
    SweepRecord r;
    if (half_done) {
      r = pending;
      half_done = false;
    } else {
      r.sweep = s;
      t = Clock::now();
      if (cfg.extrapolate) fitter.keep_initial_users();
      fitter.user_half_step();
      if (cfg.extrapolate) fitter.extrapolate_users(ex.beta);
      require_finite(comm, fitter.factors().U, 0.0, fmt::format("sweep {}, user half-step", s));
      r.seconds_user = since(t) + push_seconds;
      if (stop_requested()) {
        offer(s - 1, true, true, &r);
        res.stopped = true;
        return finish();
      }
    }
    t = Clock::now();
    fitter.comparison_half_step();
    r.seconds_comparison = since(t);
    require_finite(comm, fitter.factors().Z, 0.0, fmt::format("sweep {}, comparison half-step", s));
    t = Clock::now();
    SweepRecord m = fitter.evaluate();
    r.seconds_eval = since(t);
    r.objective = m.objective;
    r.train_logloss = m.train_logloss;
    r.grad_norm = m.grad_norm;
    r.validation = m.validation;
    r.prior = m.prior;
    require_finite(comm, {}, r.objective, fmt::format("sweep {} (its objective)", s));
    r.rel_change = std::abs(prev - r.objective) / std::max(std::abs(r.objective), 1e-300);
    bool converged = r.rel_change < cfg.tol;
    if (cfg.extrapolate) {
      // Extrapolated sweeps can raise the objective, and one of them can change it little by
      // chance: converged takes two decreasing sweeps in a row below the tolerance.
      // Under the population prior the objective is not a Lyapunov function of the sweeps (the
      // E-step moves it either way): there a calm sweep is any below the tolerance.
      const bool decreased = r.objective <= prev;
      ex.update(decreased, converged && (decreased || fitter.prior() != nullptr));
      converged = ex.calm_run >= 2;
    }
    r.bytes_exchanged = fitter.take_bytes();
    prev = r.objective;
    res.history.push_back(r);
    if (hooks.on_sweep) hooks.on_sweep(r);
    const bool stop = stop_requested() && !converged && s < last;
    offer(s, false, stop, nullptr);
    if (stop) {
      res.stopped = true;
      return finish();
    }
    if (converged) {
      res.converged = true;
      break;
    }
    if (cfg.extrapolate && s < last) {
      t = Clock::now();
      fitter.extrapolate_comparisons(ex.last_decreased ? ex.beta : 0.0);
      push_seconds = since(t);  // the next sweep's (as its bytes)
    }
  }
  return finish();
}

FitResult fit(const mpi::Comm& comm, LabelMatrix train, std::optional<LabelMatrix> validation,
              Factors init, const FitConfig& cfg,
              const std::function<void(const SweepRecord&)>& on_sweep) {
  FitHooks hooks;
  hooks.on_sweep = on_sweep;
  return fit(comm, std::move(train), std::move(validation), std::move(init), cfg, FitStart{},
             hooks);
}

}  // namespace pref
