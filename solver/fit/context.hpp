#pragma once
// What the parts of a fit share on one rank (solver/fit/fit.hpp): the configuration, the
// labels' layout, the state being fitted, the ghost tables of partner rows, the item models,
// the threads' workspaces, and what the comparison half-step measured for the evaluation.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "solver/base/aligned.hpp"
#include "solver/fit/fit.hpp"
#include "solver/fit/layout.hpp"
#include "solver/items/items.hpp"
#include "solver/newton/newton.hpp"

namespace pref {

struct FitContext {
  FitContext(const mpi::Comm& c, const FitConfig& config, FitLayout&& l, Snapshot& current)
      : comm(c), cfg(config), J(config.J), layout(std::move(l)), cur(current) {
    threads = std::max(1, cfg.threads);
    ws.resize(threads);
  }

  const mpi::Comm& comm;
  const FitConfig& cfg;
  const int J;
  int threads = 1;
  FitLayout layout;
  Snapshot& cur;  // the state's factors and prior, changed in place
  std::vector<RowWorkspace> ws;
  // Partner rows gathered from their owners: cache-line aligned rows. zghost: the Z rows the
  // users read (layout.zplan); ughost: the U rows the comparison owners read (ship).
  AlignedVector<double> zghost, ughost;
  bool ughost_fresh = false;
  std::optional<ItemModel> items;     // FitConfig::items responses or embeddings
  std::optional<ItemModel> residual;  // --residual: d_r per response (kind responses)
  // Loss and (with comparisons_gradients) squared gradient norm of each comparison row at its
  // new z, from the ship pattern's comparison half-step (item models: the labels' gradients in
  // z_p, end_g); valid for the next evaluation only.
  std::vector<double> end_loss, end_gz, end_g;
  bool comparisons_measured = false;
  bool comparisons_gradients = false;  // with comparisons_measured (ship): end_gz too
  std::uint64_t bytes = 0;             // exchanged by this rank since the last take_bytes

  // Runs fn(row, workspace) for rows [0, n) on the rank's threads. Rows are independent, so
  // results do not depend on the thread count.
  template <class F>
  void parallel_rows(std::size_t n, F&& fn) {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (std::size_t r = 0; r < n; ++r) fn(r, ws[omp_get_thread_num()]);
#else
    for (std::size_t r = 0; r < n; ++r) fn(r, ws[0]);
#endif
  }
  template <class Vector>
  void fetch(const GhostPlan& plan, std::span<const double> local, int width, Vector& ghost) {
    plan.fetch(comm, local, width, ghost);
    bytes += plan.remote_rows() * width * 8;
  }
  void reduce(const GhostPlan& plan, std::span<const double> ghost, int width,
              std::vector<double>& local) {
    plan.reduce(comm, ghost, width, local);
    bytes += plan.remote_rows() * width * 8;
  }
  void fetch_z() {
    fetch(layout.zplan, cur.factors.Z, J, zghost);
  }
  void refresh_ughost() {
    if (ughost_fresh) return;
    fetch(layout.uplan, cur.factors.U, J, ughost);
    ughost_fresh = true;
  }
  // All ranks' bytes since the last call. Collective.
  std::uint64_t take_bytes() {
    const std::uint64_t b = mpi::allreduce_sum(comm, bytes);
    bytes = 0;
    return b;
  }
};

}  // namespace pref
