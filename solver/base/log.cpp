#include "solver/base/log.hpp"

namespace pref::log {
namespace {
const auto g_start = std::chrono::steady_clock::now();
bool g_quiet = false;
}  // namespace

double seconds_since_start() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
}
void set_quiet(bool q) {
  g_quiet = q;
}
bool quiet() {
  return g_quiet;
}

}  // namespace pref::log
