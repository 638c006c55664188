// The response layouts of pref import (docs/import.md): responses (CSV or JSON lines),
// summarize-from-feedback, prism and multipref, each read into one ResponseLabelTable by a
// PairBuilder that numbers users, prompts, responses and comparisons and checks every label.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>

#include "io/import.hpp"
#include "io/import_text.hpp"
#include "solver/base/hash.hpp"

namespace pref::io {

namespace {

using namespace detail;
using nlohmann::json;

// The names a layout gives the four ids of a label, for messages.
struct FieldNames {
  const char* user = "user";
  const char* prompt = "prompt";
  std::string first = "first", second = "second";
};

// Labels of (user, prompt, first response, second response) into the response structure:
// users, prompts and responses numbered in order of first appearance (a response by its id
// within its prompt), a comparison per unordered pair of responses (oriented as it first
// appears; a label of the other order becomes 1 - y).
class PairBuilder {
 public:
  PairBuilder(const Files& files, const ResponseOptions& o) : files_(files), o_(o) {}

  // given: the split the input gives, or none (then --validation-fraction and --test-fraction
  // hold out the user's labels of the prompt by a hash of the two ids, else train).
  void add(Position where, std::string_view user, std::string_view prompt, std::string_view first,
           std::string_view second, double label, std::string_view label_text,
           std::optional<Split> given, const FieldNames& names) {
    check_id(where, user, names.user, "user");
    check_id(where, prompt, names.prompt, "prompt");
    check_id(where, first, names.first.c_str(), "response");
    check_id(where, second, names.second.c_str(), "response");
    if (const std::string p = label_problem(label, label_text); !p.empty()) files_.fail(where, p);
    const std::uint32_t u = users_.get(user);
    const std::uint32_t q = prompts_.get(prompt);
    if (u == IdMap::kFull || q == IdMap::kFull)
      files_.fail(where, fmt::format("more than {} distinct {} ids", kMaxIds,
                                     u == IdMap::kFull ? "user" : "prompt"));
    const std::uint32_t a = response(where, q, first), b = response(where, q, second);
    if (a == b)
      files_.fail(where, fmt::format("{} and {} are the same response {} (of prompt {})",
                                     names.first, names.second, shown(first), shown(prompt)));
    const std::uint64_t key = (std::uint64_t{std::min(a, b)} << 32) | std::max(a, b);
    if (first_.size() >= kMaxIds - 1)
      files_.fail(where, fmt::format("more than {} distinct comparisons", kMaxIds - 1));
    bool added = false;
    const std::uint32_t c = pairs_.get(key, static_cast<std::uint32_t>(first_.size()), added);
    if (added) {
      first_.push_back(a);
      second_.push_back(b);
    }
    double v = label;
    if (first_[c] != a) {
      v = 1.0 - label;
      ++flipped_;
    }
    rows_.add(where, u, c, static_cast<float>(v), given ? *given : held_out(user, prompt));
  }

  ResponseLabelTable finish(Duplicates duplicates, const std::string& input) {
    ResponseLabelTable t;
    t.files = files_.paths;
    if (rows_.size() == 0) throw InputError(input + ": no labels");
    t.users = users_.take();
    t.prompts = prompts_.take();
    t.responses = responses_.take(sizeof(std::uint32_t));
    t.response_prompt = std::move(response_prompt_);
    t.response_where = std::move(response_where_);
    t.first = std::move(first_);
    t.second = std::move(second_);
    pairs_ = KeyMap();
    LabelRows::Result r =
        rows_.finish(duplicates, files_, input, [&](std::uint32_t u, std::uint32_t c) {
          return fmt::format("user {} and responses {} and {} of prompt {}", shown(t.users.id(u)),
                             shown(t.responses.id(t.first[c])), shown(t.responses.id(t.second[c])),
                             shown(t.prompts.id(t.response_prompt[t.first[c]])));
        });
    t.splits = std::move(r.splits);
    t.merged = r.merged;
    t.flipped = flipped_;
    return t;
  }

