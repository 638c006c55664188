#include "io/import.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "io/embeddings_file.hpp"
#include "io/import_text.hpp"
#include "io/output_file.hpp"
#include "solver/base/log.hpp"

namespace pref::io {

InputFormat parse_input_format(const std::string& name, const std::string& option) {
  return kInputFormatNames.parse(name, option);
}

InputFormat resolve_input_format(const std::string& path, InputFormat format) {
  if (format != InputFormat::kAuto) return format;
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jsonl" || ext == ".ndjson" ? InputFormat::kJsonLines : InputFormat::kCsv;
}

std::string IdTable::id(std::uint64_t k) const {
  const char* p = chars.data() + k * width;
  return std::string(p, strnlen(p, width));
}

namespace {

using namespace detail;

// The names a header line may give the label column (the third).
bool is_label_header(std::string_view field) {
  const std::string f = lower(trim(field));
  return f == "label" || f == "labels" || f == "value" || f == "preference" || f == "y";
}

class TableReader {
 public:
  TableReader(std::string path, Duplicates duplicates,
              const std::function<void(std::uint64_t)>& progress)
      : path_(std::move(path)), duplicates_(duplicates), progress_(progress) {
    files_.paths = {path_};
  }

  LabelTable read(InputFormat format) {
    LineReader in(path_, progress_);
    if (format == InputFormat::kJsonLines)
      read_jsonl(in);
    else
      read_csv(in);
    in.check_end();
    lines_ = in.line();
    return finish();
  }

 private:
  [[noreturn]] void fail(std::uint64_t line, const std::string& msg) const {
    files_.fail(position(0, line), msg);
  }

  void read_csv(LineReader& in) {
    std::string line, record;
    std::vector<std::string> fields;
    std::size_t columns = 0;  // set by the first record
    std::uint64_t first_record = 0;
    while (in.next(line)) {
      if (blank(line)) continue;
      const std::uint64_t start = in.line();
      record.swap(line);
      std::size_t bad = 0;
      CsvStatus st;
      while ((st = split_csv(record, fields, bad)) == CsvStatus::kOpenQuote) {
        if (!in.next(line)) fail(start, "a quoted field is never closed (unmatched '\"')");
        record += '\n';
        record += line;
      }
      if (st == CsvStatus::kBadQuote)
        fail(start, fmt::format("field {}: text after the closing quote of a quoted field", bad));
      if (columns == 0) {
        if (fields.size() != 3 && fields.size() != 4)
          fail(start, fmt::format("expected 3 fields (user,comparison,label) or 4 "
                                  "(user,comparison,label,split), found {}",
                                  fields.size()));
        columns = fields.size();
        first_record = start;
        double v;
        // A header names its columns: its label field is no number but a column name.
        if (!parse_number(fields[2], v) && is_label_header(fields[2])) {
          header_ = true;
          continue;
        }
      } else if (fields.size() != columns) {
        fail(start,
             fmt::format("expected {} fields ({}) as on line {}, found {}", columns,
                         columns == 3 ? "user,comparison,label" : "user,comparison,label,split",
                         first_record, fields.size()));
      }
      double v = 0;
      if (!parse_number(fields[2], v))
        fail(start, fmt::format("label {} is not a number{}", shown(fields[2]),
                                start == first_record && !header_
                                    ? " (a header line names the third column 'label')"
                                    : ""));
      add(start, fields[0], fields[1], v, fields[2],
          columns == 4 ? split_of(start, fields[3]) : Split::kTrain);
    }
  }

  void read_jsonl(LineReader& in) {
    std::string line;
    while (in.next(line)) {
      if (blank(line)) continue;
      const std::uint64_t n = in.line();
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        // Syntax errors and number overflows.
        fail(n, fmt::format("not valid JSON: {}", json_syntax_message(e.what())));
      }
      if (!j.is_object())
        fail(n, fmt::format("expected a JSON object with keys user, comparison, label, found "
                            "a JSON {}",
                            j.type_name()));
      const std::string user = json_id(n, j, "user");
      const std::string comparison = json_id(n, j, "comparison");
      const auto l = j.find("label");
      if (l == j.end()) fail(n, "missing key 'label'");
      if (!l->is_number()) fail(n, fmt::format("label {} is not a number", shown(l->dump())));
      Split s = Split::kTrain;
      const auto sp = j.find("split");
      if (sp != j.end() && !sp->is_null()) {
        if (!sp->is_string()) fail(n, fmt::format("split {} is not a string", shown(sp->dump())));
        s = split_of(n, sp->get_ref<const std::string&>());
      }
      add(n, user, comparison, l->get<double>(), l->dump(), s);
    }
  }

