#pragma once
// Initialization of the factors by a truncated SVD of the training labels (MISSION.md,
// "Initialization by SVD"; issue 4).
//
// M is the users x comparisons matrix with M_ip = 2 y_ip - 1 on training labels, 0 elsewhere.
//  - kRandomized (--init svd): the randomized range finder of Halko, Martinsson and Tropp
//    (2011) with power iterations on the existing sparse distribution: the sketch Omega is a
//    pure function of (seed, comparison id); the sparse products stream one orientation of the
//    labels (rows of the larger side, normally users) with fixed-width kernels, gathering the
//    other side's rows for M X and scattering into them (then reducing to their owners) for
//    M^T Q; the tall-skinny orthonormalizations are CholeskyQR2 on the row ranges (shifted
//    CholeskyQR3, then ScaLAPACK's Householder pdgeqrf + pdorgqr on a P x 1 grid as fallbacks;
//    scalapack::orthonormalize), or always Householder with qr = kHouseholder; the small SVD
//    is pdgesvd.
//  - kExact (--init svd-exact): pdgesvd of the dense M, block-cyclic on a 2-D grid (the
//    reference of the randomized path); up to kMaxDenseEntries entries.
//  - kImpute (--init svd-impute): the paper's variant on the dense X (users x comparisons, the
//    transpose of the paper's pairs x users): X = y where observed, 0.5 elsewhere; `rounds`
//    times: SVD, rank-J reconstruction, overwrite only the missing entries, clip to [0, 1];
//    then the factors from the SVD of the final X. X is dense (block-cyclic on a 2-D grid), so
//    this variant has the same size limit as kExact. Each SVD is the randomized range finder
//    on the dense X (pdgemm products, pdgeqrf + pdorgqr on the 2-D grid, same sketch, width and
//    power iterations as kRandomized), or the exact pdgesvd with impute_exact (slow: 7 s per
//    round for 5000 x 1000 on 2 ranks). The clipping makes X neither sparse nor low-rank, which
//    is why this variant is not run on the sparse distribution.
//
// From the SVD M ~ A diag(S) B^T: U = c A_J sqrt(S_J), Z = c B_J sqrt(S_J), where c (one number)
// makes the root-mean-square margin u_i . z_p over the training labels equal to rms_margin
// (default 1: sigmoid(+-1) = 0.73 / 0.27, a confident but unsaturated start for the first
// Newton sweep). The rank-J approximation of a +-1 matrix has margins far below 1 when labels
// are sparse, so without c the first sweep would start near the all-0.5 saddle. kImpute is not
// scaled (its margins are the paper's reconstructed label probabilities), unless
// scale_impute is set.
// Signs: each singular pair is flipped so that the largest-magnitude entry of B's column (the
// smallest comparison id among ties) is positive, so results are repeatable.
// Columns with no usable singular value (J above min(users, comparisons), or S_j <= 1e-12 S_1)
// get the random initialization of random_factors (seed, init_scale) instead.
//
// Reproducibility: bitwise the same at the same rank count and seed, whatever the number of
// threads (--threads; OpenBLAS's own threads split only output dimensions of the dsyrk, dtrsm
// and dgemm calls here: checked bitwise at 1, 2 and 4); at other rank counts the
// same up to round-off amplified by 1 / (relative gap between singular values), i.e. to about
// 1e-12 when the top J + 1 singular values are well separated.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "solver/base/enum_names.hpp"
#include "solver/base/mpi.hpp"
#include "solver/eval/split_scores.hpp"  // rms_margin
#include "solver/layout/distribute.hpp"
#include "solver/layout/factors.hpp"
#include "solver/svd/scalapack.hpp"

