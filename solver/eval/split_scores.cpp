#include "solver/eval/split_scores.hpp"

#include <cmath>
#include <limits>

#include "solver/layout/exchange.hpp"
#include "solver/newton/kernels.hpp"
#include "solver/newton/loss.hpp"

namespace pref {

void for_each_user_margins(const mpi::Comm& comm, const LabelMatrix& m, const Factors& f,
                           const std::function<void(std::size_t r, std::span<const double> margins,
                                                    std::span<const float> labels)>& fn) {
  const int J = f.J;
  const Csr& c = m.by_user;
  GhostPlan plan(comm, IdSet({std::span<const std::uint32_t>(c.col)}), m.parts.comparisons);
  std::vector<double> zghost;
  plan.fetch(comm, f.Z, J, zghost);
  std::vector<double> margins;
  for (std::size_t r = 0; r < c.rows(); ++r) {
    margins.resize(c.row_size(r));
    const double* u = f.U.data() + r * J;
    for (std::uint64_t k = c.ptr[r]; k < c.ptr[r + 1]; ++k) {
      const double* z = zghost.data() + std::size_t(plan.index_of(c.col[k])) * J;
      double d = 0;
      for (int a = 0; a < J; ++a) d += u[a] * z[a];
      margins[k - c.ptr[r]] = d;
    }
    fn(r, margins, std::span<const float>(c.val.data() + c.ptr[r], c.row_size(r)));
  }
}

SplitMetrics evaluate_split(const mpi::Comm& comm, const LabelMatrix& m, const Factors& f,
                            std::vector<double>* user_aucs, double scale,
                            double* logloss_unscaled) {
  MetricsAccumulator acc;
  std::vector<Scored> items;
  std::vector<double> terms;  // each label's log-loss (the label kernels' vectorized exp, log1p)
  const auto lt = kernels::best().logistic_terms;
  double unscaled = 0;  // summed per user, as the accumulator sums the scaled loss
  for_each_user_margins(
      comm, m, f, [&](std::size_t, std::span<const double> margins, std::span<const float> labels) {
        const std::size_t n = margins.size();
        items.resize(n);
        terms.resize(n);
        double loss = 0, raw = 0;
        for (std::size_t k = 0; k < n; ++k) items[k] = {margins[k], labels[k]};
        lt(margins.data(), labels.data(), n, scale, terms.data(), nullptr);
        for (std::size_t k = 0; k < n; ++k) loss += terms[k];
        if (logloss_unscaled && scale != 1.0) {
          lt(margins.data(), labels.data(), n, 1.0, terms.data(), nullptr);
          for (std::size_t k = 0; k < n; ++k) raw += terms[k];
        }
        acc.add_user(items, loss);
        unscaled += raw;
      });
  const SplitMetrics s = acc.finish(comm, user_aucs);
  if (logloss_unscaled) {
    unscaled = mpi::allreduce_sum(comm, unscaled);
    *logloss_unscaled = scale == 1.0 ? s.logloss
                        : s.labels   ? unscaled / double(s.labels)
                                     : std::numeric_limits<double>::quiet_NaN();
  }
  return s;
}

double rms_margin(const mpi::Comm& comm, const LabelMatrix& m, const Factors& f) {
  double sum = 0;
  for_each_user_margins(comm, m, f,
                        [&](std::size_t, std::span<const double> margins, std::span<const float>) {
                          for (double d : margins) sum += d * d;
                        });
  sum = mpi::allreduce_sum(comm, sum);
  return m.labels ? std::sqrt(sum / static_cast<double>(m.labels)) : 0.0;
}

}  // namespace pref
