// pref generate: a synthetic population into a label file.
#include <fmt/core.h>

#include <map>
#include <memory>

#include "io/output_file.hpp"
#include "solver/base/log.hpp"
#include "solver/cli/commands.hpp"
#include "solver/synthetic/population.hpp"
#include "solver/synthetic/population_file.hpp"

namespace pref::cli {

namespace {
struct GenerateOptions {
  std::string model = "attributes";
  std::string users = "1000", comparisons = "1000", answers = "40", new_users = "0",
              new_user_answers = "100";
  std::uint32_t rank = 0;  // 0: the model's default
  std::uint64_t seed = 1;
  std::string labels = "bernoulli", user_dist = "gaussian", popularity = "uniform";
  std::string prompts = "0", heldout_prompts = "0";
  PopulationConfig cfg;
  bool overwrite = false;
  std::string out;
};
}  // namespace

Runner add_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  PopulationConfig& c = o->cfg;
  app.add_option("--model", o->model, "Population model")->check(one_of(kPopulationModelNames));
  app.add_option("--users", o->users, "Number of users (e.g. 1000 or 1e6)");
  app.add_option("--comparisons", o->comparisons, "Number of comparisons (items)");
  app.add_option("--answers-per-user", o->answers,
                 "Labels per user, split into train/validation/test");
  app.add_option("--rank", o->rank,
                 "True rank (lowrank; attributes is always 7). 0: 7 for "
                 "attributes, 8 for lowrank");
  app.add_option("--new-users", o->new_users, "Held-out new users, each with an answer pool");
  app.add_option("--new-user-answers", o->new_user_answers, "Answer pool of each new user");
  app.add_option("--seed", o->seed, "Random seed");
  app.add_option("--temperature", c.temperature, "Labels: P(first preferred) = sigmoid(u.z/T)");
  app.add_option("--labels", o->labels, "How labels are drawn")->check(one_of(kLabelModeNames));
  app.add_option("--tie-band", c.tie_band, "|u.z| below this gives a tie (label 0.5)");
  app.add_option("--label-noise", c.label_noise, "Probability of flipping a 0/1 label");
  app.add_option("--jitter", c.jitter, "Attributes: per-user Gaussian noise on the weights");
  app.add_option("--user-distribution", o->user_dist, "Lowrank: user weights")
      ->check(one_of(kUserDistNames));
  app.add_option("--clusters", c.clusters, "Lowrank mixture: number of user clusters");
  app.add_option("--cluster-spread", c.cluster_spread, "Lowrank mixture: spread around a centre");
  app.add_option("--popularity", o->popularity, "How often each comparison is asked")
      ->check(one_of(kPopularityNames));
  app.add_option("--zipf-exponent", c.zipf_exponent, "Zipf popularity exponent");
  app.add_option("--validation-fraction", c.validation_fraction,
                 "Share of each user's answers held out for validation");
  app.add_option("--test-fraction", c.test_fraction,
                 "Share of each user's answers held out for test");
  app.add_option("--responses-per-prompt", c.responses_per_prompt,
                 "Attributes: N responses per prompt with hidden attributes; a comparison pairs "
                 "two responses of one prompt (format version 2). 0: free comparisons");
  app.add_option("--prompts", o->prompts,
                 "Number of prompts (default: comparisons / pairs per prompt, rounded up)");
  app.add_option("--heldout-prompts", o->heldout_prompts,
                 "The last prompts are held out: their comparisons appear only in test labels");
  app.add_option("--embedding-dim", c.embedding_dim,
                 "Write /responses/embedding: a fixed random linear image of each response's "
                 "attributes in this dimension, plus noise");
  app.add_option("--embedding-noise", c.embedding_noise,
                 "Std. dev. of the embedding noise per coordinate (the signal has unit variance)");
  app.add_flag("--overwrite", o->overwrite, "Replace an existing output file");
  app.add_option("--out", o->out, "Output label file (HDF5)")->required();
  return [o](const mpi::Comm& comm) {
    PopulationConfig& cfg = o->cfg;
    std::unique_ptr<Population> pop;
    // Options are checked identically on every rank; agree() makes the error collective.
    mpi::agree(comm, [&] {
      cfg.model = kPopulationModelNames.parse(o->model, "--model");
      cfg.users = parse_count(o->users, "--users");
      cfg.comparisons = parse_count(o->comparisons, "--comparisons");
      cfg.answers_per_user = parse_count(o->answers, "--answers-per-user");
      cfg.new_users = parse_count(o->new_users, "--new-users");
      cfg.new_user_answers = parse_count(o->new_user_answers, "--new-user-answers");
      cfg.rank = o->rank ? o->rank : (cfg.model == PopulationConfig::Model::kAttributes ? 7 : 8);
      cfg.seed = o->seed;
      cfg.label_mode = kLabelModeNames.parse(o->labels, "--labels");
      cfg.user_dist = kUserDistNames.parse(o->user_dist, "--user-distribution");
      cfg.popularity = kPopularityNames.parse(o->popularity, "--popularity");
      cfg.prompts = parse_count(o->prompts, "--prompts");
      cfg.heldout_prompts = parse_count(o->heldout_prompts, "--heldout-prompts");
      cfg.validate();
    });
    io::AtomicOutput out(o->out, o->overwrite, comm);
    log::info(comm,
              "generating {} population: {} users x {} answers over {} comparisons, "
              "rank {}, {} new users, seed {}, {} MPI ranks",
              model_name(cfg.model), cfg.users, cfg.answers_per_user, cfg.comparisons, cfg.rank,
              cfg.new_users, cfg.seed, comm.size());
    if (cfg.has_responses())
      log::info(comm,
                "responses: {} prompts x {} responses ({} held out), embedding dimension "
                "{}, noise {}",
                cfg.prompt_count(), cfg.responses_per_prompt, cfg.heldout_prompts,
                cfg.embedding_dim, cfg.embedding_noise);
    mpi::agree(comm, [&] { pop = std::make_unique<Population>(cfg); });
    GenerateStats st = write_population(*pop, out.temp_path(), comm);
    out.commit();
    log::info(comm, "wrote {} labels to {} in {:.2f} s ({:.3g} labels/s)", st.labels, out.path(),
              st.seconds, st.labels / std::max(st.seconds, 1e-9));
    return 0;
  };
}

}  // namespace pref::cli
