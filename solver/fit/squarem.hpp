#pragma once
// SQUAREM (Varadhan and Roland 2008, "Simple and globally convergent methods for accelerating
// the convergence of any EM algorithm", Scand. J. Statist. 35) over whole sweeps, under the
// population prior (FitConfig::accelerate squarem; docs/design.md, "Accelerating the EM"). A
// sweep F maps the state x = (U, Z, prior mean, prior covariance) to the next. From x0 the cycle
// takes two plain sweeps, x1 = F(x0) and x2 = F(x1), turns x1 and x2 to x0's frame (align_to in
// gauge.hpp: the orthogonal turn of the factor space that brings each closest to x0, which no
// prediction sees; plain sweeps end in a relative equilibrium that turns the state a little each
// sweep, and extrapolating that turn, a change that does not shrink, kept the cycles from
// converging), then, with r = x1 - x0, v = x2 - 2 x1 + x0
// and alpha = -|r| / |v| clamped to [-step_max, -1], jumps to x' = x0 - 2 alpha r + alpha^2 v
// and takes one stabilizing sweep x3 = F(x'). The safeguard: where the cycle's plain sweeps
// lowered the objective (x2's not above x1's), x3 is kept when its objective is not above x2's,
// so such a cycle never ends above the plain sweeps' objective; where they raised it (the
// objective is no Lyapunov function of these sweeps: the users' new posterior spreads enter it,
// and with few labels per user the sweeps raise it for long stretches), x3 is kept when its
// fixed-point residual |x3 - x'| (in x''s frame) is not above |x2 - x1|. Otherwise (or when x'
// has no positive definite prior covariance) the fit returns to x2. step_max
// starts at 1 and grows fourfold after a step that reached it, shrinks fourfold after a
// return (Du and Varadhan's rule). alpha = -1 is x2 itself (no jump). |.| sums the local rows
// of U and Z over the ranks, and the replicated prior once.
//
// The cycle's phase and saved states are FitState::squarem (checkpointed), so a resumed fit
// repeats the uninterrupted one. The prior's eigenbasis rotation, whose eigenvectors jump
// when eigenvalues nearly coincide, is left to the end of the fit (one rotation of the
// returned state) when SQUAREM runs.
#include <string>

#include "solver/fit/context.hpp"
#include "solver/fit/state.hpp"

namespace pref {

class Squarem {
 public:
  explicit Squarem(FitContext& ctx) : ctx_(ctx) {}
  // Before a sweep: saves the states the cycle needs, or, at x2, jumps to x' (the current state
  // changes; the Z ghost rows are fetched again). Returns alpha when it jumped, else 0; `note`
  // says what happened (for the log). Collective.
  double before_sweep(FitState& st, std::string& note);
  // After the sweep's record (its objective): advances the phase; after a stabilizing sweep,
  // keeps x3 or returns to x2 (then true: the current state is x2 again, whose objective is
  // st.squarem.objective2). Collective.
  bool after_sweep(FitState& st, double objective, std::string& note);

 private:
  Snapshot copy_current() const;
  // Makes `s` the current state (factors, prior), fetching the Z ghost rows. False (and nothing
  // changed) when its prior covariance is not positive definite on some rank. Collective.
  bool set_current(FitState& st, Snapshot&& s);
  double dot(const Snapshot& a, const Snapshot& b) const;  // over all ranks
  FitContext& ctx_;
};

}  // namespace pref