  std::string json_id(std::uint64_t n, const nlohmann::json& j, const char* key) const {
    const auto it = j.find(key);
    if (it == j.end()) fail(n, fmt::format("missing key '{}'", key));
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number_unsigned()) return std::to_string(it->get<std::uint64_t>());
    if (it->is_number_integer()) return std::to_string(it->get<std::int64_t>());
    fail(n, fmt::format("{} id {} is not a string or an integer", key, shown(it->dump())));
  }

  Split split_of(std::uint64_t n, std::string_view name) const {
    Split s;
    if (!split_named(name, s))
      fail(n, fmt::format("unknown split {} (expected train, validation or test)", shown(name)));
    return s;
  }

  void check_id(std::uint64_t n, std::string_view id, const char* kind) const {
    if (id.empty()) fail(n, fmt::format("empty {} id", kind));
    // A fixed-length HDF5 string ends at its first NUL: such an id would not read back.
    if (id.find('\0') != std::string_view::npos)
      fail(n, fmt::format("{} id {} contains a NUL character", kind, shown(id)));
  }

  void add(std::uint64_t n, std::string_view user, std::string_view comparison, double v,
           std::string_view text, Split s) {
    check_id(n, user, "user");
    check_id(n, comparison, "comparison");
    if (const std::string p = label_problem(v, text); !p.empty()) fail(n, p);
    const std::uint32_t u = users_.get(user), c = comparisons_.get(comparison);
    if (u == IdMap::kFull || c == IdMap::kFull)
      fail(n, fmt::format("more than {} distinct {} ids", kMaxIds,
                          u == IdMap::kFull ? "user" : "comparison"));
    rows_.add(position(0, n), u, c, static_cast<float>(v), s);
  }

  LabelTable finish() {
    LabelTable t;
    t.lines = lines_;
    if (rows_.size() == 0)
      throw InputError(fmt::format("{}: no labels ({})", path_,
                                   lines_ == 0 ? "the file is empty"
                                   : header_   ? "only a header line"
                                               : "only blank lines"));
    t.users = users_.take();
    t.comparisons = comparisons_.take();
    LabelRows::Result r =
        rows_.finish(duplicates_, files_, path_, [&](std::uint32_t u, std::uint32_t c) {
          return fmt::format("user {} and comparison {}", shown(t.users.id(u)),
                             shown(t.comparisons.id(c)));
        });
    t.splits = std::move(r.splits);
    t.merged = r.merged;
    return t;
  }

  std::string path_;
  Duplicates duplicates_;
  std::function<void(std::uint64_t)> progress_;
  Files files_;
  std::uint64_t lines_ = 0;
  bool header_ = false;
  IdMap users_, comparisons_;
  LabelRows rows_;
};

