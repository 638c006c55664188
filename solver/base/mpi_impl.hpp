#pragma once
// Template definitions for mpi.hpp.
#include <algorithm>
#include <climits>
#include <limits>

namespace pref::mpi {

namespace detail {

// The rounds of a personalized all-to-all in which each pair of ranks moves at most `cap`
// items per round, so that no count or displacement of one MPI call exceeds INT_MAX (the cap
// is at most INT_MAX / 2p items). Collective (the round count is agreed on).
struct Rounds {
  std::uint64_t cap = 1, count = 0;
  std::vector<int> sc, sd, rc, rd;  // this round's counts and displacements per rank
  int stot = 0, rtot = 0;           // this round's items sent and received in all

  Rounds(const Comm& comm, std::span<const std::uint64_t> send_counts,
         std::span<const std::uint64_t> recv_counts, std::uint64_t max_cap)
      : sc(comm.size()), sd(comm.size()), rc(comm.size()), rd(comm.size()) {
    const int p = comm.size();
    cap = std::clamp<std::uint64_t>(max_cap, 1, std::max(1, (INT_MAX / 2) / p));
    std::uint64_t max_pair = 0;
    for (int r = 0; r < p; ++r) max_pair = std::max({max_pair, send_counts[r], recv_counts[r]});
    count = allreduce_max(comm, (max_pair + cap - 1) / cap);
  }
  // Sets the counts of round `round` (items [lo, lo + cap) of every pair); returns lo.
  std::uint64_t select(std::uint64_t round, std::span<const std::uint64_t> send_counts,
                       std::span<const std::uint64_t> recv_counts) {
    const std::uint64_t lo = round * cap;
    stot = rtot = 0;
    for (std::size_t r = 0; r < sc.size(); ++r) {
      sc[r] = static_cast<int>(send_counts[r] > lo ? std::min(cap, send_counts[r] - lo) : 0);
      rc[r] = static_cast<int>(recv_counts[r] > lo ? std::min(cap, recv_counts[r] - lo) : 0);
      sd[r] = stot;
      rd[r] = rtot;
      stot += sc[r];
      rtot += rc[r];
    }
    return lo;
  }
};

}  // namespace detail

template <class T>
std::vector<T> allgatherv(const Comm& comm, std::span<const T> mine) {
  const int p = comm.size();
  const std::vector<std::uint64_t> counts = allgather(comm, std::uint64_t{mine.size()});
  std::vector<std::uint64_t> off(p + 1, 0);
  for (int r = 0; r < p; ++r) off[r + 1] = off[r] + counts[r];
  std::vector<T> all(off[p]);
  // Items per rank and round: every count and displacement of a round stays below INT_MAX.
  const std::uint64_t cap = std::max<std::uint64_t>(1, (INT_MAX / 2) / p);
  const std::uint64_t most = *std::max_element(counts.begin(), counts.end());
  std::vector<int> c(p), d(p);
  if (off[p] <= static_cast<std::uint64_t>(INT_MAX)) {  // one call, straight into place
    for (int r = 0; r < p; ++r) {
      c[r] = static_cast<int>(counts[r]);
      d[r] = static_cast<int>(off[r]);
    }
    PREF_MPI_CHECK(MPI_Allgatherv(mine.data(), c[comm.rank()], datatype<T>(), all.data(), c.data(),
                                  d.data(), datatype<T>(), comm.get()));
    return all;
  }
  std::vector<T> buf;
  for (std::uint64_t lo = 0; lo < most; lo += cap) {
    int total = 0;
    for (int r = 0; r < p; ++r) {
      c[r] = static_cast<int>(counts[r] > lo ? std::min(cap, counts[r] - lo) : 0);
      d[r] = total;
      total += c[r];
    }
    buf.resize(total);
    const int me = comm.rank();
    PREF_MPI_CHECK(MPI_Allgatherv(mine.data() + std::min<std::uint64_t>(lo, mine.size()), c[me],
                                  datatype<T>(), buf.data(), c.data(), d.data(), datatype<T>(),
                                  comm.get()));
    for (int r = 0; r < p; ++r) std::copy_n(buf.data() + d[r], c[r], all.data() + off[r] + lo);
  }
  return all;
}

template <class T>
void alltoallv_into(const Comm& comm, std::span<const T> send,
                    std::span<const std::uint64_t> send_counts,
                    std::span<const std::uint64_t> recv_counts, std::span<T> recv) {
  const int p = comm.size();
  std::vector<std::uint64_t> send_off(p + 1, 0), recv_off(p + 1, 0);
  for (int r = 0; r < p; ++r) {
    send_off[r + 1] = send_off[r] + send_counts[r];
    recv_off[r + 1] = recv_off[r] + recv_counts[r];
  }
  if (recv_off[p] != recv.size() || send_off[p] != send.size())
    throw Error("alltoallv: buffer sizes do not match the counts");
  detail::Rounds rounds(comm, send_counts, recv_counts, std::numeric_limits<std::uint64_t>::max());
  std::vector<T> sbuf, rbuf;
  for (std::uint64_t round = 0; round < rounds.count; ++round) {
    const std::uint64_t lo = rounds.select(round, send_counts, recv_counts);
    const T* sptr = send.data();
    T* rptr = recv.data();
    if (rounds.count > 1) {  // pack this round's pieces contiguously
      sbuf.resize(rounds.stot);
      rbuf.resize(rounds.rtot);
      for (int r = 0; r < p; ++r)
        std::copy_n(send.data() + send_off[r] + lo, rounds.sc[r], sbuf.data() + rounds.sd[r]);
      sptr = sbuf.data();
      rptr = rbuf.data();
    }
    PREF_MPI_CHECK(MPI_Alltoallv(sptr, rounds.sc.data(), rounds.sd.data(), datatype<T>(), rptr,
                                 rounds.rc.data(), rounds.rd.data(), datatype<T>(), comm.get()));
    if (rounds.count > 1)
      for (int r = 0; r < p; ++r)
        std::copy_n(rbuf.data() + rounds.rd[r], rounds.rc[r], recv.data() + recv_off[r] + lo);
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
  detail::Rounds rounds(comm, send_counts, recv_counts, cap);
  std::vector<T> sbuf, rbuf;
  for (std::uint64_t round = 0; round < rounds.count; ++round) {
    const std::uint64_t lo = rounds.select(round, send_counts, recv_counts);
    sbuf.resize(rounds.stot);
    rbuf.resize(rounds.rtot);
    for (std::size_t r = 0; r < rounds.sc.size(); ++r)
      if (rounds.sc[r])
        pack(static_cast<int>(r), lo, static_cast<std::uint64_t>(rounds.sc[r]),
             sbuf.data() + rounds.sd[r]);
    PREF_MPI_CHECK(MPI_Alltoallv(sbuf.data(), rounds.sc.data(), rounds.sd.data(), datatype<T>(),
                                 rbuf.data(), rounds.rc.data(), rounds.rd.data(), datatype<T>(),
                                 comm.get()));
    for (std::size_t r = 0; r < rounds.rc.size(); ++r)
      if (rounds.rc[r])
        take(static_cast<int>(r), lo, std::span<const T>(rbuf.data() + rounds.rd[r], rounds.rc[r]));
  }
}

}  // namespace pref::mpi
