// pref score: personalized rewards of responses, r_i(y) = u_i . phi(y), from a model fit with
// --items responses or embeddings, for the model's fitted users or for the new users of a
// `pref adapt` output; with --best-of-N each user's best response of every prompt
// (solver/items/scores.hpp; docs/format.md, "Scores").
#include <fmt/core.h>

#include <limits>
#include <memory>

#include "io/output_file.hpp"
#include "solver/base/log.hpp"
#include "solver/cli/commands.hpp"
#include "solver/items/scores.hpp"

namespace pref::cli {

namespace {

struct ScoreOptions {
  std::string users, out;
  ScoreJob job;
  bool overwrite = false;
};

// "FIRST:END" (half-open; either may be left out) as counts; END empty: UINT64_MAX (the last
// user). Whether the range lies within the model's users is checked by open_score_inputs.
std::pair<std::uint64_t, std::uint64_t> parse_range(const std::string& s) {
  const auto colon = s.find(':');
  if (colon == std::string::npos)
    throw InputError(fmt::format("--users: '{}' is not a range FIRST:END", s));
  const std::string a = s.substr(0, colon), b = s.substr(colon + 1);
  return {a.empty() ? 0 : parse_count(a, "--users"),
          b.empty() ? std::numeric_limits<std::uint64_t>::max() : parse_count(b, "--users")};
}

}  // namespace

Runner add_score(CLI::App& app) {
  auto o = std::make_shared<ScoreOptions>();
  ScoreJob& job = o->job;
  app.add_option("--model", job.model,
                 "Model file of `pref fit --items responses` or `--items embeddings`")
      ->required();
  app.add_option("--responses", job.responses,
                 "Label file with /responses: the responses to score (for an embeddings model, "
                 "by their /responses/embedding, any responses; for a responses model, the "
                 "fit's own responses by id)")
      ->required();
  app.add_option("--users", o->users,
                 "The model's fitted users FIRST:END (half-open; default all)");
  app.add_option("--adapted", job.adapted,
                 "Score the new users of this `pref adapt` output instead of the fitted users");
  app.add_flag("--best-of-N", job.best,
               "Write each user's best response of every prompt (/best, /best_score) instead "
               "of every score (/scores)");
  app.add_flag("--residual", job.residual,
               "Model of `fit --items embeddings --residual`: add the fit's residual d_r to "
               "responses 0..R-1 of --responses (R: the fit's responses; --responses must number "
               "them as the fit's label file did); later responses, new ones, get the head "
               "alone. Without it every response gets the head alone");
  app.add_flag("--overwrite", o->overwrite, "Replace an existing output file");
  app.add_option("--out", o->out, "Output scores file (HDF5)")->required();
  return [o](const mpi::Comm& comm) {
    mpi::agree(comm, [&] {
      if (!o->users.empty()) o->job.users = parse_range(o->users);
    });
    const ScoreInputs in = open_score_inputs(comm, o->job);
    io::AtomicOutput out(o->out, o->overwrite, comm);
    write_scores(comm, in, o->job, out.temp_path());
    out.commit();
    log::info(comm, "wrote {}", out.path());
    return 0;
  };
}

}  // namespace pref::cli