// Runs fn on rank 0 while the other ranks sleep at a barrier (they would spin in the agreement's
// collective otherwise, taking the cores of a shared node from the parse). fn's error is
// rethrown on rank 0 after the barrier, so that every rank reaches it.
void on_root_while_others_sleep(const mpi::Comm& comm, const std::function<void()>& fn) {
  std::exception_ptr error;
  if (comm.rank() == 0) {
    try {
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  }
  mpi::sleeping_barrier(comm);
  if (error) std::rethrow_exception(error);
}

void write_ids(hid_t group, const char* name, const IdTable& t, std::uint64_t size,
               std::uint64_t width, const mpi::Comm& comm, const std::string& what) {
  h5::Handle d = h5::create_string_dataset(group, name, size, width, what);
  const h5::Handle type = h5::string_type(width, what);
  const bool mine = comm.rank() == 0;
  const char none = 0;
  h5::write_rows_raw(d.get(), type.get(), 0, mine ? size : 0, mine ? t.chars.data() : &none, comm,
                     what);
}

// What every rank needs to create the same datasets (every create() is collective and must see
// identical arguments), filled on rank 0 and broadcast.
struct Meta {
  std::array<std::uint64_t, 3> labels{};
  std::array<std::uint64_t, 3> quantized{};
  void of(const std::array<LabelColumns, 3>& splits) {
    for (int s = 0; s < 3; ++s) {
      const auto& v = splits[s].value;
      labels[s] = v.size();
      quantized[s] = std::all_of(v.begin(), v.end(), [](float x) { return is_quantizable(x); });
    }
  }
};

// The label splits: /labels always (the readers made sure it is not empty), the held-out
// splits only when present. Rank 0 holds the rows.
void write_splits(LabelFileWriter& writer, std::array<LabelColumns, 3>& splits, const Meta& m,
                  const mpi::Comm& comm) {
  const LabelColumns none;
  for (int s = 0; s < 3; ++s) {
    if (s != 0 && m.labels[s] == 0) continue;
    writer.create(kImportSplits[s], m.labels[s], m.quantized[s] != 0);
    writer.write(kImportSplits[s], 0, comm.rank() == 0 ? splits[s] : none);
    splits[s] = {};
  }
}

// The embeddings' rows for the responses (rank 0): src[r] is the row of EMB.h5 of response r
// once the responses are renumbered in the order of those rows (ties by first appearance), which
// renumber() does. A response without an embedding is an InputError naming it.
struct EmbeddingMatch {
  std::vector<std::uint64_t> src;  // per response (new order): its row of EMB.h5
  std::uint64_t unused = 0;        // rows of EMB.h5 no response uses
};

EmbeddingMatch match_embeddings(const std::string& path, const std::vector<std::string>& ids,
                                ResponseLabelTable& t) {
  IdMap row_of;  // ids are unique, so an id's number is its row
  for (std::uint64_t k = 0; k < ids.size(); ++k) {
    const std::uint32_t row = row_of.get(ids[k]);
    if (row != k)
      throw InputError(
          fmt::format("{}: /ids: row {} repeats the id {} of row {}", path, k, shown(ids[k]), row),
          k);
  }
  const std::uint64_t R = t.responses.size;
  std::vector<std::uint64_t> row(R);
  for (std::uint64_t r = 0; r < R; ++r) {
    const std::string id = t.responses.id(r);
    const std::uint32_t k = row_of.find(id);
    if (k == IdMap::kFull)
      throw InputError(fmt::format("{}: no embedding for response {} (prompt {}, first used at {})",
                                   path, shown(id), shown(t.prompts.id(t.response_prompt[r])),
                                   t.where(r)));
    row[r] = k;
  }
  // New order: by row of EMB.h5, then by first appearance.
  std::vector<std::uint32_t> order(R);
  for (std::uint64_t r = 0; r < R; ++r) order[r] = static_cast<std::uint32_t>(r);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return row[a] < row[b]; });
  std::vector<std::uint32_t> new_of(R);
  for (std::uint64_t k = 0; k < R; ++k) new_of[order[k]] = static_cast<std::uint32_t>(k);
  EmbeddingMatch m;
  m.src.resize(R);
  std::uint64_t distinct = 0;
  for (std::uint64_t k = 0; k < R; ++k) {
    m.src[k] = row[order[k]];
    if (k == 0 || m.src[k] != m.src[k - 1]) ++distinct;
  }
  m.unused = ids.size() - distinct;
  // Renumber the responses.
  IdTable ids_new;
  ids_new.size = R;
  ids_new.width = t.responses.width;
  ids_new.chars.assign(t.responses.chars.size(), '\0');
  std::vector<std::uint32_t> prompt_new(R);
  std::vector<std::uint64_t> where_new(R);
  for (std::uint64_t r = 0; r < R; ++r) {
    const std::uint32_t k = new_of[r];
    std::memcpy(ids_new.chars.data() + k * t.responses.width,
                t.responses.chars.data() + r * t.responses.width, t.responses.width);
    prompt_new[k] = t.response_prompt[r];
    where_new[k] = t.response_where[r];
  }
  t.responses = std::move(ids_new);
  t.response_prompt = std::move(prompt_new);
  t.response_where = std::move(where_new);
  for (auto* col : {&t.first, &t.second})
    for (std::uint32_t& r : *col) r = new_of[r];
  return m;
}

