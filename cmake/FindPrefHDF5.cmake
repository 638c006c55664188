# Finds the parallel (MPI) build of HDF5 and provides pref::hdf5.
# Fails with a clear message when only a serial HDF5 is installed: pref writes collectively.
set(HDF5_PREFER_PARALLEL TRUE)
find_package(HDF5 QUIET COMPONENTS C)
include(FindPackageHandleStandardArgs)
if(HDF5_FOUND AND NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR
    "pref needs the parallel (MPI) build of HDF5, but the HDF5 found is serial "
    "(${HDF5_C_INCLUDE_DIRS}). On Debian: apt-get install libhdf5-openmpi-dev")
endif()
find_package_handle_standard_args(PrefHDF5
  REQUIRED_VARS HDF5_C_LIBRARIES HDF5_C_INCLUDE_DIRS HDF5_IS_PARALLEL
  VERSION_VAR HDF5_VERSION)
if(PrefHDF5_FOUND AND NOT TARGET pref::hdf5)
  add_library(pref::hdf5 INTERFACE IMPORTED)
  target_include_directories(pref::hdf5 SYSTEM INTERFACE ${HDF5_C_INCLUDE_DIRS})
  target_link_libraries(pref::hdf5 INTERFACE ${HDF5_C_LIBRARIES} MPI::MPI_C)
  target_compile_definitions(pref::hdf5 INTERFACE ${HDF5_C_DEFINITIONS} H5_USE_110_API)
endif()
