#include "io/import.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_map>
#include <utility>

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

constexpr std::uint64_t kProgressEvery = 5'000'000;
constexpr std::uint8_t kRemoved = 0xFF;  // split code of a label folded into an earlier one

// A value for a one-line message: quoted, control characters escaped (an id may hold a newline
// from a quoted CSV field), long values shortened.
std::string shown(std::string_view s) {
  constexpr std::size_t kMax = 60;
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F)
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  if (s.size() > kMax) out += "...";
  return out + "'";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Parses a whole field as a decimal number (leading '+' and surrounding blanks allowed).
bool parse_number(std::string_view text, double& v) {
  std::string_view t = trim(text);
  if (!t.empty() && t.front() == '+') t.remove_prefix(1);
  if (t.empty()) return false;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (end != t.data() + t.size()) return false;
  if (ec == std::errc::result_out_of_range) {
    // from_chars leaves v unset on overflow and underflow; strtod gives the tiny value, and an
    // overflow is a (finite) value far outside [0, 1] rather than infinity, which no one wrote.
    v = std::strtod(std::string(t).c_str(), nullptr);
    if (std::isinf(v)) v = std::copysign(std::numeric_limits<double>::max(), v);
    return true;
  }
  return ec == std::errc();
}

// Splits one CSV record (RFC 4180: fields separated by commas; a field in double quotes may
// hold commas, newlines and doubled quotes). Blanks around a field are dropped.
enum class CsvStatus { kOk, kOpenQuote, kBadQuote };
CsvStatus split_csv(std::string_view rec, std::vector<std::string>& fields, std::size_t& bad) {
  fields.clear();
  std::size_t i = 0;
  const std::size_t n = rec.size();
  while (true) {
    std::string& f = fields.emplace_back();
    while (i < n && (rec[i] == ' ' || rec[i] == '\t')) ++i;
    if (i < n && rec[i] == '"') {
      ++i;
      while (true) {
        const std::size_t q = rec.find('"', i);
        if (q == std::string_view::npos) return CsvStatus::kOpenQuote;
        f.append(rec.substr(i, q - i));
        i = q + 1;
        if (i < n && rec[i] == '"') {
          f += '"';
          ++i;
        } else {
          break;
        }
      }
      while (i < n && (rec[i] == ' ' || rec[i] == '\t')) ++i;
      if (i < n && rec[i] != ',') {
        bad = fields.size();
        return CsvStatus::kBadQuote;
      }
    } else {
      // A quote inside an unquoted field is kept as it is (as Python's csv module does).
      const std::size_t c = std::min(rec.find(',', i), n);
      f.assign(trim(rec.substr(i, c - i)));
      i = c;
    }
    if (i >= n) return CsvStatus::kOk;
    ++i;  // the comma; a trailing comma yields a last, empty field
  }
}

struct TransparentHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// String ids to dense ints in order of first appearance.
class IdMap {
 public:
  static constexpr std::uint32_t kFull = 0xFFFFFFFF;  // kMaxIds ids taken: no id is left
  // Returns the id of s (the caller has checked that s is a valid id), or kFull.
  std::uint32_t get(std::string_view s) {
    auto it = map_.find(s);
    if (it != map_.end()) return it->second;
    if (map_.size() >= kMaxIds) return kFull;
    const auto id = static_cast<std::uint32_t>(map_.size());
    map_.emplace(std::string(s), id);
    width_ = std::max(width_, s.size());
    return id;
  }
  // Moves the map into the fixed-width layout of the file and frees it.
  IdTable take() {
    IdTable t;
    t.size = map_.size();
    t.width = width_;
    t.chars.assign(t.size * t.width, '\0');
    for (const auto& [s, id] : map_) std::memcpy(t.chars.data() + id * t.width, s.data(), s.size());
    map_ = {};
    return t;
  }

 private:
  std::unordered_map<std::string, std::uint32_t, TransparentHash, std::equal_to<>> map_;
  std::size_t width_ = 1;
};