ImportSummary import_label_layout(const ImportOptions& o, const mpi::Comm& comm) {
  // The output is checked first: a refused --out should not wait for a long parse.
  AtomicOutput output(o.out, o.overwrite, comm, "--out", {o.input});
  LabelTable t;
  mpi::agree(comm, [&] {
    on_root_while_others_sleep(comm, [&] {
      t = read_label_table(o.input, o.read.format, o.duplicates, [&](std::uint64_t lines) {
        log::info(comm, "{}: read {} lines", o.input, lines);
      });
    });
  });
  std::array<std::uint64_t, 6> ids{t.users.size,        t.users.width, t.comparisons.size,
                                   t.comparisons.width, t.lines,       t.merged};
  Meta m;
  if (comm.rank() == 0) m.of(t.splits);
  mpi::broadcast(comm, std::span<std::uint64_t>(ids));
  mpi::broadcast(comm, std::span<std::uint64_t>(m.labels));
  mpi::broadcast(comm, std::span<std::uint64_t>(m.quantized));
  ImportSummary sum;
  sum.users = ids[0];
  sum.comparisons = ids[2];
  sum.lines = ids[4];
  sum.merged = ids[5];
  sum.labels = m.labels;

  LabelFileWriter writer(output.temp_path(), comm, sum.users, sum.comparisons);
  write_splits(writer, t.splits, m, comm);
  const std::string what = output.path() + ": /ids";
  h5::Handle g = h5::create_group(writer.handle(), "/ids", what);
  h5::write_string_attribute(g.get(), "source", o.input, what);
  write_ids(g.get(), "users", t.users, sum.users, ids[1], comm, what + "/users");
  write_ids(g.get(), "comparisons", t.comparisons, sum.comparisons, ids[3], comm,
            what + "/comparisons");
  g.reset();
  writer.close();
  output.commit();
  return sum;
}

ImportSummary import_response_layout(const ImportOptions& o, const mpi::Comm& comm) {
  std::vector<std::string> inputs = {o.input};
  if (!o.embeddings.empty()) inputs.push_back(o.embeddings);
  AtomicOutput output(o.out, o.overwrite, comm, "--out", inputs);
  const bool with_embeddings = !o.embeddings.empty();
  ResponseLabelTable t;
  EmbeddingsInfo info;
  EmbeddingMatch match;
  ResponseOptions ro = o.read;
  ro.duplicates = o.duplicates;
  mpi::agree(comm, [&] {
    on_root_while_others_sleep(comm, [&] {
      // The embeddings file is checked (and its ids read) before the long parse.
      std::vector<std::string> emb_ids;
      if (with_embeddings) emb_ids = read_embedding_ids(o.embeddings, info);
      t = read_response_labels(o.input, o.layout, ro, [&](std::uint64_t lines) {
        log::info(comm, "{}: read {} lines", o.input, lines);
      });
      if (with_embeddings) match = match_embeddings(o.embeddings, emb_ids, t);
    });
  });
  std::array<std::uint64_t, 18> meta{};
  Meta m;
  if (comm.rank() == 0) {
    m.of(t.splits);
    meta = {t.users.size,     t.users.width,     t.prompts.size, t.prompts.width,
            t.responses.size, t.responses.width, t.first.size(), t.lines,
            t.merged,         t.flipped,         t.skipped,      t.files.size(),
            info.rows,        info.dim,          info.type_size, match.unused};
  }
  mpi::broadcast(comm, std::span<std::uint64_t>(meta));
  mpi::broadcast(comm, std::span<std::uint64_t>(m.labels));
  mpi::broadcast(comm, std::span<std::uint64_t>(m.quantized));
  ImportSummary sum;
  sum.users = meta[0];
  sum.prompts = meta[2];
  sum.responses = meta[4];
  sum.comparisons = meta[6];
  sum.lines = meta[7];
  sum.merged = meta[8];
  sum.flipped = meta[9];
  sum.skipped = meta[10];
  sum.files = meta[11];
  sum.labels = m.labels;
  sum.skipped_what = mpi::broadcast(comm, t.skipped_what);
  info.rows = meta[12];
  info.dim = meta[13];
  info.type_size = meta[14];
  if (with_embeddings) {
    sum.embedding_dim = info.dim;
    sum.embeddings_unused = meta[15];
    sum.embedding_type = info.type_name();
    match.src.resize(sum.responses);
    mpi::broadcast(comm, std::span<std::uint64_t>(match.src));
  }

  LabelFileWriter writer(output.temp_path(), comm, sum.users, sum.comparisons,
                         /*with_responses=*/true);
  write_splits(writer, t.splits, m, comm);
  const std::string rwhat = output.path() + ": /responses";
  const h5::Handle etype = embedding_file_type(info.type_size, rwhat);
  writer.create_responses(sum.responses, sum.prompts, with_embeddings ? info.dim : 0, etype.get());
  const bool root = comm.rank() == 0;
  const std::vector<std::uint32_t> empty;
  writer.write_response_prompts(0, root ? t.response_prompt : empty);
  writer.write_pairs(0, root ? t.first : empty, root ? t.second : empty);
  if (with_embeddings)
    copy_embedding_rows(o.embeddings, info, match.src, writer.embedding_dataset(), comm,
                        rwhat + "/embedding");
  const std::string what = output.path() + ": /ids";
  h5::Handle g = h5::create_group(writer.handle(), "/ids", what);
  h5::write_string_attribute(g.get(), "source", o.input, what);
  h5::write_string_attribute(g.get(), "layout", layout_name(o.layout), what);
  if (with_embeddings) h5::write_string_attribute(g.get(), "embeddings", o.embeddings, what);
  write_ids(g.get(), "users", t.users, sum.users, meta[1], comm, what + "/users");
  write_ids(g.get(), "prompts", t.prompts, sum.prompts, meta[3], comm, what + "/prompts");
  write_ids(g.get(), "responses", t.responses, sum.responses, meta[5], comm, what + "/responses");
  g.reset();
  writer.close();
  output.commit();
  return sum;
}

}  // namespace

