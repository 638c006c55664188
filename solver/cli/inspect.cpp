// pref inspect: validate a label file and summarize it.
#include <fmt/core.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "io/label_file.hpp"
#include "solver/base/log.hpp"
#include "solver/cli/commands.hpp"
#include "solver/cli/data.hpp"
#include "solver/eval/label_stats.hpp"
#include "solver/layout/distribute.hpp"

namespace pref::cli {

namespace {
struct InspectOptions {
  std::string file;
  bool json = false;
  std::string duplicates = "error";
};

nlohmann::json to_json(const CountSummary& s) {
  return {{"min", s.min}, {"median", s.median}, {"max", s.max}, {"mean", s.mean}};
}
}  // namespace

Runner add_inspect(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  app.add_option("file", o->file, "Label file (HDF5)")->required();
  app.add_flag("--json", o->json, "Print one JSON object on standard output");
  app.add_option("--duplicates", o->duplicates,
                 "Two labels of one (user, comparison): an error, or averaged")
      ->check(one_of(kDuplicatesNames));
  return [o](const mpi::Comm& comm) {
    if (o->json) log::set_quiet(true);
    const io::LabelFile f = io::LabelFile::open(o->file, comm);
    const Duplicates dups = parse_duplicates(o->duplicates);
    nlohmann::json j;
    j["file"] = o->file;
    j["format"] = io::kLabelFile.format;
    j["users"] = f.users();
    j["comparisons"] = f.comparisons();
    j["labels"] = f.labels(io::Split::kTrain);
    j["format_version"] = f.version();
    if (f.has_responses()) {
      f.check_embedding(comm);
      j["responses"] = f.responses().responses;
      j["prompts"] = f.responses().prompts;
      j["embedding_dim"] = f.responses().embedding_dim;
    }
    Partitions parts;
    for (io::Split s : io::kAllSplits) {
      if (!f.has(s)) continue;
      const std::uint64_t users = f.users_of(s);
      // The training split's partitions serve every split of the same users; new users are
      // balanced on their own labels.
      const bool own = s == io::Split::kTrain || s == io::Split::kNewUsers;
      LabelMatrix m = load_split(f, s, comm, own ? std::nullopt : std::optional<Partitions>(parts),
                                 LoadOptions{dups, false});
      if (s == io::Split::kTrain) parts = m.parts;
      SplitStats st = split_stats(comm, m);
      nlohmann::json js = {{"labels", st.labels},
                           {"ties", st.ties},
                           {"tie_share", st.labels ? double(st.ties) / st.labels : 0.0},
                           {"answers_per_user", to_json(st.per_user)},
                           {"answers_per_comparison", to_json(st.per_comparison)},
                           {"labelled_users", st.labelled_users},
                           {"labelled_comparisons", st.labelled_comparisons},
                           {"single_label_comparisons", st.single_label_comparisons}};
      if (s == io::Split::kTrain && f.has_responses()) {
        const ResponseStats rs = response_stats(comm, f.responses(), m);
        j["labelled_responses"] = rs.labelled_responses;
        j["responses_per_prompt"] = to_json(rs.per_prompt);
      }
      if (s == io::Split::kNewUsers) js["users"] = users;
      j["splits"][io::split_name(s)] = js;
      if (s == io::Split::kTrain) {
        j["labels"] = st.labels;
        j["ties"] = st.ties;
        j["tie_share"] = js["tie_share"];
        j["answers_per_user"] = js["answers_per_user"];
        j["answers_per_comparison"] = js["answers_per_comparison"];
        j["single_label_comparisons"] = st.single_label_comparisons;
        j["labelled_comparisons"] = st.labelled_comparisons;
        j["partition"] = {{"ranks", comm.size()},
                          {"user_bounds", parts.users.bounds()},
                          {"comparison_bounds", parts.comparisons.bounds()}};
      }
    }
    j["truth"] = f.has_truth();
    const io::LabelFile::Generator g = f.generator(comm);
    if (g.present) j["generator"] = {{"model", g.model}, {"seed", g.seed}};
    const io::IdsSummary ids = io::read_ids_summary(f, comm);
    j["ids"] = ids.present;
    if (ids.present) {
      j["imported"] = {{"ids", ids.datasets}, {"source", ids.source}};
      if (!ids.layout.empty()) j["imported"]["layout"] = ids.layout;
      if (!ids.embeddings.empty()) j["imported"]["embeddings"] = ids.embeddings;
    }
    if (comm.rank() != 0) return 0;
    if (o->json) {
      fmt::print("{}\n", j.dump());
      return 0;
    }
    auto summary = [](const nlohmann::json& s) {
      return fmt::format("min {} / median {} / max {}", s["min"].get<std::uint64_t>(),
                         s["median"].get<double>(), s["max"].get<std::uint64_t>());
    };
    fmt::print("{}: {} v{}\n", o->file, io::kLabelFile.format, f.version());
    fmt::print("  users        {}\n  comparisons  {}\n", f.users(), f.comparisons());
    if (f.has_responses()) {
      fmt::print("  prompts      {}\n  responses    {}", f.responses().prompts,
                 f.responses().responses);
      if (f.responses().embedding_dim)
        fmt::print(", embeddings of dimension {}", f.responses().embedding_dim);
      fmt::print("\n               with training labels:   {}\n",
                 j["labelled_responses"].get<std::uint64_t>());
      fmt::print("               responses per prompt:   {}\n", summary(j["responses_per_prompt"]));
    }
    for (io::Split sp : io::kAllSplits) {
      if (!j["splits"].contains(io::split_name(sp))) continue;
      const std::string name = io::split_name(sp);
      const nlohmann::json& s = j["splits"][name];
      fmt::print("  {:<11}  {} labels, ties {:.2f}%", name, s["labels"].get<std::uint64_t>(),
                 100.0 * s["tie_share"].get<double>());
      if (s.contains("users")) fmt::print(", {} users", s["users"].get<std::uint64_t>());
      fmt::print("\n               labels per user:        {}\n", summary(s["answers_per_user"]));
      fmt::print(
          "               labels per comparison:  {}; {} comparisons labelled, {} of them "
          "once\n",
          summary(s["answers_per_comparison"]), s["labelled_comparisons"].get<std::uint64_t>(),
          s["single_label_comparisons"].get<std::uint64_t>());
    }
    fmt::print("  ground truth {}\n", j["truth"].get<bool>() ? "yes" : "no");
    if (j.contains("imported")) {
      const nlohmann::json& im = j["imported"];
      std::string names;
      for (const auto& n : im["ids"]) names += (names.empty() ? "" : ", ") + n.get<std::string>();
      fmt::print("  imported     from {}{}; ids of {}{}\n", im["source"].get<std::string>(),
                 im.contains("layout") ? " (" + im["layout"].get<std::string>() + ")" : "",
                 names.empty() ? "none" : names,
                 im.contains("embeddings")
                     ? ", embeddings from " + im["embeddings"].get<std::string>()
                     : "");
    }
    if (j.contains("generator"))
      fmt::print("  generator    {} (seed {})\n", j["generator"]["model"].get<std::string>(),
                 j["generator"]["seed"].get<std::uint64_t>());
    return 0;
  };
}

}  // namespace pref::cli
