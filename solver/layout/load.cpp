#include "solver/layout/load.hpp"

#include <algorithm>

#include "solver/newton/ordinal.hpp"

namespace pref {

LabelMatrix load_split(const io::LabelFile& file, io::Split split, const mpi::Comm& comm,
                       const std::optional<Partitions>& parts, const LoadOptions& opt) {
  LabelColumns cols = file.read(split, comm);
  if (opt.categorical)
    mpi::agree(comm, [&] {
      ordinal::check_categorical(cols, file.path() + ": " + io::split_group(split) + "/value");
    });
  if (opt.drop_ties) {
    std::size_t out = 0;
    for (std::size_t i = 0; i < cols.size(); ++i) {
      if (cols.value[i] == 0.5f) continue;
      cols.user[out] = cols.user[i];
      cols.comparison[out] = cols.comparison[i];
      cols.value[out] = cols.value[i];
      ++out;
    }
    cols.user.resize(out);
    cols.comparison.resize(out);
    cols.value.resize(out);
  }
  const std::uint64_t users = file.users_of(split);
  const Partitions p =
      parts ? *parts : balanced_partitions(comm, cols, users, file.comparisons(), file.path());
  return distribute(comm, std::move(cols), p, users, file.comparisons(), opt.duplicates,
                    file.path() + ": " + io::split_group(split));
}

}  // namespace pref
