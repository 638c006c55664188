#include "solver/newton/kernels.hpp"

#include <cstdlib>
#include <string>

namespace pref::kernels {

const Table& best() {
  static const Table t = [] {
    const char* force = std::getenv("PREF_KERNELS");
    const std::string f = force ? force : "";
    __builtin_cpu_init();
    const bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                        __builtin_cpu_supports("avx512vl");
    const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (f == "generic") return generic::table();
    if (f == "avx2" && has2) return avx2::table();
    if ((f.empty() || f == "avx512") && has512) return avx512::table();
    if (has2) return avx2::table();
    return generic::table();
  }();
  return t;
}

}  // namespace pref::kernels
