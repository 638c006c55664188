#pragma once
// Item models of the fit (issue 14; docs/design.md, "Item models"): how the comparison factors
// z_p are made.
//   comparisons: z_p free (the fit's own comparison half-step; nothing here);
//   responses:   a free J-vector phi_r per response, z_p = phi_a - phi_b;
//   embeddings:  phi_r = W^T e_r with a learned d x J head W on given response embeddings,
//                z_p = W^T x_p with x_p = e_a - e_b.
// In both, z = A theta is linear in the parameters theta (Phi or W), and the item half-step is
// one Newton step on
//   F(theta) = sum_p loss_p(A_p theta) + (mu_z/2) sum_p |A_p theta|^2 + (mu_w/2) |theta|^2
// from the per-comparison gradient g_p and Hessian H_p of the labels' loss in z_p (what the
// comparison half-step forms anyway): gradient A^T (g + mu_z z) + mu_w theta, Hessian
// A^T (H + mu_z I) A + mu_w I, i.e. sum_p x_p g_p^T and sum_p (x_p x_p^T) (x) H_p for the head.
// The head's direction is solved by Cholesky of the explicit d J x d J Hessian when d J is at
// most cholesky_max, else (and always for responses, whose Phi is distributed by response) by
// an inexact Newton-CG: matrix-free Hessian products (for the head, two matrix products with
// the ranks' embedding rows, E V and E^T S, and a J x J product per comparison), a block-Jacobi
// preconditioner (one J x J block per row of theta), and a truncated CG whose relative residual
// is an Eisenstat-Walker forcing term min(cg_forcing, sqrt(|gradient|)) and whose iterations
// are capped (cg_max_iterations); the step length by the same Armijo ladder as the rows
// (solver/newton/newton.hpp), summed over all ranks, so every step decreases F.
#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "solver/base/enum_names.hpp"
#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"
#include "solver/layout/exchange.hpp"

namespace pref {

namespace io {
class LabelFile;
}

enum class Items { kComparisons, kResponses, kEmbeddings };
inline constexpr EnumNames<Items, 3> kItemsNames{{{{Items::kComparisons, "comparisons"},
                                                   {Items::kResponses, "responses"},
                                                   {Items::kEmbeddings, "embeddings"}}}};
inline const char* items_name(Items i) {
  return kItemsNames.name(i);
}
// The model file's dataset of each item model's parameters (docs/format.md).
inline constexpr EnumNames<Items, 2> kItemParamsDatasets{
    {{{Items::kResponses, "response_factors"}, {Items::kEmbeddings, "embedding_head"}}}};

// The response structure the item models need, read from a version-2 label file.
struct ItemData {
  Items kind = Items::kComparisons;
  std::uint64_t responses = 0;
  std::vector<std::uint32_t> first, second;  // every comparison's two responses
  std::uint64_t dim = 0;                     // embeddings: d
  Partition response_rows;                   // embeddings: the rows of `embedding` of each rank
  std::vector<double> embedding;             // this rank's rows of the embedding x d
};

// Collective. The item data of `file` for `kind`; an InputError naming `option` and the file
// when the file lacks what the kind needs (responses: /responses; embeddings: also
// /responses/embedding, whose rows are checked finite as they are read).
ItemData load_item_data(const io::LabelFile& file, Items kind, const mpi::Comm& comm,
                        const std::string& option);

// The labels' loss derivatives in z_p for this rank's comparisons (in order): the gradient
// (nc x J) and the Hessian (nc x J x J, full symmetric).
struct ComparisonDerivs {
  std::vector<double> g, H;
};

// For a direction V (nc x J) of this rank's z and the step lengths `steps`, adds to change[l]
// this rank's sum over its labels of BCE(z_p + steps[l] v_p) - BCE(z_p), term by term. With
// `measure`, the caller also keeps, from the same pass, its labels' loss and gradient in z_p at
// z_p + steps[0] v_p: the state's measurement when that step is taken (last_measured()).
using LabelChange = std::function<void(const std::vector<double>& V, std::span<const double> steps,
                                       std::span<double> change, bool measure)>;

struct ItemConfig {
  int J = 8;
  double mu_z = 3.0;                  // (mu_z/2) sum_p |z_p|^2, as for free comparisons
  double mu_w = 1e-3;                 // (mu_w/2) |theta|^2: fixes what the differences leave free
  std::uint64_t cholesky_max = 4096;  // embeddings: Cholesky when d J is at most this
  // Newton-CG: stop at a relative residual of cg_tol when it is positive, else at the forcing
  // term min(cg_forcing, sqrt(|gradient|)) (inexact Newton), after at most cg_max_iterations.
  double cg_tol = 0;
  double cg_forcing = 0.1;
  int cg_max_iterations = 100;
  // embeddings: phi_r = W^T e_r + d_r with a free residual d_r per response and the ridge
  // (mu_residual/2) sum_r |d_r|^2 (fit --residual, --mu-residual; docs/design.md, "Item
  // models"). The fit holds the residuals in a second ItemModel of kind responses on the same
  // data, whose mu_w is mu_residual.
  bool residual = false;
  double mu_residual = 10.0;
};

class ItemModel {
 public:
  // comparisons: the fit's partition of comparisons (this rank's are its range). Collective.
  ItemModel(const mpi::Comm& comm, std::shared_ptr<const ItemData> data,
            const Partition& comparisons, const ItemConfig& cfg);
  // A model of kind `kind` on `data`: kResponses on embeddings data is the residual d_r of
  // --residual (its rows by response, its ridge cfg.mu_w). Collective.
  ItemModel(const mpi::Comm& comm, std::shared_ptr<const ItemData> data,
            const Partition& comparisons, const ItemConfig& cfg, Items kind);

