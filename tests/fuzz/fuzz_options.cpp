// libFuzzer target: the command line and pref's option text parsers (tests/fuzz/targets.hpp).
#include "tests/fuzz/targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pref::fuzz::options_one(data, size);
  return 0;
}
