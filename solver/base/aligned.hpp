#pragma once
// std::vector storage aligned to cache lines. Factor tables that the label kernels gather rows
// from are kept in it: with J = 8 a row is exactly one 64-byte line, while malloc's 16-byte
// alignment would split every row over two lines, doubling the lines a random gather touches.
#include <cstddef>
#include <new>
#include <vector>

namespace pref {

inline constexpr std::size_t kCacheLine = 64;

template <class T>
struct CacheAligned {
  using value_type = T;
  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{kCacheLine}));
  }
  void deallocate(T* p, std::size_t) noexcept {
    ::operator delete (p, std::align_val_t{kCacheLine});
  }
  template <class U>
  bool operator==(const CacheAligned<U>&) const noexcept {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

}  // namespace pref
