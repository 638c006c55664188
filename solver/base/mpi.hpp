#pragma once
// Thin RAII layer over MPI: the environment, communicators, typed collectives, errors that
// carry their source location, and the agreement step that turns an error on some ranks into
// the same error on every rank.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "solver/base/error.hpp"

#define PREF_MPI_CHECK(call)                                             \
  do {                                                                   \
    int pref_mpi_rc_ = (call);                                           \
    if (pref_mpi_rc_ != MPI_SUCCESS)                                     \
      ::pref::mpi::throw_error(pref_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (0)

namespace pref::mpi {

[[noreturn]] void throw_error(int code, const char* call, const char* file, int line);

// Initializes MPI (funneled threads: only the main thread calls MPI) and finalizes it.
// Every object holding MPI resources must be destroyed before this one.
class Environment {
 public:
  Environment(int& argc, char**& argv);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
};

// A communicator. Built from a raw MPI_Comm it does not own it; dup() returns an owning one.
class Comm {
 public:
  Comm() = default;
  explicit Comm(MPI_Comm comm) : comm_(comm) {}
  ~Comm();
  Comm(Comm&& other) noexcept;
  Comm& operator=(Comm&& other) noexcept;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  static Comm world() { return Comm(MPI_COMM_WORLD); }
  static Comm self() { return Comm(MPI_COMM_SELF); }
  Comm dup() const;
  // Borrows the same MPI_Comm without owning it.
  Comm view() const { return Comm(comm_); }

  MPI_Comm get() const { return comm_; }
  int rank() const;
  int size() const;
  void barrier() const;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool owned_ = false;
};

namespace detail {
// The committed type of `bytes` contiguous bytes: made once per size, freed by ~Environment
// before MPI_Finalize.
MPI_Datatype bytes_type(int bytes);
}  // namespace detail

template <class T>
MPI_Datatype datatype() {
  if constexpr (std::is_same_v<T, double>)
    return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, float>)
    return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, std::int8_t>)
    return MPI_INT8_T;
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return MPI_UINT8_T;
  else if constexpr (std::is_same_v<T, std::int16_t>)
    return MPI_INT16_T;
  else if constexpr (std::is_same_v<T, std::uint16_t>)
    return MPI_UINT16_T;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return MPI_INT32_T;
  else if constexpr (std::is_same_v<T, std::uint32_t>)
    return MPI_UINT32_T;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return MPI_INT64_T;
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return MPI_UINT64_T;
  else if constexpr (std::is_same_v<T, char>)
    return MPI_CHAR;
  else {
    // Any other trivially copyable type travels as its bytes.
    static_assert(std::is_trivially_copyable_v<T>, "no MPI datatype for this type");
    return detail::bytes_type(static_cast<int>(sizeof(T)));
  }
}

template <class T>
void allreduce(const Comm& comm, std::span<T> data, MPI_Op op) {
  if (data.empty()) return;
  PREF_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(data.size()),
                               datatype<T>(), op, comm.get()));
}
template <class T>
T allreduce(const Comm& comm, T value, MPI_Op op) {
  allreduce(comm, std::span<T>(&value, 1), op);
  return value;
}
template <class T>
T allreduce_sum(const Comm& comm, T v) {
  return allreduce(comm, v, MPI_SUM);
}
template <class T>
T allreduce_max(const Comm& comm, T v) {
  return allreduce(comm, v, MPI_MAX);
}
template <class T>
T allreduce_min(const Comm& comm, T v) {
  return allreduce(comm, v, MPI_MIN);
}

// Sum of v over ranks below this one (0 on rank 0).
template <class T>
T exscan_sum(const Comm& comm, T v) {
  T out{};
  PREF_MPI_CHECK(MPI_Exscan(&v, &out, 1, datatype<T>(), MPI_SUM, comm.get()));
  return comm.rank() == 0 ? T{} : out;
}

template <class T>
void broadcast(const Comm& comm, std::span<T> data, int root = 0) {
  if (data.empty()) return;
  PREF_MPI_CHECK(
      MPI_Bcast(data.data(), static_cast<int>(data.size()), datatype<T>(), root, comm.get()));
}
template <class T>
T broadcast(const Comm& comm, T v, int root = 0) {
  broadcast(comm, std::span<T>(&v, 1), root);
  return v;
}
std::string broadcast(const Comm& comm, const std::string& s, int root = 0);

template <class T>
std::vector<T> allgather(const Comm& comm, T v) {
  std::vector<T> out(comm.size());
  PREF_MPI_CHECK(MPI_Allgather(&v, 1, datatype<T>(), out.data(), 1, datatype<T>(), comm.get()));
  return out;
}

// Every rank's `mine` concatenated in rank order, on every rank (e.g. each rank's rows of a
// contiguous partition gathered into the whole table). Any sizes: when a count or offset would
// exceed INT_MAX the items move in rounds that keep every MPI count below it.
template <class T>
std::vector<T> allgatherv(const Comm& comm, std::span<const T> mine);

// Personalized all-to-all with 64-bit counts: send[counts[0] items for rank 0, then rank 1...].
// Runs in rounds so that no single MPI call sees a count above INT_MAX.
// Returns the received items ordered by source rank; recv_counts gets the per-source counts.
template <class T>
std::vector<T> alltoallv(const Comm& comm, std::span<const T> send,
                         std::span<const std::uint64_t> send_counts,
                         std::vector<std::uint64_t>* recv_counts_out = nullptr);
// The same with the receive counts known (recv_counts[r] items from rank r) into a caller's
// buffer of exactly their sum, e.g. one reused across calls.
template <class T>
void alltoallv_into(const Comm& comm, std::span<const T> send,
                    std::span<const std::uint64_t> send_counts,
                    std::span<const std::uint64_t> recv_counts, std::span<T> recv);

// The same exchange in rounds of at most `cap` items per pair of ranks, so that no buffer of the
// whole volume is ever formed: pack(dest, from, count, out) writes items [from, from + count) of
// those for rank dest (in their order) to out; take(source, from, items) receives items
// [from, from + size) of those from rank source. recv_counts must match what the peers send.
template <class T, class Pack, class Take>
void alltoallv_rounds(const Comm& comm, std::span<const std::uint64_t> send_counts,
                      std::span<const std::uint64_t> recv_counts, std::uint64_t cap, Pack&& pack,
                      Take&& take);

// A barrier whose waiting ranks sleep between polls (every poll_us microseconds) instead of
// spinning, for ranks that wait on a long serial step of another (pref import's parse on rank
// 0): on a shared or oversubscribed node the working rank keeps the cores.
void sleeping_barrier(const Comm& comm, int poll_us = 1000);

// Runs fn on every rank and makes its outcome collective: if fn threw on any rank, every rank
// throws the same error (the InputError with the smallest order, then the lowest rank),
// marked collective. Must be called by every rank of comm.
void agree(const Comm& comm, const std::function<void()>& fn);

}  // namespace pref::mpi

#include "solver/base/mpi_impl.hpp"
