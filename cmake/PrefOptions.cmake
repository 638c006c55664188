# Warning and sanitizer settings, carried by interface targets so that every pref target opts in
# by linking them and nothing leaks into third-party code.
add_library(pref_warnings INTERFACE)
add_library(pref::warnings ALIAS pref_warnings)
target_compile_options(pref_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>
  $<$<COMPILE_LANG_AND_ID:CXX,GNU>:-Wshadow=local>  # clang has no =local
  $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${PREF_WERROR}>>:-Werror>)

add_library(pref_sanitizers INTERFACE)
add_library(pref::sanitizers ALIAS pref_sanitizers)
if(PREF_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "PREF_FUZZ needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Fuzzers run sanitized; pref's code gets libFuzzer's coverage instrumentation, the fuzz
  # targets its main (tests/fuzz/CMakeLists.txt).
  set(PREF_SANITIZE ON CACHE BOOL "" FORCE)
  target_compile_options(pref_sanitizers INTERFACE -fsanitize=fuzzer-no-link)
endif()
if(PREF_SANITIZE)
  target_compile_options(pref_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(pref_sanitizers INTERFACE -fsanitize=address,undefined)
endif()

add_library(pref_arch INTERFACE)
add_library(pref::arch ALIAS pref_arch)
if(PREF_NATIVE)
  target_compile_options(pref_arch INTERFACE -march=native)
endif()
