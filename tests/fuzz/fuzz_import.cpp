// libFuzzer target: the CSV / JSON-lines import parser (tests/fuzz/targets.hpp).
#include "tests/fuzz/targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pref::fuzz::import_one(data, size);
  return 0;
}