// The names a header line may give the label column (the third).
bool is_label_header(std::string_view field) {
  const std::string f = lower(trim(field));
  return f == "label" || f == "labels" || f == "value" || f == "preference" || f == "y";
}

class TableReader {
 public:
  TableReader(std::string path, Duplicates duplicates,
              const std::function<void(std::uint64_t)>& progress)
      : path_(std::move(path)), duplicates_(duplicates), progress_(progress) {}

  LabelTable read(InputFormat format) {
    std::ifstream in;
    open(in);
    if (format == InputFormat::kJsonLines)
      read_jsonl(in);
    else
      read_csv(in);
    if (in.bad()) throw InputError(path_ + ": read error after line " + std::to_string(lines_));
    return finish();
  }

 private:
  [[noreturn]] void fail(std::uint64_t line, const std::string& msg) const {
    throw InputError(fmt::format("{}: line {}: {}", path_, line, msg), line);
  }

  void open(std::ifstream& in) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(path_, ec)) throw InputError(path_ + ": no such file");
    if (fs::is_directory(path_, ec)) throw InputError(path_ + ": is a directory");
    in.rdbuf()->pubsetbuf(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
    in.open(path_, std::ios::binary);
    if (!in) throw InputError(path_ + ": cannot be read: " + std::strerror(errno));
  }

  // Reads the next physical line without its line ending; counts lines, drops a UTF-8 byte
  // order mark at the start of the file and reports progress.
  bool next_line(std::istream& in, std::string& line) {
    if (!std::getline(in, line)) return false;
    ++lines_;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lines_ == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    if (progress_ && lines_ % kProgressEvery == 0) progress_(lines_);
    return true;
  }

  static bool blank(std::string_view s) { return trim(s).empty(); }

  void read_csv(std::istream& in) {
    std::string line, record;
    std::vector<std::string> fields;
    std::size_t columns = 0;  // set by the first record
    std::uint64_t first_record = 0;
    while (next_line(in, line)) {
      if (blank(line)) continue;
      const std::uint64_t start = lines_;
      record.swap(line);
      std::size_t bad = 0;
      CsvStatus st;
      while ((st = split_csv(record, fields, bad)) == CsvStatus::kOpenQuote) {
        if (!next_line(in, line)) fail(start, "a quoted field is never closed (unmatched '\"')");
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

  void read_jsonl(std::istream& in) {
    std::string line;
    while (next_line(in, line)) {
      if (blank(line)) continue;
      const std::uint64_t n = lines_;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        // Syntax errors and number overflows. Drop nlohmann's "[json.exception...] " and
        // "parse error at line 1, ": the line is ours.
        std::string_view what = e.what();
        if (what.starts_with('[') && what.find("] ") != std::string_view::npos)
          what.remove_prefix(what.find("] ") + 2);
        if (const std::size_t col = what.find("column "); col != std::string_view::npos)
          what.remove_prefix(col);
        fail(n, fmt::format("not valid JSON: {}", what));
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
    const std::optional<Split> s = kSplitNames.find(lower(trim(name)));
    if (s && *s != Split::kNewUsers) return *s;
    fail(n, fmt::format("unknown split {} (expected {})", shown(name),
                        kSplitNames.list({Split::kNewUsers})));
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
    if (std::isnan(v))
      fail(n, fmt::format("label {} is NaN, expected a number in [0, 1]", shown(text)));
    if (std::isinf(v))
      fail(n, fmt::format("label {} is infinite, expected a number in [0, 1]", shown(text)));
    if (v < 0 || v > 1) fail(n, fmt::format("label {} is outside [0, 1]", shown(text)));
    const std::uint32_t u = users_.get(user), c = comparisons_.get(comparison);
    if (u == IdMap::kFull || c == IdMap::kFull)
      fail(n, fmt::format("more than {} distinct {} ids", kMaxIds,
                          u == IdMap::kFull ? "user" : "comparison"));
    user_.push_back(u);
    comparison_.push_back(c);
    value_.push_back(static_cast<float>(v));
    split_.push_back(static_cast<std::uint8_t>(s));
    line_.push_back(n);
  }

  // Finds labels of one (user, comparison) given twice: in two splits (always an error: the
  // held-out label would leak into training), or twice in one split (an error, or averaged).
  // Sorting (user, comparison, row) keys needs 16 bytes a label, less than a map of pairs.
  void check_duplicates(const IdTable& users, const IdTable& comparisons) {
    const std::size_t rows = user_.size();
    std::vector<std::pair<std::uint64_t, std::uint64_t>> keys(rows);
    for (std::size_t r = 0; r < rows; ++r)
      keys[r] = {(std::uint64_t{user_[r]} << 32) | comparison_[r], r};
    std::sort(keys.begin(), keys.end());
    // Report the problem a reader going down the file meets first: the smallest later line.
    std::uint64_t bad_line = InputError::kNoOrder;
    std::string bad_msg;
    for (std::size_t i = 0; i < rows;) {
      std::size_t e = i + 1;
      while (e < rows && keys[e].first == keys[i].first) ++e;
      if (e - i > 1) {
        const std::uint64_t r0 = keys[i].second;
        double sum = value_[r0];
        for (std::size_t k = i + 1; k < e; ++k) {
          const std::uint64_t r = keys[k].second;
          const bool leak = split_[r] != split_[r0];
          if (leak || duplicates_ == Duplicates::kError) {
            if (line_[r] < bad_line) {
              bad_line = line_[r];
              const std::string pair =
                  fmt::format("user {} and comparison {}", shown(users.id(user_[r])),
                              shown(comparisons.id(comparison_[r])));
              bad_msg = leak ? fmt::format(
                                   "{} in split {} were already labelled in split {} on line "
                                   "{}: one pair must not be in two splits",
                                   pair, split_name(static_cast<Split>(split_[r])),
                                   split_name(static_cast<Split>(split_[r0])), line_[r0])
                             : fmt::format(
                                   "{} were already labelled on line {} (split {}); pass "
                                   "--duplicates mean to average repeated labels",
                                   pair, line_[r0], split_name(static_cast<Split>(split_[r])));
            }
            break;
          }
          sum += value_[r];
          split_[r] = kRemoved;
        }
        if (bad_line == InputError::kNoOrder) {
          value_[r0] = static_cast<float>(sum / static_cast<double>(e - i));
          merged_ += e - i - 1;
        }
      }
      i = e;
    }
    if (bad_line != InputError::kNoOrder) fail(bad_line, bad_msg);
  }

  LabelTable finish() {
    LabelTable t;
    t.lines = lines_;
    if (user_.empty())
      throw InputError(fmt::format("{}: no labels ({})", path_,
                                   lines_ == 0 ? "the file is empty"
                                   : header_   ? "only a header line"
                                               : "only blank lines"));
    t.users = users_.take();
    t.comparisons = comparisons_.take();
    check_duplicates(t.users, t.comparisons);
    line_ = {};
    std::array<std::uint64_t, 3> count{};
    for (std::uint8_t s : split_)
      if (s != kRemoved) ++count[s];
    if (count[0] == 0)
      throw InputError(
          fmt::format("{}: no train labels ({} validation, {} test): /labels needs at least one",
                      path_, count[1], count[2]));
    if (count[0] == split_.size()) {
      // Everything is train: hand over the columns as they are.
      t.splits[0].user = std::move(user_);
      t.splits[0].comparison = std::move(comparison_);
      t.splits[0].value = std::move(value_);
    } else {
      for (int s = 0; s < 3; ++s) t.splits[s].reserve(count[s]);
      for (std::size_t r = 0; r < split_.size(); ++r)
        if (split_[r] != kRemoved)
          t.splits[split_[r]].push_back(user_[r], comparison_[r], value_[r]);
    }
    t.merged = merged_;
    return t;
  }

  std::string path_;
  Duplicates duplicates_;
  std::function<void(std::uint64_t)> progress_;
  std::vector<char> buffer_ = std::vector<char>(std::size_t{1} << 20);
  std::uint64_t lines_ = 0, merged_ = 0;
  bool header_ = false;
  IdMap users_, comparisons_;
  // All labels in input order; split_ holds the Split (or kRemoved).
  std::vector<std::uint32_t> user_, comparison_;
  std::vector<float> value_;
  std::vector<std::uint8_t> split_;
  std::vector<std::uint64_t> line_;
};

void write_ids(hid_t group, const char* name, const IdTable& t, std::uint64_t size,
               std::uint64_t width, const mpi::Comm& comm, const std::string& what) {
  h5::Handle d = h5::create_string_dataset(group, name, size, width, what);
  const h5::Handle type = h5::string_type(width, what);
  const bool mine = comm.rank() == 0;
  const char none = 0;
  h5::write_rows_raw(d.get(), type.get(), 0, mine ? size : 0, mine ? t.chars.data() : &none, comm,
                     what);
}

}  // namespace

LabelTable read_label_table(const std::string& path, InputFormat format, Duplicates duplicates,
                            const std::function<void(std::uint64_t)>& progress) {
  TableReader reader(path, duplicates, progress);
  return reader.read(resolve_input_format(path, format));
}

ImportSummary import_labels(const std::string& input, InputFormat format, Duplicates duplicates,
                            const std::string& out, bool overwrite, const mpi::Comm& comm) {
  // The output is checked first: a refused --out should not wait for a long parse.
  AtomicOutput output(out, overwrite, comm, "--out", {input});
  LabelTable t;
  mpi::agree(comm, [&] {
    if (comm.rank() != 0) return;
    t = read_label_table(input, format, duplicates, [&](std::uint64_t lines) {
      log::info(comm, "{}: read {} lines", input, lines);
    });
  });
  // What the other ranks need to create the same datasets: every create() is collective and
  // must see identical arguments.
  std::array<std::uint64_t, 12> meta{};
  if (comm.rank() == 0) {
    meta = {t.users.size,        t.users.width, t.comparisons.size,
            t.comparisons.width, t.lines,       t.merged};
    for (int s = 0; s < 3; ++s) {
      const auto& v = t.splits[s].value;
      meta[6 + s] = v.size();
      meta[9 + s] = std::all_of(v.begin(), v.end(), [](float x) { return is_quantizable(x); });
    }
  }
  mpi::broadcast(comm, std::span<std::uint64_t>(meta));
  ImportSummary sum;
  sum.users = meta[0];
  sum.comparisons = meta[2];
  sum.lines = meta[4];
  sum.merged = meta[5];

  LabelFileWriter writer(output.temp_path(), comm, sum.users, sum.comparisons);
  const LabelColumns none;
  for (int s = 0; s < 3; ++s) {
    sum.labels[s] = meta[6 + s];
    // /labels is always written (read_label_table made sure it is not empty); the held-out
    // splits only when present.
    if (s != 0 && sum.labels[s] == 0) continue;
    writer.create(kImportSplits[s], sum.labels[s], meta[9 + s] != 0);
    writer.write(kImportSplits[s], 0, comm.rank() == 0 ? t.splits[s] : none);
    t.splits[s] = {};
  }
  const std::string what = output.path() + ": /ids";
  h5::Handle ids = h5::create_group(writer.handle(), "/ids", what);
  h5::write_string_attribute(ids.get(), "source", input, what);
  write_ids(ids.get(), "users", t.users, sum.users, meta[1], comm, what + "/users");
  write_ids(ids.get(), "comparisons", t.comparisons, sum.comparisons, meta[3], comm,
            what + "/comparisons");
  ids.reset();
  writer.close();
  output.commit();
  return sum;
}

}  // namespace pref::io
