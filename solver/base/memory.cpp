#include "solver/base/memory.hpp"

#include <fmt/core.h>

#include <fstream>
#include <sstream>

namespace pref::mem {

std::uint64_t available_bytes() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream s(line);
    std::string key;
    std::uint64_t kib = 0;
    if (s >> key >> kib && key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

void require(const mpi::Comm& comm, std::uint64_t bytes, const std::string& what) {
  // The ranks that share this node's memory.
  MPI_Comm node_raw = MPI_COMM_NULL;
  PREF_MPI_CHECK(
      MPI_Comm_split_type(comm.get(), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node_raw));
  mpi::Comm node(node_raw);
  const std::uint64_t need = mpi::allreduce_sum(node, bytes);
  const int ranks = node.size();
  MPI_Comm_free(&node_raw);
  const std::uint64_t have = available_bytes();
  mpi::agree(comm, [&] {
    if (have > 0 && need > have)
      throw InputError(
          fmt::format("{}: needs {:.3g} GB on this node ({} rank{}), more than its "
                      "{:.3g} GB available",
                      what, need / 1e9, ranks, ranks == 1 ? "" : "s", have / 1e9));
  });
}

}  // namespace pref::mem
