#pragma once
// One table per enum: each value with the one name it has on the command line, in files'
// attributes and in messages (e.g. Exchange::kShip <-> "ship"). The CLI's choices
// (cli::one_of), the attributes pref writes and reads back, and every message take the name
// from the table, and text is turned into a value only by parse(), which refuses anything else
// with an InputError listing the names. Declared next to its enum:
//   inline constexpr EnumNames<Exchange, 3> kExchangeNames{{{
//       {Exchange::kAuto, "auto"}, {Exchange::kShip, "ship"}, {Exchange::kReduce, "reduce"}}}};
#include <array>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "solver/base/error.hpp"

namespace pref {

template <class E>
struct EnumName {
  E value;
  const char* name;
};

template <class E, std::size_t N>
struct EnumNames {
  std::array<EnumName<E>, N> entries;

  // The value's name ("?" for a value not in the table, which would be a bug).
  constexpr const char* name(E e) const {
    for (const EnumName<E>& x : entries)
      if (x.value == e) return x.name;
    return "?";
  }
  // The value named `text`, if any.
  constexpr std::optional<E> find(std::string_view text) const {
    for (const EnumName<E>& x : entries)
      if (text == x.name) return x.value;
    return std::nullopt;
  }
  // The value named `text`; otherwise an InputError "<what>: 'text' is not one of a, b or c"
  // (`what` names the option, or the file and attribute).
  E parse(std::string_view text, const std::string& what) const {
    if (const std::optional<E> e = find(text)) return *e;
    throw InputError(what + ": '" + std::string(text) + "' is not one of " + list());
  }
  // The names, in table order, without those of `excluded` (for the CLI's choices).
  std::vector<std::string> names(std::initializer_list<E> excluded = {}) const {
    std::vector<std::string> out;
    for (const EnumName<E>& x : entries) {
      bool skip = false;
      for (E e : excluded) skip = skip || e == x.value;
      if (!skip) out.emplace_back(x.name);
    }
    return out;
  }
  // "a, b or c".
  std::string list(std::initializer_list<E> excluded = {}) const {
    const std::vector<std::string> n = names(excluded);
    std::string out;
    for (std::size_t k = 0; k < n.size(); ++k)
      out += (k == 0 ? "" : k + 1 == n.size() ? " or " : ", ") + n[k];
    return out;
  }
};

template <class E, std::size_t N>
EnumNames(std::array<EnumName<E>, N>) -> EnumNames<E, N>;

}  // namespace pref
