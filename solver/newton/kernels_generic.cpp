#define PREF_KERNEL_ISA generic
#define PREF_KERNEL_ISA_NAME "generic x86-64"
#define PREF_KERNEL_LIBM 1
#include "solver/newton/kernels_impl.hpp"
