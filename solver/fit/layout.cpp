#include "solver/fit/layout.hpp"

#include <numeric>

namespace pref {

namespace {

// Cost model constant: seconds per label of the reduce pattern's extra pass (the comparison
// half-step with reduce minus with ship, per label, at 1 rank, J = 8, on the development
// machine with AVX-512 kernels: docs/scaling.md).
constexpr double kReducePassSeconds = 32e-9;

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

}  // namespace

FitLayout::FitLayout(const mpi::Comm& comm, LabelMatrix&& train, LabelMatrix* validation,
                     const FitConfig& cfg)
    : parts(train.parts),
      labels(train.labels),
      has_validation(validation && validation->labels > 0),
      validation_labels(validation ? validation->labels : 0) {
  const int J = cfg.J;
  // Users read the Z rows of their training and validation labels.
  zplan = GhostPlan(comm, partner_ids(train.by_user, validation ? &validation->by_user : nullptr),
                    parts.comparisons);
  users = localize(std::move(train.by_user), zplan);
  if (validation) users_val = localize(std::move(validation->by_user), zplan);
  uplan = GhostPlan(comm, partner_ids(train.by_comparison), parts.users);
  // Cost model: seconds per sweep of the slowest rank. Both patterns fetch Z rows for the
  // users. Ship also fetches U rows for the comparison owners; reduce instead sends, per ghost
  // comparison and Newton step, the partial gradient and Hessian, then the direction, one or
  // two ladder values and the step back, and makes one more pass over its labels (the ladder)
  // whose gathers from U run in comparison order, i.e. out of cache.
  const int hw = J * (J + 1) / 2;
  const double rz = static_cast<double>(zplan.remote_rows());
  const double ru = static_cast<double>(uplan.remote_rows());
  const double labels_here = static_cast<double>(users.idx.size());
  bytes_ship = mpi::allreduce_max(comm, 8.0 * J * (rz + ru));
  bytes_reduce =
      mpi::allreduce_max(comm, 8.0 * (J * rz + cfg.newton_steps * rz * ((J + hw) + J + 2 + 1)));
  const double extra_pass = mpi::allreduce_max(comm, labels_here) * cfg.newton_steps;
  cost_ship = bytes_ship / cfg.net_bytes_per_second;
  cost_reduce = bytes_reduce / cfg.net_bytes_per_second + extra_pass * kReducePassSeconds;
  exchange = cfg.exchange;
  if (exchange == Exchange::kAuto)
    exchange = (comm.size() == 1 || cost_ship <= cost_reduce) ? Exchange::kShip : Exchange::kReduce;
  // The item half-step needs each comparison's labels at its owner.
  if (cfg.items && cfg.items->kind != Items::kComparisons) exchange = Exchange::kShip;
  if (exchange == Exchange::kShip) {
    comps = localize(std::move(train.by_comparison), uplan);
  } else {
    train.by_comparison = Csr{};
    uplan = GhostPlan();
    ghost_comps = transpose(users, zplan.ghosts());
  }
}

double FitLayout::label_bytes_per_label() const {
  const std::size_t n = users.idx.size();
  const std::size_t b =
      users.bytes() + (exchange == Exchange::kShip ? comps.bytes() : ghost_comps.bytes());
  return n ? double(b) / double(n) : 0.0;
}

}  // namespace pref
