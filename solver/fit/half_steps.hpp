#pragma once
// The two half-steps of a sweep (docs/design.md, "The fit"): every u_i solved with Z fixed
// (and, under the population prior, the prior's M-step from all users), then every z_p with U
// fixed, by the ship or the reduce pattern, or, with an item model, Newton steps of theta.
#include <optional>
#include <span>
#include <vector>

#include "solver/fit/context.hpp"

namespace pref {

class HalfSteps {
 public:
  // Sets up the item models of cfg.items (collective).
  explicit HalfSteps(FitContext& ctx);

  // Every user row: one Newton solve (FitConfig::newton_steps steps) against the current
  // ghost Z; under the population prior, the rows' posterior spreads are summed and the prior
  // updated from all users (the M-step). Collective. Returns the over-relaxed M-step's factor
  // taken (0: no M-step).
  double user_half_step();
  // Every comparison row (or theta). Collective. gradients: the evaluation that follows
  // measures the gradient norm (the ship pattern then measures the comparisons' own).
  void comparison_half_step(bool gradients);

  // Item models: theta from 0 fitted to the initial U (before sweep 0 of a fresh fit).
  void init_items(int steps);
  bool has_items() const { return ctx_.items.has_value(); }
  // All of theta on every rank (FitState::current.item_params), and its restore. Collective.
  std::vector<double> all_item_params() const;
  void restore_items(const std::vector<double>& all);
  Partition item_rows() const { return ctx_.items ? ctx_.items->param_rows() : Partition(); }
  std::vector<double> item_params() const {
    return ctx_.items ? ctx_.items->owned_params() : std::vector<double>();
  }
  Partition residual_rows() const {
    return ctx_.residual ? ctx_.residual->param_rows() : Partition();
  }
  std::vector<double> residual_params() const {
    return ctx_.residual ? ctx_.residual->owned_params() : std::vector<double>();
  }

 private:
  void ship_comparison_half_step(bool gradients);
  void reduce_newton_step();
  void item_half_step(int steps);
  ComparisonDerivs comparison_derivs();
  void label_change(const std::vector<double>& V, std::span<const double> steps,
                    std::span<double> change, bool measure);

  FitContext& ctx_;
  std::vector<double> spread_blocks_;  // per block of users: sum of posterior covariances
};

}  // namespace pref
