#pragma once
// std::vector storage aligned to cache lines. Factor tables that the label kernels gather rows
// from are kept in it: with J = 8 a row is exactly one 64-byte line, while malloc's 16-byte
// alignment would split every row over two lines, doubling the lines a random gather touches.
// Large tables are also asked to be backed by transparent huge pages: a random gather over a
// table of tens of megabytes otherwise misses the TLB on almost every row (at 10^6 users the
// comparison half-step's label kernel spent a third of its time stalled at its gathers'
// prefetches; with huge pages its sweeps ran 15-20% faster, docs/results.md).
#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <vector>

namespace pref {

inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::size_t kHugePage = std::size_t(2) << 20;

// The alignment of an allocation of `bytes`: huge-page aligned from a few huge pages up.
constexpr std::size_t table_alignment(std::size_t bytes) {
  return bytes >= 4 * kHugePage ? kHugePage : kCacheLine;
}

template <class T>
struct CacheAligned {
  using value_type = T;
  CacheAligned() = default;
  template <class U>
  CacheAligned(const CacheAligned<U>&) noexcept {}
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T), align = table_alignment(bytes);
    void* p = ::operator new (bytes, std::align_val_t{align});
    // Advice only: where the kernel does not offer huge pages this fails and changes nothing.
    if (align == kHugePage) (void)madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    ::operator delete (p, std::align_val_t{table_alignment(n * sizeof(T))});
  }
  template <class U>
  bool operator==(const CacheAligned<U>&) const noexcept {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

}  // namespace pref
