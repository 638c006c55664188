#pragma once
// Reference models of a synthetic population, from its ground truth (/truth, docs/format.md):
// the ceilings a fit is judged against (docs/results.md).
//   truth: the true model, u_i . z_p / T with the true factors and the generator's
//          temperature T;
//   bayes: the known-comparisons Bayes ceiling: each user's MAP estimate from its training
//          labels with the true comparison factors z_p / T and the true population's mean and
//          covariance as the prior (their moments over all users of /truth/user_weights). It is
//          what a perfect fit of Z and of the prior would give with each user's answers;
//   known-users: the known-users ceiling: first each comparison's MAP estimate from its
//          training labels with the true users (and the true comparison factors' moments as
//          its prior), then each user's MAP as in bayes but with these estimated factors. It is
//          about what the labels can tell of Z at best: the fit knows no user better than the
//          truth does. Where comparisons have few labels it lies well below bayes.
#include <string>

#include "solver/base/enum_names.hpp"

#include "io/label_file.hpp"
#include "solver/fit/fit.hpp"
#include "solver/layout/distribute.hpp"

namespace pref {

enum class Reference { kTruth, kBayes, kKnownUsers };
inline constexpr EnumNames<Reference, 3> kReferenceNames{
    {{{Reference::kTruth, "truth"},
      {Reference::kBayes, "bayes"},
      {Reference::kKnownUsers, "known-users"}}}};

// Factors of this rank's rows of `parts` (users and comparisons) for the reference. `train`
// (partitioned by `parts`) gives the answers for kBayes and kKnownUsers. Collective; a file without
// /truth is an InputError naming it.
Factors reference_factors(const mpi::Comm& comm, const io::LabelFile& data, Reference kind,
                          const LabelMatrix& train);

}  // namespace pref
