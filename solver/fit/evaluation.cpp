#include "solver/fit/evaluation.hpp"

#include <cmath>
#include <limits>

#include "solver/base/hash.hpp"
#include "solver/eval/calibration.hpp"

namespace pref {

SweepRecord Evaluation::measure(Validation level, double scale_start) {
  const bool full = level == Validation::kFull;
  FitContext& c = ctx_;
  const FitConfig& cfg = c.cfg;
  const int J = c.J;
  const Factors& f = c.cur.factors;
  const std::optional<PopulationPrior>& prior = c.cur.prior;
  const LocalRows& users = c.layout.users;
  SweepRecord rec;
  c.fetch_z();
  const std::size_t nu = users.rows();
  // The comparison half-step (ship) measured its rows at the current state: the loss and the
  // comparisons' gradients are taken from it, and users need only their gradients (when asked).
  const bool measured = c.comparisons_measured && c.layout.exchange == Exchange::kShip;
  c.comparisons_measured = false;
  loss_.assign(nu, 0.0);
  gu_.assign(nu, 0.0);
  quad_.assign(nu, 0.0);
  const bool label_pass = !(measured && (cfg.shared || !full));
  c.parallel_rows(nu, [&](std::size_t r, RowWorkspace& ws) {
    const double* u = f.U.data() + r * J;
    const Eigen::Map<const Eigen::VectorXd> uv(u, J);
    ws.g.setZero(J);
    if (label_pass) {
      LabelPass pass;
      pass.g = full ? ws.g.data() : nullptr;
      pass.loss = !measured;
      loss_[r] = accumulate(u, J, c.zghost.data(), users.idx_of(r), users.y_of(r), pass, ws);
    }
    if (cfg.shared) return;
    if (prior) {
      const Eigen::Map<const Eigen::MatrixXd> P(prior->precision.data(), J, J);
      ws.d = uv - Eigen::Map<const Eigen::VectorXd>(prior->mean.data(), J);
      ws.pr.noalias() = P * ws.d;
      ws.g += ws.pr;
      quad_[r] = 0.5 * ws.d.dot(ws.pr);
    } else {
      ws.g += cfg.mu_u * uv;
      quad_[r] = 0.5 * cfg.mu_u * uv.squaredNorm();
    }
    gu_[r] = ws.g.squaredNorm();
  });
  gz_.clear();
  const double items_share = full ? comparison_gradients(measured) : 0.0;
  // loss, users' regularization, |Z|^2, |grad|^2, the item parameters' regularization
  double sums[5] = {0, 0, 0, items_share,
                    (c.items ? c.items->regularization_share() : 0.0) +
                        (c.residual ? c.residual->regularization_share() : 0.0)};
  for (std::size_t r = 0; r < nu; ++r) {
    sums[0] += loss_[r];
    sums[1] += quad_[r];
    sums[3] += gu_[r];
  }
  if (measured)
    for (double l : c.end_loss) sums[0] += l;
  for (double v : f.Z) sums[2] += v * v;
  for (double v : gz_) sums[3] += v;
  mpi::allreduce(c.comm, std::span<double>(sums, 5), MPI_SUM);
  rec.train_logloss = sums[0] / static_cast<double>(std::max<std::uint64_t>(1, c.layout.labels));
  // With the prior: the expected complete-data negative log-likelihood of EM (docs/design.md,
  // "The population prior"), which every half-step and the prior's update decrease.
  rec.objective = sums[0] + (cfg.shared ? 0.0 : sums[1]) + 0.5 * cfg.mu_z * sums[2] + sums[4];
  if (prior) {
    rec.objective += prior_constant(*prior);
    rec.prior = summarize(*prior);
  }
  rec.grad_norm = full ? std::sqrt(sums[3]) : std::numeric_limits<double>::quiet_NaN();
  if (c.layout.has_validation) {
    // The calibrated log-loss's sample: users whose id hashes below a threshold, so that about
    // cfg.monitor_labels labels are in it whatever the rank count.
    const LocalRows& val = c.layout.users_val;
    const bool monitor = cfg.monitor_calibrated;
    if (monitor && !monitor_found_) {
      const double share =
          std::min(1.0, double(cfg.monitor_labels) /
                            double(std::max<std::uint64_t>(1, c.layout.validation_labels)));
      const std::uint64_t threshold =
          share >= 1.0 ? ~std::uint64_t{0} : static_cast<std::uint64_t>(share * 0x1p64);
      const std::uint64_t first_user = c.layout.parts.users.begin(c.comm.rank());
      for (std::size_t r = 0; r < val.rows(); ++r)
        if (!val.idx_of(r).empty() && hash::mix(first_user + r) <= threshold)
          monitor_rows_.push_back(static_cast<std::uint32_t>(r));
      monitor_found_ = true;
    }
    monitor_margins_.clear();
    monitor_labels_.clear();
    RowWorkspace& ws = c.ws[0];
    std::vector<double> margins;
    if (level == Validation::kSample && monitor) {
      // The sample's rows alone: their margins, nothing else.
      for (std::uint32_t r : monitor_rows_) {
        auto idx = val.idx_of(r);
        auto y = val.y_of(r);
        const std::size_t at = monitor_margins_.size();
        monitor_margins_.resize(at + idx.size());
        LabelPass pass;
        pass.margins = monitor_margins_.data() + at;
        accumulate(f.U.data() + std::size_t(r) * J, J, c.zghost.data(), idx, y, pass, ws);
        monitor_labels_.insert(monitor_labels_.end(), y.begin(), y.end());
      }
    } else {
      // Margins and log-loss by the label kernels; the accumulator keeps its buffers.
      std::vector<Scored> items;
      std::size_t next = 0;  // the next sample row
      for (std::size_t r = 0; r < val.rows(); ++r) {
        auto idx = val.idx_of(r);
        auto y = val.y_of(r);
        margins.resize(idx.size());
        LabelPass pass;
        pass.loss = true;
        pass.margins = margins.data();
        const double l = accumulate(f.U.data() + r * J, J, c.zghost.data(), idx, y, pass, ws);
        if (monitor && next < monitor_rows_.size() && monitor_rows_[next] == r) {
          ++next;
          monitor_margins_.insert(monitor_margins_.end(), margins.begin(), margins.end());
          monitor_labels_.insert(monitor_labels_.end(), y.begin(), y.end());
        }
        items.resize(idx.size());
        for (std::size_t k = 0; k < idx.size(); ++k) items[k] = {margins[k], y[k]};
        val_acc_.add_user(items, l);
      }
      rec.validation = val_acc_.finish(c.comm, nullptr, full);
    }
    if (monitor) {
      const Calibration cal =
          calibrate_margins(c.comm, monitor_margins_, monitor_labels_, scale_start);
      rec.calibrated_logloss = cal.logloss_after;
      rec.calibration_scale = cal.scale;
      rec.monitor_labels = cal.labels;
    }
  }
  return rec;
}

void Evaluation::score_validation(std::vector<double>& margins, std::vector<float>& labels) {
  FitContext& c = ctx_;
  c.fetch_z();
  const LocalRows& val = c.layout.users_val;
  margins.assign(val.y.size(), 0.0);
  labels.clear();
  labels.reserve(val.y.size());
  RowWorkspace& ws = c.ws[0];
  std::size_t at = 0;
  for (std::size_t r = 0; r < val.rows(); ++r) {
    auto idx = val.idx_of(r);
    auto y = val.y_of(r);
    LabelPass pass;
    pass.margins = margins.data() + at;
    accumulate(c.cur.factors.U.data() + r * c.J, c.J, c.zghost.data(), idx, y, pass, ws);
    labels.insert(labels.end(), y.begin(), y.end());
    at += idx.size();
  }
}

// The comparisons' squared gradient norms into gz_; returns this rank's share of theta's
// (item models).
double Evaluation::comparison_gradients(bool measured) {
  FitContext& c = ctx_;
  const int J = c.J;
  const Factors& f = c.cur.factors;
  const LocalRows& comps = c.layout.comps;
  const std::size_t nc = f.Z.size() / J;
  gz_.assign(nc, 0.0);
  double items_share = 0;
  if (measured && c.items) {
    // The line search's pass measured the labels at this Z (label_change).
    items_share = c.items->gradient_norm2_share(f.Z, c.end_g);
    if (c.residual) items_share += c.residual->gradient_norm2_share(f.Z, c.end_g);
  } else if (measured && c.comparisons_gradients) {
    gz_ = c.end_gz;
  } else if (c.items) {
    // The gradient in theta: A^T (g + mu_z z) + mu_w theta.
    c.refresh_ughost();
    std::vector<double> g(nc * J, 0.0);
    c.parallel_rows(nc, [&](std::size_t r, RowWorkspace& ws) {
      ws.g.setZero(J);
      accumulate_row(f.Z.data() + r * J, J, c.ughost.data(), comps.idx_of(r), comps.y_of(r), ws.g,
                     nullptr, ws, nullptr);
      std::copy(ws.g.data(), ws.g.data() + J, g.data() + r * J);
    });
    items_share = c.items->gradient_norm2_share(f.Z, g);
    if (c.residual) items_share += c.residual->gradient_norm2_share(f.Z, g);
  } else if (c.layout.exchange == Exchange::kShip) {
    c.refresh_ughost();
    c.parallel_rows(nc, [&](std::size_t r, RowWorkspace& ws) {
      ws.g.setZero(J);
      accumulate_row(f.Z.data() + r * J, J, c.ughost.data(), comps.idx_of(r), comps.y_of(r), ws.g,
                     nullptr, ws, nullptr);
      gz_[r] = (ws.g + c.cfg.mu_z * Eigen::Map<const Eigen::VectorXd>(f.Z.data() + r * J, J))
                   .squaredNorm();
    });
  } else {
    const LocalRows& gc = c.layout.ghost_comps;
    const std::size_t T = c.layout.zplan.ghosts();
    std::vector<double> part(T * J), sums(nc * J);
    c.parallel_rows(T, [&](std::size_t g, RowWorkspace& ws) {
      ws.g.setZero(J);
      accumulate_row(c.zghost.data() + g * J, J, f.U.data(), gc.idx_of(g), gc.y_of(g), ws.g,
                     nullptr, ws, nullptr);
      Eigen::Map<Eigen::VectorXd>(part.data() + g * J, J) = ws.g;
    });
    c.reduce(c.layout.zplan, part, J, sums);
    for (std::size_t r = 0; r < nc; ++r)
      gz_[r] = (Eigen::Map<const Eigen::VectorXd>(sums.data() + r * J, J) +
                c.cfg.mu_z * Eigen::Map<const Eigen::VectorXd>(f.Z.data() + r * J, J))
                   .squaredNorm();
  }
  return items_share;
}

}  // namespace pref
