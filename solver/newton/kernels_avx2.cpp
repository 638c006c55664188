// Compiled with -mavx2 -mfma (see solver/CMakeLists.txt).
#define PREF_KERNEL_ISA avx2
#define PREF_KERNEL_ISA_NAME "AVX2+FMA"
#include "solver/newton/kernels_impl.hpp"
