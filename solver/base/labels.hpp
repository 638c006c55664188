#pragma once
// Label data in memory.
//  - LabelColumns: a slice of a label table in file order (COO), as read or generated.
//  - Csr: the labels of a rank's rows (users or comparisons), sorted by row then column.
#include <cstdint>
#include <vector>

#include "solver/base/enum_names.hpp"

namespace pref {

struct LabelColumns {
  std::vector<std::uint32_t> user;
  std::vector<std::uint32_t> comparison;
  std::vector<float> value;
  std::uint64_t first_row = 0;  // global row of element 0 in its file (for messages)

  std::size_t size() const { return user.size(); }
  void reserve(std::size_t n) {
    user.reserve(n);
    comparison.reserve(n);
    value.reserve(n);
  }
  void push_back(std::uint32_t u, std::uint32_t c, float v) {
    user.push_back(u);
    comparison.push_back(c);
    value.push_back(v);
  }
  void clear() {
    user.clear();
    comparison.clear();
    value.clear();
  }
};

struct Csr {
  std::vector<std::uint64_t> ptr{0};  // rows + 1 offsets
  std::vector<std::uint32_t> col;     // global id of the partner (comparison or user)
  std::vector<float> val;

  std::size_t rows() const { return ptr.size() - 1; }
  std::size_t nnz() const { return col.size(); }
  std::uint64_t row_size(std::size_t r) const { return ptr[r + 1] - ptr[r]; }
  std::size_t bytes() const {
    return ptr.size() * sizeof(std::uint64_t) + col.size() * sizeof(std::uint32_t) +
           val.size() * sizeof(float);
  }
};

// What to do with two labels of the same (user, comparison) within a split, when loading or
// importing: an error naming both rows, or one label with their mean (`--duplicates
// error|mean`, parsed by cli::parse_duplicates).
enum class Duplicates { kError, kMean };
inline constexpr EnumNames<Duplicates, 2> kDuplicatesNames{
    {{{Duplicates::kError, "error"}, {Duplicates::kMean, "mean"}}}};

}  // namespace pref
