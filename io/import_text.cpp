#include "io/import_text.hpp"

#include "solver/base/hash.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>

namespace pref::io::detail {

namespace {
constexpr std::uint64_t kProgressEvery = 5'000'000;
}  // namespace

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

std::string Files::at(Position p) const {
  return fmt::format("{}: line {}", paths.at(file_of(p)), line_of(p));
}

std::string Files::ref(Position p, Position from) const {
  if (file_of(p) == file_of(from)) return fmt::format("line {}", line_of(p));
  return fmt::format("{}, line {}", paths.at(file_of(p)), line_of(p));
}

void Files::fail(Position p, const std::string& msg) const {
  throw InputError(at(p) + ": " + msg, p);
}

LineReader::LineReader(const std::string& path, std::function<void(std::uint64_t)> progress)
    : path_(path), progress_(std::move(progress)) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path_, ec)) throw InputError(path_ + ": no such file");
  if (fs::is_directory(path_, ec)) throw InputError(path_ + ": is a directory");
  in_.rdbuf()->pubsetbuf(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  in_.open(path_, std::ios::binary);
  if (!in_) throw InputError(path_ + ": cannot be read: " + std::strerror(errno));
}

bool LineReader::next(std::string& line) {
  if (!std::getline(in_, line)) return false;
  ++lines_;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (lines_ == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
  if (progress_ && lines_ % kProgressEvery == 0) progress_(lines_);
  return true;
}

void LineReader::check_end() const {
  if (in_.bad()) throw InputError(path_ + ": read error after line " + std::to_string(lines_));
}

bool blank(std::string_view s) {
  return trim(s).empty();
}

std::string json_syntax_message(std::string_view what) {
  if (what.starts_with('[') && what.find("] ") != std::string_view::npos)
    what.remove_prefix(what.find("] ") + 2);
  if (const std::size_t col = what.find("column "); col != std::string_view::npos)
    what.remove_prefix(col);
  return std::string(what);
}

namespace {
constexpr std::uint64_t kEmpty = 0;

std::uint64_t hash_of(std::string_view s) {
  return hash::mix(std::hash<std::string_view>{}(s));
}
}  // namespace

std::uint64_t IdMap::slot(std::string_view s, std::uint64_t h) const {
  const std::uint64_t mask = table_.size() - 1;
  const std::uint64_t tag = h >> 32 << 32;
  for (std::uint64_t i = h & mask;; i = (i + 1) & mask) {
    const std::uint64_t e = table_[i];
    if (e == kEmpty) return i;
    if ((e & 0xFFFFFFFF00000000ull) == tag && key(static_cast<std::uint32_t>(e) - 1) == s) return i;
  }
}

void IdMap::grow() {
  std::vector<std::uint64_t> old(std::max<std::size_t>(64, 2 * table_.size()), kEmpty);
  old.swap(table_);
  const std::uint64_t mask = table_.size() - 1;
  for (std::uint64_t e : old) {
    if (e == kEmpty) continue;
    std::uint64_t i = hashes_[static_cast<std::uint32_t>(e) - 1] & mask;
    while (table_[i] != kEmpty) i = (i + 1) & mask;
    table_[i] = e;
  }
}

std::uint32_t IdMap::get(std::string_view s) {
  if (table_.empty()) grow();
  const std::uint64_t h = hash_of(s);
  std::uint64_t i = slot(s, h);
  if (table_[i] != kEmpty) return static_cast<std::uint32_t>(table_[i]) - 1;
  if (size() >= kMaxIds) return kFull;
  const auto id = static_cast<std::uint32_t>(size());
  chars_.insert(chars_.end(), s.begin(), s.end());
  offsets_.push_back(chars_.size());
  hashes_.push_back(h);
  width_ = std::max(width_, s.size());
  if (2 * (size() + 1) > table_.size()) {  // keep the table at most half full
    grow();
    i = slot(s, h);
  }
  table_[i] = (h >> 32 << 32) | (std::uint64_t{id} + 1);
  return id;
}

std::uint32_t IdMap::find(std::string_view s) const {
  if (table_.empty()) return kFull;
  const std::uint64_t e = table_[slot(s, hash_of(s))];
  return e == kEmpty ? kFull : static_cast<std::uint32_t>(e) - 1;
}

IdTable IdMap::take(std::size_t skip) {
  IdTable t;
  t.size = size();
  t.width = std::max<std::size_t>(1, width_ > skip ? width_ - skip : 1);
  t.chars.assign(t.size * t.width, '\0');
  for (std::uint64_t id = 0; id < t.size; ++id) {
    const std::string_view k = key(static_cast<std::uint32_t>(id));
    std::memcpy(t.chars.data() + id * t.width, k.data() + skip, k.size() - skip);
  }
  *this = IdMap();
  return t;
}

std::uint32_t KeyMap::get(std::uint64_t key, std::uint32_t next, bool& added) {
  if (2 * (size_ + 1) > keys_.size()) grow();
  const std::uint64_t mask = keys_.size() - 1;
  for (std::uint64_t i = hash::mix(key) & mask;; i = (i + 1) & mask) {
    if (values_[i] == 0) {
      keys_[i] = key;
      values_[i] = next + 1;
      ++size_;
      added = true;
      return next;
    }
    if (keys_[i] == key) {
      added = false;
      return values_[i] - 1;
    }
  }
}

void KeyMap::grow() {
  std::vector<std::uint64_t> keys(std::max<std::size_t>(64, 2 * keys_.size()));
  std::vector<std::uint32_t> values(keys.size(), 0);
  const std::uint64_t mask = keys.size() - 1;
  for (std::size_t k = 0; k < keys_.size(); ++k) {
    if (values_[k] == 0) continue;
    std::uint64_t i = hash::mix(keys_[k]) & mask;
    while (values[i] != 0) i = (i + 1) & mask;
    keys[i] = keys_[k];
    values[i] = values_[k];
  }
  keys_.swap(keys);
  values_.swap(values);
}

void LabelRows::add(Position where, std::uint32_t user, std::uint32_t comparison, float value,
                    Split s) {
  user_.push_back(user);
  comparison_.push_back(comparison);
  value_.push_back(value);
  split_.push_back(static_cast<std::uint8_t>(s));
  where_.push_back(where);
}

LabelRows::Result LabelRows::finish(
    Duplicates duplicates, const Files& files, const std::string& input,
    const std::function<std::string(std::uint32_t, std::uint32_t)>& pair) {
  Result res;
  const std::size_t rows = user_.size();
  {
    // Sorting (user, comparison, row) keys needs 16 bytes a label, less than a map of pairs.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> keys(rows);
    for (std::size_t r = 0; r < rows; ++r)
      keys[r] = {(std::uint64_t{user_[r]} << 32) | comparison_[r], r};
    std::sort(keys.begin(), keys.end());
    // Report the problem a reader going down the input meets first: the smallest later
    // position.
    Position bad = InputError::kNoOrder;
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
          if (leak || duplicates == Duplicates::kError) {
            if (where_[r] < bad) {
              bad = where_[r];
              const std::string what = pair(user_[r], comparison_[r]);
              bad_msg = leak ? fmt::format(
                                   "{} in split {} were already labelled in split {} on {}: "
                                   "one pair must not be in two splits",
                                   what, split_name(static_cast<Split>(split_[r])),
                                   split_name(static_cast<Split>(split_[r0])),
                                   files.ref(where_[r0], where_[r]))
                             : fmt::format(
                                   "{} were already labelled on {} (split {}); pass "
                                   "--duplicates mean to average repeated labels",
                                   what, files.ref(where_[r0], where_[r]),
                                   split_name(static_cast<Split>(split_[r])));
            }
            break;
          }
          sum += value_[r];
          split_[r] = kRemoved;
        }
        if (bad == InputError::kNoOrder) {
          value_[r0] = static_cast<float>(sum / static_cast<double>(e - i));
          res.merged += e - i - 1;
        }
      }
      i = e;
    }
    if (bad != InputError::kNoOrder) files.fail(bad, bad_msg);
  }
  where_ = {};
  std::array<std::uint64_t, 3> count{};
  for (std::uint8_t s : split_)
    if (s != kRemoved) ++count[s];
  if (count[0] == 0)
    throw InputError(
        fmt::format("{}: no train labels ({} validation, {} test): /labels needs at least one",
                    input, count[1], count[2]));
  if (count[0] == split_.size()) {
    // Everything is train: hand over the columns as they are.
    res.splits[0].user = std::move(user_);
    res.splits[0].comparison = std::move(comparison_);
    res.splits[0].value = std::move(value_);
  } else {
    for (int s = 0; s < 3; ++s) res.splits[s].reserve(count[s]);
    for (std::size_t r = 0; r < split_.size(); ++r)
      if (split_[r] != kRemoved)
        res.splits[split_[r]].push_back(user_[r], comparison_[r], value_[r]);
  }
  user_ = {};
  comparison_ = {};
  value_ = {};
  split_ = {};
  return res;
}

bool split_named(std::string_view name, Split& s) {
  // The label file's split names (kSplitNames), but /new_users: an import has no new users.
  const std::optional<Split> found = kSplitNames.find(lower(trim(name)));
  if (!found || *found == Split::kNewUsers) return false;
  s = *found;
  return true;
}

std::string label_problem(double v, std::string_view text) {
  if (std::isnan(v))
    return fmt::format("label {} is NaN, expected a number in [0, 1]", shown(text));
  if (std::isinf(v))
    return fmt::format("label {} is infinite, expected a number in [0, 1]", shown(text));
  if (v < 0 || v > 1) return fmt::format("label {} is outside [0, 1]", shown(text));
  return {};
}

}  // namespace pref::io::detail
