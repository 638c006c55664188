#pragma once
// What the command drivers share about label data: loading a split (solver/layout/load.hpp) and
// the parse of --duplicates.
#include <string>

#include "solver/layout/load.hpp"

namespace pref::cli {

using pref::load_split;
using pref::LoadOptions;

// "error" | "mean" (the option's checks allow only these) as the duplicate-label policy.
Duplicates parse_duplicates(const std::string& s);

}  // namespace pref::cli
