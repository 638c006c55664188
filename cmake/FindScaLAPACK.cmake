# Finds ScaLAPACK (the Open MPI flavour on Debian) and BLAS/LAPACK, and provides pref::scalapack.
# Debian's own scalapack CMake config points at a file that does not exist, so it is not used.
# BLACS (Cblacs_*) lives inside the same library. There are no C headers: prototypes are declared
# in solver/svd/scalapack.hpp.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_SCALAPACK QUIET scalapack-openmpi)
endif()
find_library(ScaLAPACK_LIBRARY
  NAMES scalapack-openmpi scalapack
  HINTS ${PC_SCALAPACK_LIBRARY_DIRS})
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_package(LAPACK REQUIRED)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(ScaLAPACK REQUIRED_VARS ScaLAPACK_LIBRARY)
if(ScaLAPACK_FOUND AND NOT TARGET pref::scalapack)
  add_library(pref::scalapack INTERFACE IMPORTED)
  target_link_libraries(pref::scalapack INTERFACE
    ${ScaLAPACK_LIBRARY} ${LAPACK_LIBRARIES} ${BLAS_LIBRARIES} MPI::MPI_C)
endif()
