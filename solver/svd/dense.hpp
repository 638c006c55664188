#pragma once
// The dense paths of the SVD initialization (`--init svd-exact` and `--init svd-impute`,
// solver/svd/init.hpp): M as a block-cyclic ScaLAPACK matrix. Collective.
#include "solver/base/mpi.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/svd/init.hpp"

namespace pref::svd {

// The exact truncated SVD of M (pdgesvd).
TruncatedSvd exact_svd(const mpi::Comm& comm, const LabelMatrix& train, const SvdConfig& cfg);
// The paper's imputation rounds on the dense X (users x comparisons), then its truncated SVD.
TruncatedSvd impute_svd(const mpi::Comm& comm, const LabelMatrix& train, const SvdConfig& cfg);

}  // namespace pref::svd
