#include "solver/items/scores.hpp"

#include <fmt/core.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>

#include "io/model_prior.hpp"
#include "io/provenance.hpp"
#include "io/scores_file.hpp"
#include "solver/base/hash.hpp"
#include "solver/base/log.hpp"
#include "solver/base/partition.hpp"

namespace pref {

namespace {

using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

const char* params_dataset(Items items) {
  return kItemParamsDatasets.name(items);
}

// The item model and its parameters (finite, J columns), and the residuals with --residual.
void read_item_params(const mpi::Comm& comm, const ScoreJob& job, ScoreInputs& in) {
  const io::Attributes attributes = io::read_model_attributes(job.model, comm, {"items"});
  mpi::agree(comm, [&] {
    const auto it = attributes.find("items");
    const std::string items = it == attributes.end() ? std::string("comparisons")
                              : std::holds_alternative<std::string>(it->second)
                                  ? std::get<std::string>(it->second)
                                  : std::string("(not a string)");
    in.items = kItemsNames.parse(items, job.model + ": attribute 'items'");
    if (in.items == Items::kComparisons)
      throw InputError(fmt::format(
          "{}: fit with --items comparisons (free comparison factors): it has no base rewards "
          "of responses to score; fit with --items responses or embeddings (--model)",
          job.model));
  });
  in.params = io::read_model_matrix(job.model, comm, params_dataset(in.items), in.header.rank,
                                    &in.param_rows);
  mpi::agree(comm, [&] {
    if (job.residual && !in.header.has("embedding_residual"))
      throw InputError(fmt::format(
          "--residual: {} has no /embedding_residual (fit with --items embeddings --residual)",
          job.model));
  });
  if (job.residual)
    in.residual = io::read_model_matrix(job.model, comm, "embedding_residual", in.header.rank,
                                        &in.residual_rows);
}

// The fitted users of --users, or all; the adapted file's users.
void choose_users(const mpi::Comm& comm, const ScoreJob& job, ScoreInputs& in) {
  if (!job.adapted.empty()) {
    in.adapted = io::open_adapted(job.adapted, comm, "--adapted");
    const std::uint64_t checksum = io::model_comparison_checksum(job.model, comm, in.header);
    mpi::agree(comm, [&] {
      const io::AdaptedFile& a = *in.adapted;
      if (a.rank != in.header.rank)
        throw InputError(
            fmt::format("{}: /weights: {} columns, the model {} has rank {} "
                        "(--adapted, --model)",
                        job.adapted, a.rank, job.model, in.header.rank));
      if (a.comparisons != in.header.comparisons)
        throw InputError(fmt::format(
            "{}: adapted over {} comparisons, but the model {} has {} (--adapted, --model)",
            job.adapted, a.comparisons, job.model, in.header.comparisons));
      bool unchecked = false;
      io::require_same_model(job.adapted, "--adapted", a.provenance, job.model, "--model",
                             hash::hex(checksum), &unchecked);
      if (unchecked)
        log::warn(comm,
                  "{} records no model checksum (written before pref recorded one): not checked "
                  "against {}",
                  job.adapted, job.model);
    });
    in.users = in.adapted->users;
    return;
  }
  in.first_user = 0;
  in.users = in.header.users;
  if (!job.users) return;
  const std::uint64_t a = job.users->first, b0 = job.users->second;  // (lambdas capture them)
  const std::uint64_t b = b0 == std::numeric_limits<std::uint64_t>::max() ? in.header.users : b0;
  mpi::agree(comm, [&] {
    if (a >= b || b > in.header.users)
      throw InputError(
          fmt::format("--users: {}:{} is not a non-empty range within [0, {}) (the model's users)",
                      a, b, in.header.users));
  });
  in.first_user = a;
  in.users = b - a;
}

}  // namespace

ScoreInputs open_score_inputs(const mpi::Comm& comm, const ScoreJob& job) {
  ScoreInputs in;
  mpi::agree(comm, [&] {
    if (job.users && !job.adapted.empty())
      throw InputError(
          "--users, --adapted: give one (the model's fitted users or adapted "
          "new users)");
  });
  in.header = io::read_model_header(job.model, comm);
  read_item_params(comm, job, in);
  in.responses.emplace(io::LabelFile::open(job.responses, comm, "--responses"));
  const io::LabelFile& rf = *in.responses;
  const std::uint64_t R = rf.responses().responses;
  mpi::agree(comm, [&] {
    if (!rf.has_responses())
      throw InputError(job.responses +
                       ": no /responses (format version 2, docs/format.md) "
                       "(--responses)");
    if (in.items == Items::kEmbeddings && rf.responses().embedding_dim != in.param_rows)
      throw InputError(fmt::format(
          "{}: /responses/embedding has dimension {}, but the head of {} takes {} (--responses, "
          "--model)",
          job.responses, rf.responses().embedding_dim, job.model, in.param_rows));
    if (job.residual && R < in.residual_rows)
      throw InputError(fmt::format(
          "--residual: {} has {} responses, fewer than the {} of the fit's residuals in {} "
          "(it must number the fit's responses first) (--responses, --model)",
          job.responses, R, in.residual_rows, job.model));
    if (in.items == Items::kResponses && R != in.param_rows)
      throw InputError(fmt::format(
          "{}: {} responses, but {} has factors of {} (a responses model scores the responses "
          "it was fit on, by id) (--responses, --model)",
          job.responses, R, job.model, in.param_rows));
  });
  choose_users(comm, job, in);
  return in;
}

void write_scores(const mpi::Comm& comm, const ScoreInputs& in, const ScoreJob& job,
                  const std::string& path) {
  const int me = comm.rank();
  const int J = static_cast<int>(in.header.rank);
  const io::LabelFile& rf = *in.responses;
  const std::uint64_t R = rf.responses().responses, P = rf.responses().prompts;
  // phi (R x J) on every rank: the factors, or the head applied to the embeddings (each rank
  // its even share of rows, then gathered).
  std::vector<double> phi;
  if (in.items == Items::kResponses) {
    phi = in.params;
  } else {
    const std::uint64_t dim = in.param_rows;
    const Partition rows = Partition::uniform(R, comm.size());
    const std::vector<float> e = rf.read_embedding(rows.begin(me), rows.count(me), comm);
    const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> E(
        e.data(), static_cast<Eigen::Index>(rows.count(me)), static_cast<Eigen::Index>(dim));
    const Eigen::Map<const RowMajor> Wm(in.params.data(), static_cast<Eigen::Index>(dim), J);
    const RowMajor mine = E.cast<double>() * Wm;
    phi = mpi::allgatherv<double>(comm, std::span<const double>(mine.data(), mine.size()));
  }
  if (in.residual_rows > 0 && job.residual) {
    // phi_r += d_r for the fit's responses (ids below residual_rows).
    for (std::size_t k = 0; k < in.residual.size(); ++k) phi[k] += in.residual[k];
    log::info(comm,
              "score: the fit's residuals for responses 0..{} (of {}); the head alone "
              "for the rest",
              in.residual_rows - 1, R);
  }
  const Eigen::Map<const RowMajor> Phi(phi.data(), static_cast<Eigen::Index>(R), J);
  const std::vector<std::uint32_t>& prompt = rf.responses().prompt;

  // Users in even blocks; each rank in rounds of about 2^22 scores.
  const std::uint64_t n = in.users, first = in.first_user;
  const Partition users = Partition::uniform(n, comm.size());
  const std::uint64_t u0 = users.begin(me), nu = users.count(me);
  const std::uint64_t batch =
      std::max<std::uint64_t>(1, (std::uint64_t{1} << 22) / std::max<std::uint64_t>(R, 1));
  const std::uint64_t rounds = mpi::allreduce_max(comm, (nu + batch - 1) / batch);
  log::info(comm, "score: {} users ({}) x {} responses of {} prompts, items {}, J = {}{}", n,
            in.adapted ? "adapted" : "fitted", R, P, items_name(in.items), J,
            job.best ? ", best of each prompt" : "");
  io::ScoresHeader hd;
  hd.users = n;
  hd.first_user = first;
  hd.responses = R;
  hd.prompts = P;
  hd.rank = in.header.rank;
  hd.items = items_name(in.items);
  hd.residual_responses = job.residual ? in.residual_rows : 0;
  hd.model = job.model;
  hd.responses_file = job.responses;
  hd.source = in.adapted ? "adapted" : "fitted";
  hd.adapted = job.adapted;
  hd.best = job.best;
  io::ScoresWriter out(path, comm, hd);
  std::vector<double> U;
  std::vector<float> sbuf, bsbuf;
  std::vector<std::uint32_t> bbuf;
  for (std::uint64_t k = 0; k < rounds; ++k) {
    const std::uint64_t lo = std::min(nu, k * batch), hi = std::min(nu, lo + batch);
    const std::uint64_t m = hi - lo;
    U = in.adapted ? io::read_adapted_weights(*in.adapted, u0 + lo, m, comm)
                   : io::read_model_rows(job.model, comm, "user_factors", first + u0 + lo, m,
                                         in.header.rank);
    const Eigen::Map<const RowMajor> Um(U.data(), static_cast<Eigen::Index>(m), J);
    const RowMajor S = Um * Phi.transpose();  // m x R
    if (job.best) {
      bbuf.assign(m * P, io::kNoResponse);
      bsbuf.assign(m * P, std::numeric_limits<float>::quiet_NaN());
      for (std::uint64_t i = 0; i < m; ++i)
        for (std::uint64_t r = 0; r < R; ++r) {
          const std::uint64_t q = prompt[r];
          const double s = S(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(r));
          std::uint32_t& b = bbuf[i * P + q];
          // The highest score; on a tie the lowest response id; NaN (an overflow of huge
          // finite factors) never wins over a number.
          const double best = b == io::kNoResponse
                                  ? 0.0
                                  : S(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(b));
          if (b == io::kNoResponse || s > best || (std::isnan(best) && !std::isnan(s))) {
            b = static_cast<std::uint32_t>(r);
            bsbuf[i * P + q] = static_cast<float>(s);
          }
        }
      out.write_best(u0 + lo, m, bbuf, bsbuf);
    } else {
      sbuf.resize(m * R);
      for (std::uint64_t i = 0; i < m * R; ++i) sbuf[i] = static_cast<float>(S.data()[i]);
      out.write_scores(u0 + lo, m, sbuf);
    }
  }
  out.close();
}

}  // namespace pref
