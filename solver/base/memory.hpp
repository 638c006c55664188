#pragma once
// Refusing, with a message, an allocation that cannot fit, before it is tried: a label file may
// declare up to 2^32 - 1 ids in a few bytes, and the arrays pref keeps per id would otherwise end
// in std::bad_alloc on one rank or in the kernel's out-of-memory kill of the whole job.
#include <cstdint>
#include <string>

#include "solver/base/mpi.hpp"

namespace pref::mem {

// The memory the kernel says is available for new allocations on this node (MemAvailable of
// /proc/meminfo), or 0 when it cannot be read (then nothing is refused).
std::uint64_t available_bytes();

// Throws a collective InputError led by `what` when the ranks of this node together would need
// more than the node's available memory for `bytes` each. Collective.
void require(const mpi::Comm& comm, std::uint64_t bytes, const std::string& what);

}  // namespace pref::mem