 private:
  void check_id(Position where, std::string_view id, const char* field, const char* kind) const {
    if (id.empty()) files_.fail(where, fmt::format("empty {} id ({})", kind, field));
    // A fixed-length HDF5 string ends at its first NUL: such an id would not read back.
    if (id.find('\0') != std::string_view::npos)
      files_.fail(where,
                  fmt::format("{} id {} ({}) contains a NUL character", kind, shown(id), field));
  }

  std::uint32_t response(Position where, std::uint32_t prompt, std::string_view id) {
    key_.assign(reinterpret_cast<const char*>(&prompt), sizeof prompt);
    key_.append(id);
    const std::uint64_t before = responses_.size();
    const std::uint32_t r = responses_.get(key_);
    if (r == IdMap::kFull)
      files_.fail(where, fmt::format("more than {} distinct responses", kMaxIds));
    if (responses_.size() != before) {
      response_prompt_.push_back(prompt);
      response_where_.push_back(where);
    }
    return r;
  }

  // The split of a label the input gives none: a hash of (seed, user, prompt) in [0, 1) against
  // the fractions, so that one user's labels of one prompt (e.g. an interaction's pairs) stay
  // together and the same input always splits the same way.
  Split held_out(std::string_view user, std::string_view prompt) const {
    if (!(o_.validation_fraction > 0) && !(o_.test_fraction > 0)) return Split::kTrain;
    std::uint64_t h = hash::mix(o_.seed ^ 0x686f6c646f7574ull);
    for (std::string_view part : {user, std::string_view("\x1f", 1), prompt})
      for (unsigned char ch : part) h = hash::mix(h ^ ch);
    const double x = static_cast<double>(h >> 11) * 0x1.0p-53;
    if (x < o_.validation_fraction) return Split::kValidation;
    if (x < o_.validation_fraction + o_.test_fraction) return Split::kTest;
    return Split::kTrain;
  }

