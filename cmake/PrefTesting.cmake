# Open MPI does not free everything it allocates at exit, so LeakSanitizer would fail every MPI
# test of a sanitizer build (-DPREF_SANITIZE=ON); address and undefined-behaviour checks stay on.
if(PREF_SANITIZE)
  set(PREF_TEST_SANITIZER_ENV "ASAN_OPTIONS=detect_leaks=0")
else()
  set(PREF_TEST_SANITIZER_ENV "")
endif()

# A test fails when its output holds any of these, whatever its exit code: HDF5 printing its
# error stack (pref turns HDF5 errors into exceptions and silences the printing), Open MPI's
# abort banners (a rank that called MPI_Abort or died; the MPI tests never do so on purpose),
# sanitizer reports, and the alarms the CLI tests copy from their children's output
# (tests/test_util.hpp: only HDF5-DIAG and sanitizer lines; a child's abort banner is what the
# tests of failing runs expect, so it stays in the captured output).
set(PREF_TEST_FAIL_REGEX
  "HDF5-DIAG"
  "MPI_ABORT was invoked"
  "mpirun noticed that process rank"
  "ERROR: AddressSanitizer"
  "ERROR: LeakSanitizer"
  "runtime error:"
  "child output alarm: ")

# add_mpi_test(NAME name SOURCES a.cpp ... RANKS 1 2 4 [LIBS ...] [TIMEOUT s])
# Builds one gtest executable with the shared MPI main (tests/mpi_main.cpp) and adds one ctest
# per rank count, named name.rN and labelled mpi and rN. Runs with --oversubscribe so that 4 ranks
# run on a 2-core machine; OMPI_MCA_mpi_yield_when_idle keeps oversubscribed runs from spinning.
function(add_mpi_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;RANKS;LIBS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${T_NAME} ${T_SOURCES} ${PROJECT_SOURCE_DIR}/tests/mpi_main.cpp)
  target_link_libraries(${T_NAME} PRIVATE GTest::gtest pref_solver pref::warnings ${T_LIBS})
  target_include_directories(${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  foreach(n IN LISTS T_RANKS)
    add_test(NAME ${T_NAME}.r${n}
      COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${n} --oversubscribe
              ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${T_NAME}> --gtest_color=no ${MPIEXEC_POSTFLAGS})
    set_tests_properties(${T_NAME}.r${n} PROPERTIES
      LABELS "mpi;r${n}" TIMEOUT ${T_TIMEOUT} PROCESSORS 1
      FAIL_REGULAR_EXPRESSION "${PREF_TEST_FAIL_REGEX}"
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_mpi_yield_when_idle=1;OMPI_MCA_rmaps_base_oversubscribe=1;OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;PREF_BINARY=$<TARGET_FILE:pref>;PREF_TEST_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp;${PREF_TEST_SANITIZER_ENV}")
  endforeach()
endfunction()

# add_cli_test(NAME name SOURCES a.cpp ...): a plain (single-process) gtest that runs the `pref`
# binary under mpirun itself (tests/test_util.hpp), e.g. to check exit codes and messages.
function(add_cli_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE GTest::gtest GTest::gtest_main pref_io pref::warnings)
  target_include_directories(${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  add_dependencies(${T_NAME} pref)
  add_test(NAME ${T_NAME} COMMAND $<TARGET_FILE:${T_NAME}> --gtest_color=no)
  set_tests_properties(${T_NAME} PROPERTIES
    LABELS "cli" TIMEOUT ${T_TIMEOUT}
    FAIL_REGULAR_EXPRESSION "${PREF_TEST_FAIL_REGEX}"
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_mpi_yield_when_idle=1;OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;PREF_BINARY=$<TARGET_FILE:pref>;PREF_MPIEXEC=${MPIEXEC_EXECUTABLE};PREF_TEST_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp;${PREF_TEST_SANITIZER_ENV}")
endfunction()