  Items kind() const { return kind_; }
  // Rows of theta and this rank's share: responses R x J, distributed uniformly by response;
  // embeddings d x J, replicated (param_rows() gives all rows to rank 0, for writing).
  const Partition& param_rows() const { return rows_; }
  std::vector<double>& params() { return theta_; }
  const std::vector<double>& params() const { return theta_; }
  // This rank's rows of theta as param_rows() places them.
  std::vector<double> owned_params() const;
  // All of theta, rows in order, on every rank (checkpoints). Collective.
  std::vector<double> all_params() const;
  // theta from all_params()'s form (a resume); false when `all` has another size.
  bool set_all_params(const std::vector<double>& all);

  // Z = A theta for this rank's comparisons (nc x J). Collective.
  void comparisons(std::vector<double>& Z) const;
  // Z += A theta (a second model's share of z_p: the residual of --residual). Collective.
  void add_comparisons(std::vector<double>& Z) const;
  // One damped Newton step of theta at Z = A theta; updates theta and Z. Returns the step
  // length (0: none decreased F). Collective.
  double newton_step(std::vector<double>& Z, const ComparisonDerivs& d, const LabelChange& change);
  // --residual: one damped Newton step of theta = (W, D) together, the head `head`
  // (embeddings) and the residuals `resid` (responses kind on the same data), at Z = A_W W +
  // A_D D; updates both and Z. The direction by Newton-CG on the joint Hessian, preconditioned
  // by the head's explicit Hessian block (Cholesky, d J <= cholesky_max) or its block-Jacobi,
  // and the residuals' block-Jacobi; the Armijo ladder on the joint objective. Returns the step
  // length (0: none decreased F). Collective.
  static double joint_newton_step(ItemModel& head, ItemModel& resid, std::vector<double>& Z,
                                  const ComparisonDerivs& d, const LabelChange& change);

  // Pieces, exposed for tests. Vectors in theta's local layout (params()).
  // The gradient A^T (g + mu_z Z) + mu_w theta. Collective.
  std::vector<double> gradient(const std::vector<double>& Z, const std::vector<double>& g) const;
  // (A^T (H + mu_z I) A + mu_w I) v. Collective.
  std::vector<double> hessian_times(const std::vector<double>& H,
                                    const std::vector<double>& v) const;
  // Embeddings: the explicit d J x d J Hessian, index k J + j for W(k, j). Collective.
  Eigen::MatrixXd hessian(const std::vector<double>& H) const;
  // This rank's share of |gradient|^2 and of (mu_w/2)|theta|^2 (their sums over ranks are the
  // totals).
  double gradient_norm2_share(const std::vector<double>& Z, const std::vector<double>& g) const;
  double regularization_share() const;
  // Global dot product of two vectors in theta's layout. Collective.
  double dot(const std::vector<double>& a, const std::vector<double>& b) const;

  // Fixes at 0 the rows of theta (responses) in no comparison with labels (labelled: one flag
  // per comparison of this rank): the residuals of --residual exist only for responses with
  // training labels, so a held-out response's phi is the head's alone (and the mu_z pull on its
  // unlabelled comparisons cannot move it). Responses kind only. Collective.
  void fix_unlabelled(std::span<const char> labelled);

  // theta <- theta Q (rows rotated as the fit rotates U and Z).
  void rotate(const Eigen::MatrixXd& Q);

  // How the last direction was solved: "cholesky" or "cg", and CG's iterations.
  const char* last_solver() const { return last_solver_; }
  // Whether the last newton_step took the step the LabelChange measured (then Z + V is where
  // the caller's measurement is).
  bool last_measured() const { return last_measured_; }
  int last_cg_iterations() const { return last_cg_; }

 private:
  // Zeroes the fixed rows (fix_unlabelled) of a vector in theta's layout.
  void mask(std::vector<double>& v) const;
  // v_p = A_p v for this rank's comparisons (nc x J).
  void apply(const std::vector<double>& v, std::vector<double>& out) const;
  // A^T w (w: nc x J), in theta's layout. Collective.
  std::vector<double> adjoint(const std::vector<double>& w) const;
  // x_p = e_a - e_b (embeddings).
  void difference(std::size_t c, double* x) const;
  std::vector<double> solve_cg(const std::vector<double>& H, const std::vector<double>& G);
  // The block-Jacobi preconditioner: per row of theta the J x J diagonal block of the Hessian,
  // Cholesky-factored (rows x J x J, lower factors).
  std::vector<double> block_jacobi(const std::vector<double>& H) const;
  // Embeddings: P = E_ghost V (ghost responses x J) and E_ghost^T S (d x J, this rank's sum).
  void embed(const double* V, std::vector<double>& P) const;
  void embed_adjoint(const std::vector<double>& S, double* out) const;

  const mpi::Comm& comm_;
  std::shared_ptr<const ItemData> data_;
  Items kind_;
  ItemConfig cfg_;
  int J_;
  std::uint64_t c0_ = 0, nc_ = 0;
  Partition rows_;
  std::vector<double> theta_;
  std::vector<char> fixed_;             // fix_unlabelled: per row of theta, held at 0
  GhostPlan plan_;                      // responses: Phi rows; embeddings: embedding rows
  std::vector<std::uint32_t> ia_, ib_;  // per comparison: ghost index of its responses
  std::vector<double> emb_ghost_;       // embeddings: ghost rows x d (each row contiguous)
  const char* last_solver_ = "";
  int last_cg_ = 0;
  double last_eta_ = 0;
  double last_precondition_cpu_ = 0;
  bool last_measured_ = false;
};

}  // namespace pref