LabelTable read_label_table(const std::string& path, InputFormat format, Duplicates duplicates,
                            const std::function<void(std::uint64_t)>& progress) {
  TableReader reader(path, duplicates, progress);
  return reader.read(resolve_input_format(path, format));
}

Layout parse_layout(const std::string& name, const std::string& option) {
  if (const std::optional<Layout> l = kLayoutNames.find(name)) return *l;
  throw InputError(option + ": unknown layout '" + name + "' (expected " + kLayoutNames.list() +
                   ")");
}

const char* layout_name(Layout l) {
  return kLayoutNames.name(l);
}

PrismPairs parse_prism_pairs(const std::string& name, const std::string& option) {
  if (const std::optional<PrismPairs> p = kPrismPairsNames.find(name)) return *p;
  throw InputError(option + ": unknown pairing '" + name + "' (expected " +
                   kPrismPairsNames.list() + ")");
}

Duplicates default_duplicates(Layout l) {
  return l == Layout::kLabels ? Duplicates::kError : Duplicates::kMean;
}

std::string ResponseLabelTable::where(std::uint64_t r) const {
  const detail::Position p = response_where.at(r);
  return fmt::format("{}: line {}", files.at(detail::file_of(p)), detail::line_of(p));
}

ImportSummary import_file(const ImportOptions& o, const mpi::Comm& comm) {
  mpi::agree(comm, [&] {
    if (o.layout == Layout::kLabels && !o.embeddings.empty())
      throw InputError(
          "--embeddings: needs a layout with responses (--layout responses, "
          "summarize-from-feedback, prism or multipref), not --layout labels");
  });
  return o.layout == Layout::kLabels ? import_label_layout(o, comm)
                                     : import_response_layout(o, comm);
}

ImportSummary import_labels(const std::string& input, InputFormat format, Duplicates duplicates,
                            const std::string& out, bool overwrite, const mpi::Comm& comm) {
  ImportOptions o;
  o.input = input;
  o.read.format = format;
  o.duplicates = duplicates;
  o.out = out;
  o.overwrite = overwrite;
  return import_file(o, comm);
}

}  // namespace pref::io
