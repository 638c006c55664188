#include "solver/cli/data.hpp"

namespace pref::cli {

Duplicates parse_duplicates(const std::string& s) {
  return kDuplicatesNames.parse(s, "--duplicates");
}

}  // namespace pref::cli
