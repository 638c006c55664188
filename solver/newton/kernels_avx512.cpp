// Compiled with -mavx512f -mavx512dq -mavx512vl -mavx2 -mfma (see solver/CMakeLists.txt).
#define PREF_KERNEL_ISA avx512
#define PREF_KERNEL_ISA_NAME "AVX-512"
#include "solver/newton/kernels_impl.hpp"
