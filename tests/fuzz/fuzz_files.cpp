// libFuzzer target: the readers of pref's HDF5 files (model, types, adapted, scores, label and
// checkpoint files) on damaged copies of small valid ones (tests/fuzz/targets.hpp).
#include "tests/fuzz/targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pref::fuzz::files_one(data, size);
  return 0;
}