  const Files& files_;
  const ResponseOptions& o_;
  IdMap users_, prompts_, responses_;
  std::string key_;
  std::vector<std::uint32_t> response_prompt_;
  std::vector<Position> response_where_;
  KeyMap pairs_;
  std::vector<std::uint32_t> first_, second_;
  std::uint64_t flipped_ = 0;
  LabelRows rows_;
};

// --- JSON fields ------------------------------------------------------------------------

// Parses one line as a JSON object; what names the kind of object a line holds.
json parse_object(const Files& files, Position where, const std::string& line, const char* what) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {
    files.fail(where, fmt::format("not valid JSON: {}", json_syntax_message(e.what())));
  }
  if (!j.is_object())
    files.fail(where,
               fmt::format("expected a JSON object ({}), found a JSON {}", what, j.type_name()));
  return j;
}

// The member `key` of object j (nullptr when absent or null).
const json* member(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

// An id: a string, or an integer as its decimal string. field: its name for messages.
std::string id_of(const Files& files, Position where, const json* v, const std::string& field) {
  if (!v) files.fail(where, fmt::format("missing key '{}'", field));
  if (v->is_string()) return v->get<std::string>();
  if (v->is_number_unsigned()) return std::to_string(v->get<std::uint64_t>());
  if (v->is_number_integer()) return std::to_string(v->get<std::int64_t>());
  files.fail(where, fmt::format("{} {} is not a string or an integer", field, shown(v->dump())));
}

const json& object_at(const Files& files, Position where, const json* v, const std::string& field) {
  if (!v) files.fail(where, fmt::format("missing key '{}'", field));
  if (!v->is_object())
    files.fail(where, fmt::format("{} is a JSON {}, expected an object", field, v->type_name()));
  return *v;
}

// --- the layouts ------------------------------------------------------------------------

// The names a header line may give the label column of the responses layout (the fifth).
bool is_label_header(std::string_view field) {
  const std::string f = lower(trim(field));
  return f == "label" || f == "labels" || f == "value" || f == "preference" || f == "y";
}

Split split_of(const Files& files, Position where, std::string_view name) {
  Split s;
  if (!split_named(name, s))
    files.fail(where,
               fmt::format("unknown split {} (expected train, validation or test)", shown(name)));
  return s;
}

// responses: user,prompt,first,second,label[,split] (CSV) or the same keys (JSON lines).
void read_responses(const std::string& path, InputFormat format, PairBuilder& b, const Files& files,
                    const std::function<void(std::uint64_t)>& progress, std::uint64_t& lines) {
  LineReader in(path, progress);
  const FieldNames names;
  std::string line;
  if (format == InputFormat::kJsonLines) {
    while (in.next(line)) {
      if (blank(line)) continue;
      const Position w = position(0, in.line());
      const json j = parse_object(files, w, line, "a label");
      const std::string user = id_of(files, w, member(j, "user"), "user");
      const std::string prompt = id_of(files, w, member(j, "prompt"), "prompt");
      const std::string first = id_of(files, w, member(j, "first"), "first");
      const std::string second = id_of(files, w, member(j, "second"), "second");
      const json* l = member(j, "label");
      if (!l) files.fail(w, "missing key 'label'");
      if (!l->is_number()) files.fail(w, fmt::format("label {} is not a number", shown(l->dump())));
      std::optional<Split> s;
      if (const json* sp = member(j, "split")) {
        if (!sp->is_string())
          files.fail(w, fmt::format("split {} is not a string", shown(sp->dump())));
        s = split_of(files, w, sp->get_ref<const std::string&>());
      }
      b.add(w, user, prompt, first, second, l->get<double>(), l->dump(), s, names);
    }
  } else {
    std::string record;
    std::vector<std::string> fields;
    std::size_t columns = 0;
    std::uint64_t first_record = 0;
    bool header = false;
    while (in.next(line)) {
      if (blank(line)) continue;
      const std::uint64_t start = in.line();
      const Position w = position(0, start);
      record.swap(line);
      std::size_t bad = 0;
      CsvStatus st;
      while ((st = split_csv(record, fields, bad)) == CsvStatus::kOpenQuote) {
        if (!in.next(line)) files.fail(w, "a quoted field is never closed (unmatched '\"')");
        record += '\n';
        record += line;
      }
      if (st == CsvStatus::kBadQuote)
        files.fail(w, fmt::format("field {}: text after the closing quote of a quoted field", bad));
      if (columns == 0) {
        if (fields.size() != 5 && fields.size() != 6)
          files.fail(w, fmt::format("expected 5 fields (user,prompt,first,second,label) or 6 "
                                    "(user,prompt,first,second,label,split), found {}",
                                    fields.size()));
        columns = fields.size();
        first_record = start;
        double v;
        if (!parse_number(fields[4], v) && is_label_header(fields[4])) {
          header = true;
          continue;
        }
      } else if (fields.size() != columns) {
        files.fail(w, fmt::format("expected {} fields ({}) as on line {}, found {}", columns,
                                  columns == 5 ? "user,prompt,first,second,label"
                                               : "user,prompt,first,second,label,split",
                                  first_record, fields.size()));
      }
      double v = 0;
      if (!parse_number(fields[4], v))
        files.fail(w, fmt::format("label {} is not a number{}", shown(fields[4]),
                                  start == first_record && !header
                                      ? " (a header line names the fifth column 'label')"
                                      : ""));
      b.add(w, fields[0], fields[1], fields[2], fields[3], v, fields[4],
            columns == 6 ? std::optional<Split>(split_of(files, w, fields[5])) : std::nullopt,
            names);
    }
  }
  in.check_end();
  lines += in.line();
}

// summarize-from-feedback: one comparison a line (README of openai/summarize-from-feedback).
void read_sff(const std::vector<std::string>& paths, PairBuilder& b, const Files& files,
              const std::function<void(std::uint64_t)>& progress, std::uint64_t& lines) {
  FieldNames names;
  names.user = "worker";
  names.prompt = "info.id";
  names.first = "summaries[0].text";
  names.second = "summaries[1].text";
  for (std::size_t f = 0; f < paths.size(); ++f) {
    LineReader in(paths[f], progress);
    std::string line;
    while (in.next(line)) {
      if (blank(line)) continue;
      const Position w = position(f, in.line());
      const json j = parse_object(files, w, line, "a comparison");
      const std::string worker = id_of(files, w, member(j, "worker"), "worker");
      const json& info = object_at(files, w, member(j, "info"), "info");
      const std::string post = id_of(files, w, member(info, "id"), "info.id");
      const json* sums = member(j, "summaries");
      if (!sums) files.fail(w, "missing key 'summaries'");
      if (!sums->is_array() || sums->size() != 2)
        files.fail(w, fmt::format("summaries is {}, expected an array of 2 summaries",
                                  sums->is_array() ? fmt::format("an array of {}", sums->size())
                                                   : "a JSON " + std::string(sums->type_name())));
      std::string text[2];
      for (int k = 0; k < 2; ++k) {
        const std::string field = fmt::format("summaries[{}]", k);
        const json& s = object_at(files, w, &(*sums)[k], field);
        const json* t = member(s, "text");
        if (!t) files.fail(w, fmt::format("missing key '{}.text'", field));
        if (!t->is_string())
          files.fail(w, fmt::format("{}.text {} is not a string", field, shown(t->dump())));
        text[k] = t->get<std::string>();
      }
      const json* choice = member(j, "choice");
      if (!choice) files.fail(w, "missing key 'choice'");
      if (!choice->is_number_integer() ||
          (choice->get<std::int64_t>() != 0 && choice->get<std::int64_t>() != 1))
        files.fail(w, fmt::format("choice {} is not 0 or 1 (the index of the preferred summary)",
                                  shown(choice->dump())));
      const json* split = member(j, "split");
      if (!split) files.fail(w, "missing key 'split'");
      if (!split->is_string())
        files.fail(w, fmt::format("split {} is not a string", shown(split->dump())));
      const std::string& sp = split->get_ref<const std::string&>();
      Split s;
      if (sp == "train")
        s = Split::kTrain;
      else if (sp == "valid1")
        s = Split::kValidation;
      else if (sp == "valid2")
        s = Split::kTest;
      else
        files.fail(w,
                   fmt::format("unknown split {} (expected train, valid1 or valid2)", shown(sp)));
      // choice 0: summaries[0] preferred, the label 1 of the pair (summaries[0], summaries[1]).
      const bool first_won = choice->get<std::int64_t>() == 0;
      b.add(w, worker, post, text[0], text[1], first_won ? 1.0 : 0.0, choice->dump(), s, names);
    }
    in.check_end();
    lines += in.line();
  }
}

// prism: utterances.jsonl, one rated response a line (long format: an interaction's responses
// on several lines), paired within each interaction.
void read_prism(const std::string& path, const ResponseOptions& o, PairBuilder& b,
                const Files& files, const std::function<void(std::uint64_t)>& progress,
                std::uint64_t& lines, std::uint64_t& skipped, std::string& skipped_what) {
  struct Utterance {
    Position where;
    std::string user, id;
    bool chosen = false, rated = false;
    double score = 0;
  };
  std::vector<Utterance> rows;
  IdMap interactions;
  std::vector<std::vector<std::uint32_t>> members;  // rows of each interaction
  std::vector<std::string> interaction_ids;
  const bool by_score = o.pairs == PrismPairs::kScores;
  LineReader in(path, progress);
  std::string line;
  while (in.next(line)) {
    if (blank(line)) continue;
    const Position w = position(0, in.line());
    const json j = parse_object(files, w, line, "an utterance");
    Utterance u;
    u.where = w;
    u.user = id_of(files, w, member(j, "user_id"), "user_id");
    const std::string inter = id_of(files, w, member(j, "interaction_id"), "interaction_id");
    u.id = id_of(files, w, member(j, "utterance_id"), "utterance_id");
    if (const json* c = member(j, "if_chosen")) {
      if (c->is_boolean())
        u.chosen = c->get<bool>();
      else if (c->is_number_integer() &&
               (c->get<std::int64_t>() == 0 || c->get<std::int64_t>() == 1))
        u.chosen = c->get<std::int64_t>() == 1;
      else
        files.fail(w, fmt::format("if_chosen {} is not true or false", shown(c->dump())));
    } else if (!by_score) {
      files.fail(w, "missing key 'if_chosen' (or pass --pairs scores)");
    }
    if (const json* s = member(j, "score")) {
      if (!s->is_number()) files.fail(w, fmt::format("score {} is not a number", shown(s->dump())));
      u.score = s->get<double>();
      if (!std::isfinite(u.score))
        files.fail(w, fmt::format("score {} is not finite", shown(s->dump())));
      u.rated = true;
    }
    if (inter.empty()) files.fail(w, "empty prompt id (interaction_id)");
    const std::uint32_t k = interactions.get(inter);
    if (k == IdMap::kFull) files.fail(w, fmt::format("more than {} interactions", kMaxIds));
    if (k == members.size()) {
      members.emplace_back();
      interaction_ids.push_back(inter);
    }
    if (!members[k].empty() && rows[members[k].front()].user != u.user)
      files.fail(w, fmt::format("interaction {} is of user {} on {}, here of user {}", shown(inter),
                                shown(rows[members[k].front()].user),
                                files.ref(rows[members[k].front()].where, w), shown(u.user)));
    members[k].push_back(static_cast<std::uint32_t>(rows.size()));
    rows.push_back(std::move(u));
  }
  in.check_end();
  lines += in.line();
  FieldNames names;
  names.user = "user_id";
  names.prompt = "interaction_id";
  names.first = "utterance_id";
  names.second = "utterance_id";
  for (std::size_t k = 0; k < members.size(); ++k) {
    const std::vector<std::uint32_t>& m = members[k];
    const std::string& inter = interaction_ids[k];
    std::uint64_t added = 0;
    if (by_score) {
      for (std::size_t x = 0; x < m.size(); ++x) {
        for (std::size_t y = x + 1; y < m.size(); ++y) {
          const Utterance &a = rows[m[x]], &c = rows[m[y]];
          if (!a.rated || !c.rated) continue;
          const double diff = a.score - c.score;
          const double label = std::abs(diff) <= o.tie_band ? 0.5 : diff > 0 ? 1.0 : 0.0;
          b.add(std::max(a.where, c.where), a.user, inter, a.id, c.id, label, "", std::nullopt,
                names);
          ++added;
        }
      }
    } else {
      for (std::uint32_t x : m) {
        if (!rows[x].chosen) continue;
        for (std::uint32_t y : m) {
          if (rows[y].chosen) continue;
          b.add(std::max(rows[x].where, rows[y].where), rows[x].user, inter, rows[x].id, rows[y].id,
                1.0, "1", std::nullopt, names);
          ++added;
        }
      }
    }
    if (added == 0) ++skipped;
  }
  if (skipped)
    skipped_what = by_score ? "interactions without two rated responses"
                            : "interactions without a chosen and another response";
}

// multipref: one comparison a line, each with its annotations; one label per annotation.
void read_multipref(const std::string& path, PairBuilder& b, const Files& files,
                    const std::function<void(std::uint64_t)>& progress, std::uint64_t& lines,
                    std::uint64_t& skipped, std::string& skipped_what) {
  LineReader in(path, progress);
  std::string line;
  while (in.next(line)) {
    if (blank(line)) continue;
    const Position w = position(0, in.line());
    const json j = parse_object(files, w, line, "a comparison");
    const std::string prompt = id_of(files, w, member(j, "prompt_id"), "prompt_id");
    const std::string cid = id_of(files, w, member(j, "comparison_id"), "comparison_id");
    // A completion is named by its comparison and side: MultiPref gives no response ids, and
    // completions are long texts.
    const std::string a = cid + ":a", c = cid + ":b";
    for (const char* group : {"normal_worker_annotations", "expert_worker_annotations"}) {
      const json* anns = member(j, group);
      if (!anns) continue;
      if (!anns->is_array())
        files.fail(w, fmt::format("{} is a JSON {}, expected an array", group, anns->type_name()));
      for (std::size_t k = 0; k < anns->size(); ++k) {
        const std::string field = fmt::format("{}[{}]", group, k);
        const json& ann = object_at(files, w, &(*anns)[k], field);
        const json* pref = member(ann, "overall_pref");
        if (!pref) {
          ++skipped;
          continue;
        }
        FieldNames names;
        const std::string evaluator_field = field + ".evaluator";
        names.user = evaluator_field.c_str();
        names.prompt = "prompt_id";
        names.first = "comparison_id";
        names.second = "comparison_id";
        const std::string evaluator = id_of(files, w, member(ann, "evaluator"), evaluator_field);
        if (!pref->is_string())
          files.fail(w,
                     fmt::format("{}.overall_pref {} is not a string", field, shown(pref->dump())));
        const std::string p = lower(trim(pref->get_ref<const std::string&>()));
        double label;
        if (p == "a-is-clearly-better" || p == "a-is-slightly-better" || p == "a-is-better")
          label = 1.0;
        else if (p == "tie")
          label = 0.5;
        else if (p == "b-is-clearly-better" || p == "b-is-slightly-better" || p == "b-is-better")
          label = 0.0;
        else
          files.fail(w, fmt::format("{}.overall_pref {} is not one of A-is-clearly-better, "
                                    "A-is-slightly-better, Tie, B-is-slightly-better, "
                                    "B-is-clearly-better",
                                    field, shown(pref->get_ref<const std::string&>())));
        b.add(w, evaluator, prompt, a, c, label, "", std::nullopt, names);
      }
    }
  }
  in.check_end();
  lines += in.line();
  if (skipped) skipped_what = "annotations without overall_pref";
}

// The files of a summarize-from-feedback input: the file itself, or a folder's *.json and
// *.jsonl files in name order (the public set's comparisons/batch*.json, cnndm*.json, ...).
std::vector<std::string> sff_files(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return {path};
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    const std::string ext = lower(e.path().extension().string());
    if ((ext == ".json" || ext == ".jsonl") && !e.is_directory()) out.push_back(e.path().string());
  }
  if (ec) throw InputError(path + ": cannot list the folder: " + ec.message());
  std::sort(out.begin(), out.end());
  if (out.empty()) throw InputError(path + ": no *.json or *.jsonl files in the folder");
  return out;
}

}  // namespace