namespace pref {

enum class SvdKind { kRandomized, kExact, kImpute };
inline constexpr EnumNames<SvdKind, 3> kSvdKindNames{{{{SvdKind::kRandomized, "svd"},
                                                       {SvdKind::kExact, "svd-exact"},
                                                       {SvdKind::kImpute, "svd-impute"}}}};
inline const char* svd_kind_name(SvdKind k) {
  return kSvdKindNames.name(k);
}

// `fit --init`: one of the SVD initializations, or random factors (solver/layout/factors.hpp).
enum class Init { kSvd, kSvdExact, kSvdImpute, kRandom };
inline constexpr EnumNames<Init, 4> kInitNames{{{{Init::kSvd, "svd"},
                                                 {Init::kSvdExact, "svd-exact"},
                                                 {Init::kSvdImpute, "svd-impute"},
                                                 {Init::kRandom, "random"}}}};
// The SVD kind of an SVD initialization (kRandom: none, kRandomized returned).
inline SvdKind svd_kind(Init i) {
  return i == Init::kSvdExact    ? SvdKind::kExact
         : i == Init::kSvdImpute ? SvdKind::kImpute
                                 : SvdKind::kRandomized;
}

struct SvdConfig {
  SvdKind kind = SvdKind::kRandomized;
  int J = 8;
  int oversampling = 10;  // randomized: sketch width k = J + oversampling
  // randomized: at most q passes of M M^T, fewer when the top J singular value estimates settle
  // to power_tol (relative change in one pass; 0: always q passes)
  int power_iterations = 30;
  double power_tol = 1e-3;
  // randomized: tall-skinny orthonormalization (CholeskyQR2 with fallbacks, or Householder)
  scalapack::TallSkinnyQr qr = scalapack::TallSkinnyQr::kCholesky;
  int threads = 1;  // randomized: OpenMP threads of the sparse products
  // randomized: the partner table of the sparse products (see svd_init.cpp): every partner id
  // or only those this rank's labels touch; kAuto chooses (the result is the same bits).
  enum class Table { kAuto, kDense, kSparse } table = Table::kAuto;
  int impute_rounds = 10;     // impute: SVD-reconstruct-impute rounds
  std::uint64_t seed = 1;     // sketch (Stream::kSketch) and fallback columns (Stream::kInit)
  double rms_margin = 1.0;    // the scaling target; <= 0: no scaling
  bool scale_impute = false;  // also scale the kImpute factors
  bool impute_exact = false;  // kImpute: every SVD by pdgesvd instead of the range finder
  double init_scale = 0.1;    // fallback columns: N(0, init_scale^2) as random_factors
  // Dense paths (kExact, kImpute): process grid rows (0: the most square grid) and block size
  // (0: automatic).
  int grid_rows = 0;
  int block = 0;
};

// Dense paths refuse matrices with more entries than this.
inline constexpr double kMaxDenseEntries = 4e8;

// A rank-r truncated SVD, distributed like the factors (r <= J columns).
struct TruncatedSvd {
  int r = 0;
  std::vector<double> S;         // r values, descending
  std::vector<double> A;         // this rank's user rows x r (row-major): left vectors
  std::vector<double> B;         // this rank's comparison rows x r (row-major): right vectors
  std::vector<double> spectrum;  // every singular value (estimate) computed, descending
  // Wall time of the parts (rank 0's view): sparse or dense products with their exchanges, QRs
  // and SVDs, the sparse operator's set-up (randomized: exchange plan, BLACS grid), and the
  // total (with everything else: sketch, assembling A and B, signs).
  double seconds_products = 0, seconds_factorizations = 0, seconds_setup = 0, seconds_total = 0;
  // Randomized: how many tall-skinny orthonormalizations took each path, indexed by
  // scalapack::QrPath (CholeskyQR2, shifted CholeskyQR3, Householder).
  int qr_paths[3] = {0, 0, 0};
  // Randomized: the power iterations run, and the largest relative change of the top r
  // singular value estimates in the last one (infinity when fewer than two were compared).
  int power_iterations = 0;
  double power_change = std::numeric_limits<double>::infinity();
};

// The truncated SVD of M (kRandomized, kExact) or of the final imputed X (kImpute), with the
// sign convention above. Collective.
TruncatedSvd truncated_svd(const mpi::Comm& comm, const LabelMatrix& train, const SvdConfig& cfg);

// Factors from a truncated SVD: sqrt(S) split, scaling and fallback columns as above.
// Collective.
Factors factors_from_svd(const mpi::Comm& comm, const LabelMatrix& train, const TruncatedSvd& svd,
                         const SvdConfig& cfg);

// truncated_svd then factors_from_svd. Collective; errors (e.g. the dense size limit, an
// InputError) are thrown on every rank alike.
Factors svd_init(const mpi::Comm& comm, const LabelMatrix& train, const SvdConfig& cfg);

}  // namespace pref
