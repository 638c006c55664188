#pragma once
// Template definitions for mpi.hpp.
#include <algorithm>
#include <climits>

namespace pref::mpi {

template <class T>
void alltoallv_into(const Comm& comm, std::span<const T> send,
                    std::span<const std::uint64_t> send_counts,
                    std::span<const std::uint64_t> recv_counts, std::span<T> recv) {
  const int p = comm.size();
  std::vector<std::uint64_t> send_off(p + 1, 0), recv_off(p + 1, 0);
  std::uint64_t max_pair = 0;
  for (int r = 0; r < p; ++r) {
    send_off[r + 1] = send_off[r] + send_counts[r];
    recv_off[r + 1] = recv_off[r] + recv_counts[r];
    max_pair = std::max({max_pair, send_counts[r], recv_counts[r]});
  }
  if (recv_off[p] != recv.size() || send_off[p] != send.size())
    throw Error("alltoallv: buffer sizes do not match the counts");
  // Per round each pair moves at most `cap` items, and the displacements of one call must fit
  // in an int as well, so the cap is INT_MAX / p items.
  const std::uint64_t cap = std::max<std::uint64_t>(1, (INT_MAX / 2) / p);
  const std::uint64_t rounds = allreduce_max(comm, (max_pair + cap - 1) / cap);
  std::vector<int> sc(p), sd(p), rc(p), rd(p);
  std::vector<T> sbuf, rbuf;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    const std::uint64_t lo = round * cap;
    int stot = 0, rtot = 0;
    for (int r = 0; r < p; ++r) {
      sc[r] = static_cast<int>(send_counts[r] > lo ? std::min(cap, send_counts[r] - lo) : 0);
      rc[r] = static_cast<int>(recv_counts[r] > lo ? std::min(cap, recv_counts[r] - lo) : 0);
      sd[r] = stot;
      rd[r] = rtot;
      stot += sc[r];
      rtot += rc[r];
    }
    const T* sptr = send.data();
    T* rptr = recv.data();
    if (rounds > 1) {  // pack this round's pieces contiguously
      sbuf.resize(stot);
      rbuf.resize(rtot);
      for (int r = 0; r < p; ++r)
        std::copy_n(send.data() + send_off[r] + lo, sc[r], sbuf.data() + sd[r]);
      sptr = sbuf.data();
      rptr = rbuf.data();
    }
    PREF_MPI_CHECK(MPI_Alltoallv(sptr, sc.data(), sd.data(), datatype<T>(), rptr, rc.data(),
                                 rd.data(), datatype<T>(), comm.get()));
    if (rounds > 1)
      for (int r = 0; r < p; ++r)
        std::copy_n(rbuf.data() + rd[r], rc[r], recv.data() + recv_off[r] + lo);
  }
}

template <class T>
std::vector<T> alltoallv(const Comm& comm, std::span<const T> send,
                         std::span<const std::uint64_t> send_counts,
                         std::vector<std::uint64_t>* recv_counts_out) {
  const int p = comm.size();
  std::vector<std::uint64_t> recv_counts(p);
  PREF_MPI_CHECK(MPI_Alltoall(send_counts.data(), 1, MPI_UINT64_T, recv_counts.data(), 1,
                              MPI_UINT64_T, comm.get()));
  std::uint64_t total = 0;
  for (auto c : recv_counts) total += c;
  std::vector<T> recv(total);
  alltoallv_into<T>(comm, send, send_counts, recv_counts, recv);
  if (recv_counts_out) *recv_counts_out = std::move(recv_counts);
  return recv;
}

template <class T, class Pack, class Take>
void alltoallv_rounds(const Comm& comm, std::span<const std::uint64_t> send_counts,
                      std::span<const std::uint64_t> recv_counts, std::uint64_t cap, Pack&& pack,
                      Take&& take) {
  const int p = comm.size();
  cap = std::clamp<std::uint64_t>(cap, 1, (INT_MAX / 2) / p);
  std::uint64_t max_pair = 0;
  for (int r = 0; r < p; ++r) max_pair = std::max({max_pair, send_counts[r], recv_counts[r]});
  const std::uint64_t rounds = allreduce_max(comm, (max_pair + cap - 1) / cap);
  std::vector<int> sc(p), sd(p), rc(p), rd(p);
  std::vector<T> sbuf, rbuf;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    const std::uint64_t lo = round * cap;
    int stot = 0, rtot = 0;
    for (int r = 0; r < p; ++r) {
      sc[r] = static_cast<int>(send_counts[r] > lo ? std::min(cap, send_counts[r] - lo) : 0);
      rc[r] = static_cast<int>(recv_counts[r] > lo ? std::min(cap, recv_counts[r] - lo) : 0);
      sd[r] = stot;
      rd[r] = rtot;
      stot += sc[r];
      rtot += rc[r];
    }
    sbuf.resize(stot);
    rbuf.resize(rtot);
    for (int r = 0; r < p; ++r)
      if (sc[r]) pack(r, lo, static_cast<std::uint64_t>(sc[r]), sbuf.data() + sd[r]);
    PREF_MPI_CHECK(MPI_Alltoallv(sbuf.data(), sc.data(), sd.data(), datatype<T>(), rbuf.data(),
                                 rc.data(), rd.data(), datatype<T>(), comm.get()));
    for (int r = 0; r < p; ++r)
      if (rc[r]) take(r, lo, std::span<const T>(rbuf.data() + rd[r], rc[r]));
  }
}

}  // namespace pref::mpi
