#include "solver/fit/warm_start.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "io/model_file.hpp"
#include "io/model_prior.hpp"
#include "solver/base/hash.hpp"
#include "solver/items/items.hpp"

namespace pref {

namespace {

// This rank's rows [begin, end) of a partition that the model has: [begin, min(end, have)).
std::pair<std::uint64_t, std::uint64_t> held(const Partition& part, int rank, std::uint64_t have) {
  const std::uint64_t b = std::min<std::uint64_t>(part.begin(rank), have);
  const std::uint64_t e = std::min<std::uint64_t>(part.end(rank), have);
  return {b, e - b};
}

}  // namespace

WarmStart warm_start(const mpi::Comm& comm, const std::string& path, const std::string& option,
                     const Partitions& parts, const FitConfig& cfg) {
  const io::ModelHeader hd = io::read_model_header(path, comm);
  const int J = cfg.J;
  mpi::agree(comm, [&] {
    auto refuse = [&](const std::string& why) {
      throw InputError(fmt::format("{}: {}: {}", option, path, why));
    };
    if (hd.kind != io::ModelKind::kFactor || cfg.shared)
      refuse(fmt::format("a warm start needs a factor model and fit (the model is {}{})",
                         io::kModelKindNames.name(hd.kind),
                         cfg.shared ? ", the fit --model shared" : ""));
    if (hd.rank != static_cast<std::uint32_t>(J))
      refuse(fmt::format("the model has rank {}, the fit --rank {}", hd.rank, J));
    auto items = hd.attributes.find("items");
    const std::string model_items =
        items == hd.attributes.end() ? "comparisons" : std::get<std::string>(items->second);
    if (kItemsNames.find(model_items) != Items::kComparisons || cfg.items)
      refuse(fmt::format("a warm start needs free comparison factors (the model has --items {}{})",
                         model_items, cfg.items ? ", the fit another item model" : ""));
    if (hd.users > parts.users.size() || hd.comparisons > parts.comparisons.size())
      refuse(fmt::format(
          "the model has {} users and {} comparisons, the data {} and {}: a warm start needs the "
          "data's ids to extend the model's",
          hd.users, hd.comparisons, parts.users.size(), parts.comparisons.size()));
  });
  WarmStart ws;
  ws.users = hd.users;
  ws.comparisons = hd.comparisons;
  const int me = comm.rank();
  // Plain names, not structured bindings: C++17 lambdas cannot capture those (clang refuses).
  const auto user_rows = held(parts.users, me, hd.users);
  const auto comp_rows = held(parts.comparisons, me, hd.comparisons);
  const std::uint64_t u0 = user_rows.first, nu = user_rows.second;
  const std::uint64_t z0 = comp_rows.first, nz = comp_rows.second;
  const std::vector<double> U = io::read_model_rows(path, comm, "user_factors", u0, nu, J);
  const std::vector<double> Z = io::read_model_rows(path, comm, "comparison_factors", z0, nz, J);
  mpi::agree(comm, [&] {
    const auto bad_u = std::find_if(U.begin(), U.end(), [](double v) { return !std::isfinite(v); });
    const auto bad_z = std::find_if(Z.begin(), Z.end(), [](double v) { return !std::isfinite(v); });
    if (bad_u != U.end())
      throw InputError(fmt::format("{}: {}: /user_factors row {} is not finite", option, path,
                                   u0 + std::uint64_t(bad_u - U.begin()) / J),
                       u0 + std::uint64_t(bad_u - U.begin()) / J);
    if (bad_z != Z.end())
      throw InputError(fmt::format("{}: {}: /comparison_factors row {} is not finite", option, path,
                                   z0 + std::uint64_t(bad_z - Z.begin()) / J),
                       hd.users + z0 + std::uint64_t(bad_z - Z.begin()) / J);
  });
  ws.checksum = mpi::allreduce_sum(comm, hash::rows(u0, U, J) + hash::rows(hd.users + z0, Z, J));
  const bool under_prior = cfg.prior == UserPrior::kPopulation;
  Factors f;
  f.J = J;
  const std::uint64_t my_users = parts.users.end(me) - parts.users.begin(me);
  const std::uint64_t my_comps = parts.comparisons.end(me) - parts.comparisons.begin(me);
  f.U.assign(my_users * J, 0.0);
  f.Z.assign(my_comps * J, 0.0);
  std::copy(U.begin(), U.end(), f.U.begin());
  std::copy(Z.begin(), Z.end(), f.Z.begin());
  if (under_prior && !hd.prior_mean.empty()) {
    PopulationPrior p;
    p.J = J;
    p.mean = hd.prior_mean;
    p.users = parts.users.size();
    p.set_covariance(hd.prior_covariance);
    // Before the first user half-step each user's spread is taken to be the prior's.
    p.spread.resize(std::size_t(J) * J);
    for (std::size_t k = 0; k < p.spread.size(); ++k)
      p.spread[k] = double(p.users) * p.covariance[k];
    for (std::uint64_t r = nu; r < my_users; ++r)
      std::copy(p.mean.begin(), p.mean.end(), f.U.begin() + r * J);
    ws.state.current.prior = std::move(p);
  }
  ws.state.current.factors = std::move(f);
  return ws;
}

}  // namespace pref
