#include "solver/fit/half_steps.hpp"

#include <fmt/core.h>

#include <algorithm>

#include "solver/base/error.hpp"
#include "solver/newton/kernels.hpp"
#include "solver/prior/population_prior.hpp"

namespace pref {

HalfSteps::HalfSteps(FitContext& ctx) : ctx_(ctx) {
  const FitConfig& cfg = ctx_.cfg;
  if (cfg.items && cfg.items->kind != Items::kComparisons) {
    ItemConfig ic = cfg.item;
    ic.J = ctx_.J;
    ic.mu_z = cfg.mu_z;
    ctx_.items.emplace(ctx_.comm, cfg.items, ctx_.layout.parts.comparisons, ic);
    if (ic.residual && cfg.items->kind == Items::kEmbeddings) {
      // --residual: d_r per response, a responses model on the same data (ridge mu_residual).
      ItemConfig rc = ic;
      rc.mu_w = ic.mu_residual;
      ctx_.residual.emplace(ctx_.comm, cfg.items, ctx_.layout.parts.comparisons, rc,
                            Items::kResponses);
      // Residuals only for responses in a comparison with training labels (ItemModel::
      // fix_unlabelled): the others, held-out prompts' responses, are the head's alone.
      const LocalRows& comps = ctx_.layout.comps;
      std::vector<char> labelled(comps.rows());
      for (std::size_t c = 0; c < labelled.size(); ++c) labelled[c] = !comps.idx_of(c).empty();
      ctx_.residual->fix_unlabelled(labelled);
    }
  }
}

double HalfSteps::user_half_step() {
  FitContext& c = ctx_;
  if (c.cfg.shared) return 0;
  c.ughost_fresh = false;
  Factors& f = c.cur.factors;
  const LocalRows& users = c.layout.users;
  const int J = c.J;
  // Rows go in groups of kernels::kMaxRows (solve_rows: their directions side by side); a
  // row's result does not depend on its group.
  const std::size_t nu = users.rows(), G = kernels::kMaxRows;
  auto solve = [&](std::size_t r0, std::size_t r1, const RowPrior& rp, RowWorkspace& ws,
                   double* acc) {
    GroupRow rows[kernels::kMaxRows];
    for (std::size_t r = r0; r < r1; ++r)
      rows[r - r0] = {f.U.data() + r * J, users.idx_of(r), users.y_of(r)};
    solve_rows(std::span<const GroupRow>(rows, r1 - r0), J, c.zghost.data(), rp, c.cfg.newton_steps,
               ws, acc);
  };
  if (!c.cur.prior) {
    c.parallel_rows((nu + G - 1) / G, [&](std::size_t b, RowWorkspace& ws) {
      solve(b * G, std::min(nu, (b + 1) * G), c.cfg.mu_u, ws, nullptr);
    });
    return 0;
  }
  // Under the prior, each row's posterior covariance (the inverse of its Hessian at the start
  // of its last Newton step) is summed for the M-step. Rows go in fixed blocks, each summed in
  // row order and the blocks in block order, so that the sum does not depend on the thread
  // count; blocks of at least J^2 rows (a multiple of the group) keep their partial sums at 8
  // bytes per user or less.
  const PopulationPrior& p = *c.cur.prior;
  const RowPrior rp(p.precision.data(), p.mean.data());
  const std::size_t JJ = std::size_t(J) * J;
  const std::size_t per_block = (std::max<std::size_t>(64, JJ) + G - 1) / G * G;
  const std::size_t blocks = (nu + per_block - 1) / per_block;
  spread_blocks_.assign(blocks * JJ, 0.0);
  c.parallel_rows(blocks, [&](std::size_t b, RowWorkspace& ws) {
    double* acc = spread_blocks_.data() + b * JJ;
    const std::size_t end = std::min(nu, (b + 1) * per_block);
    for (std::size_t r = b * per_block; r < end; r += G)
      solve(r, std::min(end, r + G), rp, ws, acc);
  });
  std::vector<double> spread(JJ, 0.0);
  for (std::size_t b = 0; b < blocks; ++b)
    for (std::size_t k = 0; k < JJ; ++k) spread[k] += spread_blocks_[b * JJ + k];
  RelaxedPrior next = relax_prior(
      p, update_prior(c.comm, J, f.U, spread, c.layout.parts.users.size()), c.cfg.prior_relax);
  c.cur.prior = std::move(next.prior);
  return next.step;
}

void HalfSteps::comparison_half_step(bool gradients) {
  if (ctx_.items) return item_half_step(ctx_.cfg.newton_steps);
  if (ctx_.layout.exchange == Exchange::kShip) return ship_comparison_half_step(gradients);
  for (int step = 0; step < ctx_.cfg.newton_steps; ++step) reduce_newton_step();
}

void HalfSteps::ship_comparison_half_step(bool gradients) {
  FitContext& c = ctx_;
  const LocalRows& comps = c.layout.comps;
  const int J = c.J;
  c.refresh_ughost();
  // Each row is also measured at its new z: its loss (and, when the evaluation asks, its
  // gradient) are the evaluation's (the rows partition the training labels). The loss comes
  // from the Newton step's own passes (the loss at its start plus the accepted step's change);
  // the gradient takes one more pass while the row's labels and partner rows are in cache.
  c.end_loss.resize(comps.rows());
  c.end_gz.assign(gradients ? comps.rows() : 0, 0.0);
  c.parallel_rows(comps.rows(), [&](std::size_t r, RowWorkspace& ws) {
    double* z = c.cur.factors.Z.data() + r * J;
    // The row's U rows are scattered over a table of every user: copied once, then read by
    // the Newton step's passes and the measurement from the copy.
    const Partners u = gather_partners(J, c.ughost.data(), comps.idx_of(r), ws);
    const RowStats st =
        solve_row(z, J, u.table, u.idx, comps.y_of(r), c.cfg.mu_z, c.cfg.newton_steps, ws,
                  /*track_loss=*/!gradients);
    if (!gradients) {
      c.end_loss[r] = st.loss;
      return;
    }
    ws.g.setZero(J);
    LabelPass pass;
    pass.g = ws.g.data();
    pass.loss = true;
    c.end_loss[r] = accumulate(z, J, u.table, u.idx, comps.y_of(r), pass, ws);
    c.end_gz[r] = (ws.g + c.cfg.mu_z * Eigen::Map<const Eigen::VectorXd>(z, J)).squaredNorm();
  });
  c.comparisons_measured = true;
  c.comparisons_gradients = gradients;
}

// One Newton step of every comparison by reduction of partial sums to the owners.
void HalfSteps::reduce_newton_step() {
  FitContext& c = ctx_;
  const LocalRows& gc = c.layout.ghost_comps;
  const GhostPlan& zplan = c.layout.zplan;
  std::vector<double>& Zf = c.cur.factors.Z;
  const std::vector<double>& Uf = c.cur.factors.U;
  const int J = c.J;
  const double mu_z = c.cfg.mu_z;
  const int hw = J * (J + 1) / 2;
  const int width = J + hw;
  const std::size_t T = zplan.ghosts();
  const std::size_t nc = Zf.size() / J;
  std::vector<double> part(T * width), sums(nc * width);
  c.parallel_rows(T, [&](std::size_t g, RowWorkspace& ws) {
    ws.g.setZero(J);
    ws.h.setZero(J, J);
    LabelPass pass;
    pass.g = ws.g.data();
    pass.H = ws.h.data();
    accumulate(c.zghost.data() + g * J, J, Uf.data(), gc.idx_of(g), gc.y_of(g), pass, ws);
    double* out = part.data() + g * width;
    for (int a = 0; a < J; ++a) out[a] = ws.g[a];
    int k = J;
    for (int a = 0; a < J; ++a)
      for (int b = 0; b <= a; ++b) out[k++] = ws.h(a, b);
  });
  c.reduce(zplan, part, width, sums);
  // Owners: direction and g.d.
  std::vector<double> d(nc * J, 0.0), gd(nc, 0.0);
  c.parallel_rows(nc, [&](std::size_t r, RowWorkspace& ws) {
    const double* s = sums.data() + r * width;
    Eigen::Map<Eigen::VectorXd> z(Zf.data() + r * J, J);
    ws.g = Eigen::Map<const Eigen::VectorXd>(s, J) + mu_z * z;
    ws.h.resize(J, J);
    int k = J;
    for (int a = 0; a < J; ++a)
      for (int b = 0; b <= a; ++b) ws.h(a, b) = ws.h(b, a) = s[k++];
    ws.h.diagonal().array() += mu_z;
    if (ws.g.squaredNorm() == 0 || !direction(ws.h, ws.g, ws.d)) return;
    const double gdc = ws.g.dot(ws.d);
    if (!(gdc < 0)) return;
    gd[r] = gdc;
    Eigen::Map<Eigen::VectorXd>(d.data() + r * J, J) = ws.d;
  });
  std::vector<double> dghost;
  c.fetch(zplan, d, J, dghost);
  // The line search walks the ladder a few steps per round; most rows accept the full step in
  // the first round, so rows evaluate few step lengths, and rounds stop when no row is left.
  // t: the chosen step (0: none), or -1 while the row is still searching.
  std::vector<double> t(nc, -1.0), tghost(T, -1.0);
  for (std::size_t r = 0; r < nc; ++r)
    if (gd[r] == 0) t[r] = 0;
  std::vector<double> fl, fsum;
  std::vector<std::uint8_t> pending(T, 1);
  for (std::size_t g = 0; g < T; ++g) {
    bool zero = true;
    for (int a = 0; a < J; ++a) zero = zero && dghost[g * J + a] == 0;
    if (zero) pending[g] = 0;
  }
  constexpr int kPerRound = 2;
  for (int l0 = 0; l0 < kLadder; l0 += kPerRound) {
    const int nl = std::min(kPerRound, kLadder - l0);
    fl.assign(T * nl, 0.0);
    fsum.assign(nc * nl, 0.0);
    // Holders: partial change of the objective at the round's step lengths (term by term, as
    // in solve_row: see bce_change).
    c.parallel_rows(T, [&](std::size_t g, RowWorkspace&) {
      if (!pending[g]) return;
      const double* z = c.zghost.data() + g * J;
      const double* dd = dghost.data() + g * J;
      double* out = fl.data() + g * nl;
      auto idx = gc.idx_of(g);
      auto y = gc.y_of(g);
      for (std::size_t k = 0; k < idx.size(); ++k) {
        const double* u = Uf.data() + std::size_t(idx[k]) * J;
        double m = 0, q = 0;
        for (int a = 0; a < J; ++a) {
          m += u[a] * z[a];
          q += u[a] * dd[a];
        }
        for (int l = 0; l < nl; ++l) out[l] += bce_change(m, ladder_step(l0 + l) * q, y[k]);
      }
    });
    c.reduce(zplan, fl, nl, fsum);
    // Owners: the first step of the round meeting the Armijo condition.
    c.parallel_rows(nc, [&](std::size_t r, RowWorkspace&) {
      if (t[r] >= 0) return;
      Eigen::Map<Eigen::VectorXd> z(Zf.data() + r * J, J);
      Eigen::Map<const Eigen::VectorXd> dc(d.data() + r * J, J);
      for (int l = 0; l < nl; ++l) {
        const double step = ladder_step(l0 + l);
        const double df =
            fsum[r * nl + l] + mu_z * step * (z.dot(dc) + 0.5 * step * dc.squaredNorm());
        if (df <= kArmijo * step * gd[r]) {
          t[r] = step;
          z += step * dc;
          return;
        }
      }
      if (l0 + nl >= kLadder) t[r] = 0;  // no step length decreased the objective
    });
    // Holders learn each row's outcome and apply accepted steps to their ghost copies
    // (bitwise the owner's arithmetic).
    c.fetch(zplan, t, 1, tghost);
    std::uint64_t left = 0;
    for (std::size_t g = 0; g < T; ++g) {
      if (!pending[g]) continue;
      if (tghost[g] < 0) {
        ++left;
        continue;
      }
      pending[g] = 0;
      for (int a = 0; a < J; ++a) c.zghost[g * J + a] += tghost[g] * dghost[g * J + a];
    }
    std::uint64_t owners_left = 0;
    for (double tc : t) owners_left += tc < 0;
    if (mpi::allreduce_sum(c.comm, left + owners_left) == 0) break;
  }
}

// With an item model: Newton steps of theta at the current U (the comparison half-step).
void HalfSteps::item_half_step(int steps) {
  FitContext& c = ctx_;
  c.refresh_ughost();
  c.comparisons_measured = false;
  const LabelChange change = [&](const std::vector<double>& V, std::span<const double> steps_,
                                 std::span<double> ch,
                                 bool measure) { label_change(V, steps_, ch, measure); };
  for (int s = 0; s < steps; ++s) {
    // --residual: one Newton step of the head and the residuals together.
    const double t = c.residual
                         ? ItemModel::joint_newton_step(*c.items, *c.residual, c.cur.factors.Z,
                                                        comparison_derivs(), change)
                         : c.items->newton_step(c.cur.factors.Z, comparison_derivs(), change);
    // The line search's pass measured the labels at the step taken: the evaluation uses it.
    c.comparisons_measured = c.items->last_measured();
    if (t == 0) break;
  }
}

// The labels' loss gradient and Hessian in z_p of every comparison of this rank (ship).
ComparisonDerivs HalfSteps::comparison_derivs() {
  FitContext& c = ctx_;
  const LocalRows& comps = c.layout.comps;
  const int J = c.J;
  const std::size_t nc = comps.rows(), JJ = std::size_t(J) * J;
  ComparisonDerivs d;
  d.g.assign(nc * J, 0.0);
  d.H.assign(nc * JJ, 0.0);
  c.parallel_rows(nc, [&](std::size_t r, RowWorkspace& ws) {
    ws.g.setZero(J);
    ws.h.setZero(J, J);
    accumulate_row(c.cur.factors.Z.data() + r * J, J, c.ughost.data(), comps.idx_of(r),
                   comps.y_of(r), ws.g, &ws.h, ws, nullptr);
    // The label pass fills the lower triangle only.
    ws.h.triangularView<Eigen::StrictlyUpper>() = ws.h.transpose();
    std::copy(ws.g.data(), ws.g.data() + J, d.g.data() + r * J);
    std::copy(ws.h.data(), ws.h.data() + JJ, d.H.data() + r * JJ);
  });
  return d;
}

// This rank's sum over its labels of BCE(z_p + t v_p) - BCE(z_p) for each step t; with
// `measure`, also each comparison's loss and gradient in z_p at z_p + steps[0] v_p (end_loss,
// end_g: the evaluation's measurement when that step is taken).
void HalfSteps::label_change(const std::vector<double>& V, std::span<const double> steps,
                             std::span<double> change, bool measure) {
  FitContext& c = ctx_;
  const LocalRows& comps = c.layout.comps;
  const int J = c.J;
  const std::size_t nc = comps.rows(), nl = steps.size();
  std::vector<double> per(nc * nl, 0.0);
  if (measure) {
    c.end_loss.assign(nc, 0.0);
    c.end_g.assign(nc * J, 0.0);
  }
  c.parallel_rows(nc, [&](std::size_t r, RowWorkspace&) {
    const double* z = c.cur.factors.Z.data() + r * J;
    const double* v = V.data() + r * J;
    double* g = measure ? c.end_g.data() + r * J : nullptr;
    auto idx = comps.idx_of(r);
    auto y = comps.y_of(r);
    double loss = 0;
    for (std::size_t k = 0; k < idx.size(); ++k) {
      const double* u = c.ughost.data() + std::size_t(idx[k]) * J;
      double m = 0, q = 0;
      for (int a = 0; a < J; ++a) {
        m += u[a] * z[a];
        q += u[a] * v[a];
      }
      for (std::size_t l = 0; l < nl; ++l) per[r * nl + l] += bce_change(m, steps[l] * q, y[k]);
      if (measure) {
        const double mt = m + steps[0] * q;
        loss += bce(mt, y[k]);
        const double res = sigmoid(mt) - y[k];
        for (int a = 0; a < J; ++a) g[a] += res * u[a];
      }
    }
    if (measure) c.end_loss[r] = loss;
  });
  for (std::size_t r = 0; r < nc; ++r)
    for (std::size_t l = 0; l < nl; ++l) change[l] += per[r * nl + l];
}

void HalfSteps::init_items(int steps) {
  if (!ctx_.items) return;
  ctx_.items->comparisons(ctx_.cur.factors.Z);
  if (ctx_.residual) ctx_.residual->add_comparisons(ctx_.cur.factors.Z);
  item_half_step(steps);
}

std::vector<double> HalfSteps::all_item_params() const {
  std::vector<double> all = ctx_.items ? ctx_.items->all_params() : std::vector<double>();
  if (ctx_.residual) {
    const std::vector<double> r = ctx_.residual->all_params();
    all.insert(all.end(), r.begin(), r.end());
  }
  return all;
}

void HalfSteps::restore_items(const std::vector<double>& all) {
  if (!ctx_.items) return;
  mpi::agree(ctx_.comm, [&] {
    // With --residual: the head's values, then the residuals'.
    const std::size_t nh = ctx_.items->all_params().size();
    const std::size_t nr = ctx_.residual ? ctx_.residual->all_params().size() : 0;
    bool ok = all.size() == nh + nr;
    if (ok) {
      const auto mid = all.begin() + static_cast<std::ptrdiff_t>(nh);
      ok = ctx_.items->set_all_params(std::vector<double>(all.begin(), mid)) &&
           (!ctx_.residual || ctx_.residual->set_all_params(std::vector<double>(mid, all.end())));
    }
    if (!ok)
      throw InputError(fmt::format(
          "the checkpoint holds {} of the item parameters (--items {}{}: {} values expected)",
          all.empty() ? std::string("none") : fmt::format("{} values", all.size()),
          items_name(ctx_.items->kind()), ctx_.residual ? " --residual" : "", nh + nr));
  });
}

}  // namespace pref
