// pref score: personalized rewards of responses, r_i(y) = u_i . phi(y), from a model fit with
// --items responses (phi by response id) or --items embeddings (phi = W^T e over the embeddings
// of a label file's responses, which may be responses no label ever mentioned), for the model's
// fitted users or for the new users of a `pref adapt` output; with --best-of-N each user's best
// response of every prompt (docs/format.md, "Scores").
#include <fmt/core.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "io/adapted_file.hpp"
#include "io/hdf5.hpp"
#include "io/label_file.hpp"
#include "io/model_file.hpp"
#include "io/output_file.hpp"
#include "solver/base/log.hpp"
#include "solver/base/partition.hpp"
#include "solver/cli/commands.hpp"

namespace pref::cli {

namespace {

inline constexpr const char* kScoresFormat = "pref-scores";
inline constexpr std::uint32_t kNoResponse = 0xFFFFFFFFu;

using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct ScoreOptions {
  std::string model, responses, adapted, users, out;
  bool best = false, overwrite = false, residual = false;
};

// Every rank's rows concatenated in rank order.
std::vector<double> allgather_rows(const mpi::Comm& comm, const std::vector<double>& mine) {
  const std::vector<std::uint64_t> counts = mpi::allgather(comm, std::uint64_t{mine.size()});
  std::vector<int> c(counts.size()), d(counts.size(), 0);
  for (std::size_t r = 0; r < counts.size(); ++r) c[r] = static_cast<int>(counts[r]);
  for (std::size_t r = 1; r < counts.size(); ++r) d[r] = d[r - 1] + c[r - 1];
  std::vector<double> all(static_cast<std::size_t>(d.back() + c.back()));
  PREF_MPI_CHECK(MPI_Allgatherv(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(),
                                c.data(), d.data(), MPI_DOUBLE, comm.get()));
  return all;
}

// "FIRST:END" (half-open) within [0, n).
std::pair<std::uint64_t, std::uint64_t> parse_range(const std::string& s, std::uint64_t n) {
  const auto colon = s.find(':');
  if (colon == std::string::npos)
    throw InputError(fmt::format("--users: '{}' is not a range FIRST:END", s));
  const std::uint64_t a =
      parse_count(s.substr(0, colon).empty() ? "0" : s.substr(0, colon), "--users");
  const std::string e = s.substr(colon + 1);
  const std::uint64_t b = e.empty() ? n : parse_count(e, "--users");
  if (a >= b || b > n)
    throw InputError(
        fmt::format("--users: {} is not a non-empty range within [0, {}) (the "
                    "model's users)",
                    s, n));
  return {a, b};
}

}  // namespace

Runner add_score(CLI::App& app) {
  auto o = std::make_shared<ScoreOptions>();
  app.add_option("--model", o->model,
                 "Model file of `pref fit --items responses` or `--items embeddings`")
      ->required();
  app.add_option("--responses", o->responses,
                 "Label file with /responses: the responses to score (for an embeddings model, "
                 "by their /responses/embedding, any responses; for a responses model, the "
                 "fit's own responses by id)")
      ->required();
  app.add_option("--users", o->users,
                 "The model's fitted users FIRST:END (half-open; default all)");
  app.add_option("--adapted", o->adapted,
                 "Score the new users of this `pref adapt` output instead of the fitted users");
  app.add_flag("--best-of-N", o->best,
               "Write each user's best response of every prompt (/best, /best_score) instead "
               "of every score (/scores)");
  app.add_flag("--residual", o->residual,
               "Model of `fit --items embeddings --residual`: add the fit's residual d_r to "
               "responses 0..R-1 of --responses (R: the fit's responses; --responses must number "
               "them as the fit's label file did); later responses, new ones, get the head "
               "alone. Without it every response gets the head alone");
  app.add_flag("--overwrite", o->overwrite, "Replace an existing output file");
  app.add_option("--out", o->out, "Output scores file (HDF5)")->required();
  return [o](const mpi::Comm& comm) {
    mpi::agree(comm, [&] {
      if (!o->users.empty() && !o->adapted.empty())
        throw InputError(
            "--users, --adapted: give one (the model's fitted users or adapted "
            "new users)");
    });
    const io::ModelHeader hd = io::read_model_header(o->model, comm);
    const int J = static_cast<int>(hd.rank);
    std::string items = "comparisons", dataset;
    std::uint64_t param_rows = 0;
    h5::Handle mf;
    mpi::agree(comm, [&] { mf = h5::open_file(o->model, comm); });
    mpi::agree(comm, [&] {
      const std::string what = o->model + ": /";
      if (h5::has_attribute(mf.get(), "items"))
        items = h5::read_string_attribute(mf.get(), "items", what);
      if (items == "comparisons")
        throw InputError(fmt::format(
            "{}: fit with --items comparisons (free comparison factors): it has no base rewards "
            "of responses to score; fit with --items responses or embeddings (--model)",
            o->model));
      dataset = items == "responses" ? "response_factors" : "embedding_head";
      if (!h5::exists(mf.get(), "/" + dataset))
        throw InputError(
            fmt::format("{}: missing dataset /{} (--items {})", o->model, dataset, items));
      h5::Handle d = h5::open_dataset(mf.get(), dataset, o->model);
      const h5::DatasetShape s = h5::shape_of(d.get(), o->model);
      if (s.dims.size() != 2 || s.dims[1] != hd.rank || s.type_class != H5T_FLOAT)
        throw InputError(fmt::format("{}: /{}: expected a 2-D float dataset of {} columns",
                                     o->model, dataset, hd.rank));
      param_rows = s.dims[0];
    });
    // --residual: the model's /embedding_residual (responses of the fit x J).
    std::uint64_t residual_rows = 0;
    mpi::agree(comm, [&] {
      const bool has = h5::exists(mf.get(), "/embedding_residual");
      if (o->residual && !has)
        throw InputError(fmt::format(
            "--residual: {} has no /embedding_residual (fit with --items embeddings --residual)",
            o->model));
      if (!o->residual) return;
      h5::Handle d = h5::open_dataset(mf.get(), "embedding_residual", o->model);
      const h5::DatasetShape s = h5::shape_of(d.get(), o->model);
      if (s.dims.size() != 2 || s.dims[1] != hd.rank || s.type_class != H5T_FLOAT)
        throw InputError(
            fmt::format("{}: /embedding_residual: expected a 2-D float dataset of {} columns",
                        o->model, hd.rank));
      residual_rows = s.dims[0];
    });
    const io::LabelFile rf = io::LabelFile::open(o->responses, comm);
    const std::uint64_t R = rf.responses().responses, P = rf.responses().prompts;
    mpi::agree(comm, [&] {
      if (!rf.has_responses())
        throw InputError(o->responses +
                         ": no /responses (format version 2, docs/format.md) "
                         "(--responses)");
      if (items == "embeddings" && rf.responses().embedding_dim != param_rows)
        throw InputError(fmt::format(
            "{}: /responses/embedding has dimension {}, but the head of {} takes {} (--responses, "
            "--model)",
            o->responses, rf.responses().embedding_dim, o->model, param_rows));
      if (o->residual && R < residual_rows)
        throw InputError(fmt::format(
            "--residual: {} has {} responses, fewer than the {} of the fit's residuals in {} "
            "(it must number the fit's responses first) (--responses, --model)",
            o->responses, R, residual_rows, o->model));
      if (items == "responses" && R != param_rows)
        throw InputError(fmt::format(
            "{}: {} responses, but {} has factors of {} (a responses model scores the responses "
            "it was fit on, by id) (--responses, --model)",
            o->responses, R, o->model, param_rows));
    });
    // The users' weights: the model's fitted users, or the adapted new users.
    std::uint64_t first = 0, n = hd.users;
    std::string weights_file = o->model, weights_set = "user_factors";
    h5::Handle af;
    if (!o->adapted.empty()) {
      af = io::open_pref_file(o->adapted, io::kAdaptedFile, comm, "--adapted").file;
      mpi::agree(comm, [&] {
        h5::Handle d = h5::open_dataset(af.get(), "weights", o->adapted);
        const h5::DatasetShape s = h5::shape_of(d.get(), o->adapted);
        if (s.dims.size() != 2 || s.dims[1] != hd.rank)
          throw InputError(
              fmt::format("{}: /weights: {} columns, the model has rank {} (--adapted)", o->adapted,
                          s.dims.size() == 2 ? s.dims[1] : 0, hd.rank));
        n = s.dims[0];
      });
      weights_file = o->adapted;
      weights_set = "weights";
    } else if (!o->users.empty()) {
      mpi::agree(comm, [&] {
        auto [a, b] = parse_range(o->users, hd.users);
        first = a;
        n = b - a;
      });
    }
    io::AtomicOutput out(o->out, o->overwrite, comm, "--out",
                         {o->model, o->responses, o->adapted.empty() ? o->model : o->adapted});
    const int me = comm.rank();

    // phi (R x J) on every rank: the factors, or the head applied to the embeddings (each rank
    // its even share of rows, then gathered).
    std::vector<double> phi;
    {
      h5::Handle d = h5::open_dataset(mf.get(), dataset, o->model);
      if (items == "responses") {
        phi.resize(R * J);
        mpi::agree(comm, [&] { h5::read_rows<double>(d.get(), 0, R, phi, comm, o->model); });
      } else {
        const std::uint64_t dim = param_rows;
        std::vector<double> W(dim * J);
        mpi::agree(comm, [&] { h5::read_rows<double>(d.get(), 0, dim, W, comm, o->model); });
        const Partition rows = Partition::uniform(R, comm.size());
        const std::vector<float> e = rf.read_embedding(rows.begin(me), rows.count(me), comm);
        const Eigen::Map<
            const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>
            E(e.data(), static_cast<Eigen::Index>(rows.count(me)), static_cast<Eigen::Index>(dim));
        const Eigen::Map<const RowMajor> Wm(W.data(), static_cast<Eigen::Index>(dim), J);
        RowMajor mine = E.cast<double>() * Wm;
        phi = allgather_rows(comm, std::vector<double>(mine.data(), mine.data() + mine.size()));
      }
      if (residual_rows > 0) {
        // phi_r += d_r for the fit's responses (ids below residual_rows).
        std::vector<double> D(residual_rows * J);
        h5::Handle dr = h5::open_dataset(mf.get(), "embedding_residual", o->model);
        mpi::agree(comm,
                   [&] { h5::read_rows<double>(dr.get(), 0, residual_rows, D, comm, o->model); });
        for (std::size_t k = 0; k < D.size(); ++k) phi[k] += D[k];
        log::info(comm,
                  "score: the fit's residuals for responses 0..{} (of {}); the head alone "
                  "for the rest",
                  residual_rows - 1, R);
      }
    }
    const Eigen::Map<const RowMajor> Phi(phi.data(), static_cast<Eigen::Index>(R), J);
    const std::vector<std::uint32_t>& prompt = rf.responses().prompt;

    // Users in even blocks; each rank in rounds of about 2^22 scores.
    const Partition users = Partition::uniform(n, comm.size());
    const std::uint64_t u0 = users.begin(me), nu = users.count(me);
    const std::uint64_t batch =
        std::max<std::uint64_t>(1, (std::uint64_t{1} << 22) / std::max<std::uint64_t>(R, 1));
    const std::uint64_t rounds = mpi::allreduce_max(comm, (nu + batch - 1) / batch);
    log::info(comm, "score: {} users ({}) x {} responses of {} prompts, items {}, J = {}{}", n,
              o->adapted.empty() ? "fitted" : "adapted", R, P, items, J,
              o->best ? ", best of each prompt" : "");
    h5::Handle f;
    mpi::agree(comm, [&] { f = h5::create_file(out.temp_path(), comm); });
    const std::string what = out.temp_path();
    const hid_t h = f.get();
    h5::write_string_attribute(h, "format", kScoresFormat, what);
    h5::write_attribute<std::uint32_t>(h, "format_version", 1, what);
    h5::write_attribute<std::uint64_t>(h, "users", n, what);
    h5::write_attribute<std::uint64_t>(h, "first_user", first, what);
    h5::write_attribute<std::uint64_t>(h, "responses", R, what);
    h5::write_attribute<std::uint64_t>(h, "prompts", P, what);
    h5::write_attribute<std::uint32_t>(h, "rank", hd.rank, what);
    h5::write_string_attribute(h, "items", items, what);
    h5::write_attribute<std::uint64_t>(h, "residual_responses", residual_rows, what);
    h5::write_string_attribute(h, "model", o->model, what);
    h5::write_string_attribute(h, "responses_file", o->responses, what);
    h5::write_string_attribute(h, "source", o->adapted.empty() ? "fitted" : "adapted", what);
    if (!o->adapted.empty()) h5::write_string_attribute(h, "adapted", o->adapted, what);
    h5::Handle scores, best, best_score;
    if (o->best) {
      const hsize_t bd[2] = {n, P};
      best = h5::create_dataset(h, "best", H5T_STD_U32LE, bd, what);
      best_score = h5::create_dataset(h, "best_score", H5T_IEEE_F32LE, bd, what);
    } else {
      const hsize_t sd[2] = {n, R};
      scores = h5::create_dataset(h, "scores", H5T_IEEE_F32LE, sd, what);
    }
    h5::Handle wfile;
    mpi::agree(comm, [&] { wfile = h5::open_file(weights_file, comm); });
    h5::Handle wset = h5::open_dataset(wfile.get(), weights_set, weights_file);
    std::vector<double> U;
    std::vector<float> sbuf, bsbuf;
    std::vector<std::uint32_t> bbuf;
    for (std::uint64_t k = 0; k < rounds; ++k) {
      const std::uint64_t lo = std::min(nu, k * batch), hi = std::min(nu, lo + batch);
      const std::uint64_t m = hi - lo;
      U.resize(m * J);
      mpi::agree(comm, [&] {
        h5::read_rows<double>(wset.get(), first + u0 + lo, m, U, comm, weights_file);
      });
      const Eigen::Map<const RowMajor> Um(U.data(), static_cast<Eigen::Index>(m), J);
      const RowMajor S = Um * Phi.transpose();  // m x R
      if (o->best) {
        bbuf.assign(m * P, kNoResponse);
        bsbuf.assign(m * P, std::numeric_limits<float>::quiet_NaN());
        for (std::uint64_t i = 0; i < m; ++i)
          for (std::uint64_t r = 0; r < R; ++r) {
            const std::uint64_t q = prompt[r];
            const double s = S(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(r));
            std::uint32_t& b = bbuf[i * P + q];
            // The highest score; on a tie the lowest response id.
            if (b == kNoResponse ||
                s > S(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(b))) {
              b = static_cast<std::uint32_t>(r);
              bsbuf[i * P + q] = static_cast<float>(s);
            }
          }
        h5::write_rows<std::uint32_t>(best.get(), u0 + lo, m, bbuf, comm, what + ": /best");
        h5::write_rows<float>(best_score.get(), u0 + lo, m, bsbuf, comm, what + ": /best_score");
      } else {
        sbuf.resize(m * R);
        for (std::uint64_t i = 0; i < m * R; ++i) sbuf[i] = static_cast<float>(S.data()[i]);
        h5::write_rows<float>(scores.get(), u0 + lo, m, sbuf, comm, what + ": /scores");
      }
    }
    wset.reset();
    wfile.reset();
    scores.reset();
    best.reset();
    best_score.reset();
    h5::finish_file(f, out.temp_path(), comm);
    out.commit();
    log::info(comm, "wrote {}", out.path());
    return 0;
  };
}

}  // namespace pref::cli
