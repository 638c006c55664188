// The fuzz targets' checks (tests/fuzz/targets.hpp) on the seed corpus and on every input that
// once made a target fail (tests/fuzz/regressions/<target>/), in every build: what the fuzzers
// found stays fixed without clang or libFuzzer.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "tests/fuzz/targets.hpp"
#include "tests/test_util.hpp"

namespace {

namespace fs = std::filesystem;

// Feeds every file under <PREF_FUZZ_DIR>/<kind>/<target>/ to `one`; returns how many.
int feed(const std::string& kind, const std::string& target,
         const std::function<void(const std::uint8_t*, std::size_t)>& one) {
  const fs::path dir = fs::path(PREF_FUZZ_DIR) / kind / target;
  int n = 0;
  if (!fs::exists(dir)) return n;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string bytes = pref::test::read_bytes(e.path().string());
    SCOPED_TRACE(e.path().string());
    one(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    ++n;
  }
  return n;
}

}  // namespace

TEST(FuzzRegressions, ImportCorpusAndRegressions) {
  EXPECT_GT(feed("corpus", "import", pref::fuzz::import_one), 5);
  feed("regressions", "import", pref::fuzz::import_one);
}

TEST(FuzzRegressions, OptionsCorpusAndRegressions) {
  EXPECT_GT(feed("corpus", "options", pref::fuzz::options_one), 5);
  feed("regressions", "options", pref::fuzz::options_one);
}

TEST(FuzzRegressions, FilesCorpusAndRegressions) {
  EXPECT_GE(feed("corpus", "files", pref::fuzz::files_one), 6);
  feed("regressions", "files", pref::fuzz::files_one);
}
