#include "solver/cli/data.hpp"

namespace pref::cli {

Duplicates parse_duplicates(const std::string& s) {
  return s == "mean" ? Duplicates::kMean : Duplicates::kError;
}

}  // namespace pref::cli
