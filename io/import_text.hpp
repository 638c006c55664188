#pragma once
// The pieces every importer shares (io/import.cpp: the labels layout; io/import_responses.cpp:
// the response layouts): reading text files line by line with their positions, CSV fields,
// numbers, values for messages, string ids to dense ints, and the labels read so far with the
// duplicate and leakage checks. Internal to io/.
#include <array>
#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/import.hpp"
#include "io/label_file.hpp"
#include "solver/base/labels.hpp"

namespace pref::io::detail {

// A value for a one-line message: quoted, control characters escaped (an id may hold a newline
// from a quoted CSV field), long values shortened.
std::string shown(std::string_view s);
std::string_view trim(std::string_view s);
std::string lower(std::string_view s);
// Parses a whole field as a decimal number (leading '+' and surrounding blanks allowed).
bool parse_number(std::string_view text, double& v);

// Splits one CSV record (RFC 4180: fields separated by commas; a field in double quotes may
// hold commas, newlines and doubled quotes). Blanks around a field are dropped. On kBadQuote,
// bad is the 1-based field with text after its closing quote.
enum class CsvStatus { kOk, kOpenQuote, kBadQuote };
CsvStatus split_csv(std::string_view rec, std::vector<std::string>& fields, std::size_t& bad);

// A position in the input: the file (its index in the input's list of files) and the 1-based
// line. Positions order as a reader going through the files in turn meets them, which is the
// order of InputError (the earliest problem is reported).
using Position = std::uint64_t;
inline constexpr int kLineBits = 40;
inline Position position(std::size_t file, std::uint64_t line) {
  return (static_cast<std::uint64_t>(file) << kLineBits) | line;
}
inline std::size_t file_of(Position p) {
  return static_cast<std::size_t>(p >> kLineBits);
}
inline std::uint64_t line_of(Position p) {
  return p & ((std::uint64_t{1} << kLineBits) - 1);
}

// The input's files by index, for messages: "FILE: line N" and, for a second position, "line M"
// in the same file or "FILE2, line M" in another.
struct Files {
  std::vector<std::string> paths;
  std::string at(Position p) const;
  std::string ref(Position p, Position from) const;
  [[noreturn]] void fail(Position p, const std::string& msg) const;
};

// Reads one text file line by line: counts lines, drops a UTF-8 byte order mark at the start and
// the CR of CRLF endings, and reports progress every few million lines.
class LineReader {
 public:
  // Throws InputError for a missing, unreadable or directory path.
  LineReader(const std::string& path, std::function<void(std::uint64_t)> progress = {});
  bool next(std::string& line);
  std::uint64_t line() const { return lines_; }
  // Throws InputError when the stream failed (not at a clean end of file).
  void check_end() const;

 private:
  std::string path_;
  std::function<void(std::uint64_t)> progress_;
  std::vector<char> buffer_ = std::vector<char>(std::size_t{1} << 20);
  std::ifstream in_;
  std::uint64_t lines_ = 0;
};

bool blank(std::string_view s);

// The message of a JSON syntax error without nlohmann's prefix ("[json.exception...] parse
// error at line 1, "): the line is ours. `what` is the exception's what().
std::string json_syntax_message(std::string_view what);

// String ids to dense ints in order of first appearance: an open-addressing table of (hash,
// id) in one flat array over an arena of the ids' bytes, so that a lookup touches one slot and
// one id (a node-based map chased two or three pointers a lookup: 45% of an import's time).
class IdMap {
 public:
  static constexpr std::uint32_t kFull = 0xFFFFFFFF;  // kMaxIds ids taken: no id is left
  // Returns the id of s (the caller has checked that s is a valid id), or kFull.
  std::uint32_t get(std::string_view s);
  // The id of s, or kFull when s has none.
  std::uint32_t find(std::string_view s) const;
  std::uint64_t size() const { return offsets_.size() - 1; }
  // Moves the ids into the fixed-width layout of the file and frees the map. skip: bytes at the
  // start of every key that are not part of the id (a prefix that scopes it, e.g. a prompt).
  IdTable take(std::size_t skip = 0);

 private:
  std::string_view key(std::uint32_t id) const {
    return {chars_.data() + offsets_[id], offsets_[id + 1] - offsets_[id]};
  }
  // The slot of s: the one holding it, or the empty one where it goes.
  std::uint64_t slot(std::string_view s, std::uint64_t h) const;
  void grow();

  std::vector<char> chars_;                // the ids' bytes, back to back
  std::vector<std::uint64_t> offsets_{0};  // id k is chars_[offsets_[k], offsets_[k + 1])
  std::vector<std::uint64_t> hashes_;      // per id, to grow without hashing again
  std::vector<std::uint64_t> table_;       // 0: empty; else (hash >> 32) << 32 | (id + 1)
  std::size_t width_ = 1;
};

// A map of 64-bit keys to dense ints in order of first appearance (open addressing, flat).
class KeyMap {
 public:
  // The value of key, inserting `next` when it has none; added tells which.
  std::uint32_t get(std::uint64_t key, std::uint32_t next, bool& added);

 private:
  void grow();
  std::vector<std::uint64_t> keys_;
  std::vector<std::uint32_t> values_;  // 0: empty; else value + 1
  std::uint64_t size_ = 0;
};

// The labels read so far, in input order, with their positions; at the end, the checks for one
// (user, comparison) labelled twice: in two splits (always an error: the held-out label would
// leak into training), or twice in one split (an error, or averaged with Duplicates::kMean into
// the first).
class LabelRows {
 public:
  void add(Position where, std::uint32_t user, std::uint32_t comparison, float value, Split s);
  std::uint64_t size() const { return user_.size(); }

  struct Result {
    std::array<LabelColumns, 3> splits;  // kImportSplits order, rows in input order
    std::uint64_t merged = 0;            // labels folded into an earlier one
  };
  // pair(u, c) names a (user, comparison) for a message, e.g. "user 'a' and comparison 'b'".
  // Throws the InputError of the earliest problem; with no train label, an InputError naming
  // `input`. Frees the rows.
  Result finish(Duplicates duplicates, const Files& files, const std::string& input,
                const std::function<std::string(std::uint32_t, std::uint32_t)>& pair);

 private:
  static constexpr std::uint8_t kRemoved = 0xFF;  // split code of a label folded into another
  std::vector<std::uint32_t> user_, comparison_;
  std::vector<float> value_;
  std::vector<std::uint8_t> split_;
  std::vector<Position> where_;
};

// "train" | "validation" | "test" (any case, blanks around); false otherwise.
bool split_named(std::string_view name, Split& s);

// Label checks shared by the layouts: finite and in [0, 1]; `text` is the value as written.
// Returns an empty string when v is fine, else the message.
std::string label_problem(double v, std::string_view text);

}  // namespace pref::io::detail
