#include "solver/cli/fit_items.hpp"

#include <fmt/core.h>

#include "solver/base/log.hpp"
#include "solver/cli/commands.hpp"

namespace pref::cli {

namespace {
Items parse_items(const std::string& s) {
  return s == "responses" ? Items::kResponses
         : s == "embeddings" ? Items::kEmbeddings
                             : Items::kComparisons;
}
}  // namespace

void FitItemsOption::add(CLI::App& app) {
  app.add_option("--items", items,
                 "Comparison factors: comparisons (free z_p), responses (z_p = phi_a - phi_b, a "
                 "free J-vector per response) or embeddings (phi_r = W^T e_r, a learned head "
                 "on /responses/embedding); the last two need a label file with responses "
                 "(docs/format.md)")
      ->check(CLI::IsMember({"comparisons", "responses", "embeddings"}));
  app.add_option("--mu-w", mu_w,
                 "--items responses|embeddings: L2 regularization (mu_w/2)|theta|^2 of the "
                 "per-response factors or the head (besides --mu-z on every z_p)")
      ->check(finite_number());
}

void FitItemsOption::check(FitConfig& cfg, const std::string& checkpoint_dir,
                           bool extrapolate_given, const std::string& exchange) const {
  if (items == "comparisons") return;
  if (!checkpoint_dir.empty())
    throw InputError(fmt::format("--checkpoint-dir: not supported with --items {} yet (the "
                                 "checkpoints do not hold the item parameters)",
                                 items));
  if (extrapolate_given && cfg.extrapolate)
    throw InputError(fmt::format("--extrapolate: not supported with --items {}", items));
  if (exchange == "reduce")
    throw InputError(fmt::format("--exchange reduce: not supported with --items {} (its "
                                 "half-step needs the ship pattern)",
                                 items));
  if (!(mu_w > 0)) throw InputError(fmt::format("--mu-w: {} must be > 0", mu_w));
  cfg.extrapolate = false;
  cfg.item.mu_w = mu_w;
}

void FitItemsOption::load(const io::LabelFile& data, FitConfig& cfg, const mpi::Comm& comm) const {
  const Items kind = parse_items(items);
  if (kind == Items::kComparisons) return;
  auto d = std::make_shared<ItemData>(load_item_data(data, kind, comm, "--items"));
  log::info(comm, "items {}: {} responses{}", items, d->responses,
            kind == Items::kEmbeddings ? fmt::format(", embeddings of dimension {} ({})", d->dim,
                                                     d->dim * static_cast<std::uint64_t>(cfg.J) <=
                                                             cfg.item.cholesky_max
                                                         ? "head solved by Cholesky"
                                                         : "head solved by Newton-CG")
                                       : std::string());
  cfg.items = std::move(d);
}

const io::ModelItems* FitItemsOption::model(io::ModelHeader& hd, const FitResult& res) {
  if (items == "comparisons") return nullptr;  // no attribute: files as before
  hd.attributes["items"] = items;
  hd.attributes["mu_w"] = mu_w;
  out_.dataset = items == "responses" ? "response_factors" : "embedding_head";
  out_.rows = res.item_rows;
  out_.local = res.item_params;
  return &out_;
}

}  // namespace pref::cli
