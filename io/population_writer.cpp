#include "io/population_writer.hpp"

#include <type_traits>

namespace pref::io {

namespace {

void write_generator(hid_t file, const GeneratorAttributes& attributes, const std::string& what) {
  h5::Handle g = h5::create_group(file, "/generator", what);
  for (const auto& [name, value] : attributes) {
    std::visit(
        [&, &name = name](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>)
            h5::write_string_attribute(g.get(), name, v, what);
          else
            h5::write_attribute<T>(g.get(), name, v, what);
        },
        value);
  }
}

}  // namespace

PopulationWriter::PopulationWriter(const std::string& path, const mpi::Comm& comm,
                                   const PopulationLayout& layout,
                                   const GeneratorAttributes& generator)
    : layout_(layout),
      comm_(comm.view()),
      labels_(path, comm, layout.users, layout.comparisons, layout.responses > 0) {
  const PopulationLayout& c = layout_;
  labels_.create(Split::kTrain, c.users * c.train_answers, true);
  if (c.validation_answers > 0)
    labels_.create(Split::kValidation, c.users * c.validation_answers, true);
  if (c.test_answers > 0) labels_.create(Split::kTest, c.users * c.test_answers, true);
  if (c.new_users > 0)
    labels_.create(Split::kNewUsers, c.new_users * c.new_user_answers, true, c.new_users);
  const hid_t f = labels_.handle();
  write_generator(f, generator, path);

  truth_ = h5::create_group(f, "/truth", path);
  const hsize_t zdims[2] = {c.comparisons, c.rank};
  comparison_factors_ =
      h5::create_dataset(truth_.get(), "comparison_factors", H5T_IEEE_F32LE, zdims, path);
  if (c.responses > 0) {
    labels_.create_responses(c.responses, c.prompts, c.embedding_dim);
    const hsize_t sdims[2] = {c.responses, c.response_attributes};
    response_attributes_ =
        h5::create_dataset(truth_.get(), "response_attributes", H5T_IEEE_F32LE, sdims, path);
    if (c.embedding_dim > 0) {
      const hsize_t mdims[2] = {c.response_attributes, c.embedding_dim};
      embedding_map_ =
          h5::create_dataset(truth_.get(), "embedding_map", H5T_IEEE_F32LE, mdims, path);
    }
  }
  for (bool nu : {false, true}) {
    const std::uint64_t n = nu ? c.new_users : c.users;
    if (n == 0) continue;
    if (nu) new_truth_ = h5::create_group(f, "/new_users/truth", path);
    const hid_t loc = nu ? new_truth_.get() : truth_.get();
    Truth& t = nu ? new_users_ : users_;
    const hsize_t wdims[2] = {n, c.rank};
    const hsize_t tdims[1] = {n};
    t.weights = h5::create_dataset(loc, "user_weights", H5T_IEEE_F32LE, wdims, path);
    if (c.typed) t.types = h5::create_dataset(loc, "user_type", H5T_STD_I16LE, tdims, path);
  }
}

void PopulationWriter::write_comparison_factors(std::uint64_t p0, std::span<const float> z) {
  h5::write_rows<float>(comparison_factors_.get(), p0, z.size() / layout_.rank, z, comm_,
                        path() + ": /truth/comparison_factors");
}

void PopulationWriter::write_responses(std::uint64_t r0, std::span<const std::uint32_t> prompt,
                                       std::span<const float> embedding,
                                       std::span<const float> attributes) {
  labels_.write_responses(r0, prompt, embedding);
  h5::write_rows<float>(response_attributes_.get(), r0, prompt.size(), attributes, comm_,
                        path() + ": /truth/response_attributes");
}

void PopulationWriter::write_pairs(std::uint64_t p0, std::span<const std::uint32_t> first,
                                   std::span<const std::uint32_t> second) {
  labels_.write_pairs(p0, first, second);
}

void PopulationWriter::write_embedding_map(std::uint64_t k0, std::span<const float> m) {
  h5::write_rows<float>(embedding_map_.get(), k0, m.size() / layout_.embedding_dim, m, comm_,
                        path() + ": /truth/embedding_map");
}

std::uint64_t PopulationWriter::write_users(bool new_users, std::uint64_t u0, std::uint64_t n,
                                            std::span<const LabelColumns> splits,
                                            std::span<const float> weights,
                                            std::span<const std::int16_t> types) {
  const PopulationLayout& c = layout_;
  const std::uint64_t per_user[3] = {new_users ? c.new_user_answers : c.train_answers,
                                     c.validation_answers, c.test_answers};
  const Split which[3] = {new_users ? Split::kNewUsers : Split::kTrain, Split::kValidation,
                          Split::kTest};
  const std::size_t n_splits = new_users ? 1 : 3;
  std::uint64_t written = 0;
  for (std::size_t s = 0; s < n_splits && s < splits.size(); ++s) {
    if (per_user[s] == 0) continue;  // the split was not created (no answers held out)
    labels_.write(which[s], u0 * per_user[s], splits[s]);
    written += splits[s].size();
  }
  const Truth& t = new_users ? new_users_ : users_;
  h5::write_rows<float>(t.weights.get(), u0, n, weights, comm_, path() + ": truth");
  if (c.typed) h5::write_rows<std::int16_t>(t.types.get(), u0, n, types, comm_, path() + ": truth");
  return written;
}

void PopulationWriter::close() {
  users_ = Truth{};
  new_users_ = Truth{};
  comparison_factors_.reset();
  response_attributes_.reset();
  embedding_map_.reset();
  new_truth_.reset();
  truth_.reset();
  labels_.close();
}

}  // namespace pref::io