ResponseLabelTable read_response_labels(const std::string& path, Layout layout,
                                        const ResponseOptions& options,
                                        const std::function<void(std::uint64_t)>& progress) {
  if (layout == Layout::kLabels)
    throw Error("read_response_labels: the labels layout has no responses");
  Files files;
  files.paths =
      layout == Layout::kSummarizeFromFeedback ? sff_files(path) : std::vector<std::string>{path};
  PairBuilder b(files, options);
  std::uint64_t lines = 0, skipped = 0;
  std::string skipped_what;
  switch (layout) {
    case Layout::kResponses:
      read_responses(path, resolve_input_format(path, options.format), b, files, progress, lines);
      break;
    case Layout::kSummarizeFromFeedback:
      read_sff(files.paths, b, files, progress, lines);
      break;
    case Layout::kPrism:
      read_prism(path, options, b, files, progress, lines, skipped, skipped_what);
      break;
    case Layout::kMultiPref:
      read_multipref(path, b, files, progress, lines, skipped, skipped_what);
      break;
    case Layout::kLabels:
      break;
  }
  ResponseLabelTable t = b.finish(options.duplicates, path);
  t.lines = lines;
  t.skipped = skipped;
  t.skipped_what = skipped_what;
  return t;
}

}  // namespace pref::io
