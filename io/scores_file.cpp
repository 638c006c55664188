#include "io/scores_file.hpp"

#include <fmt/core.h>

namespace pref::io {

ScoresWriter::ScoresWriter(const std::string& path, const mpi::Comm& comm, const ScoresHeader& hd)
    : path_(path), comm_(comm.view()) {
  mpi::agree(comm_, [&] { file_ = h5::create_file(path, comm_); });
  const std::string& what = path_;
  const hid_t h = file_.get();
  write_format(h, kScoresFile, what);
  h5::write_attribute<std::uint64_t>(h, "users", hd.users, what);
  h5::write_attribute<std::uint64_t>(h, "first_user", hd.first_user, what);
  h5::write_attribute<std::uint64_t>(h, "responses", hd.responses, what);
  h5::write_attribute<std::uint64_t>(h, "prompts", hd.prompts, what);
  h5::write_attribute<std::uint32_t>(h, "rank", hd.rank, what);
  h5::write_string_attribute(h, "items", hd.items, what);
  h5::write_attribute<std::uint64_t>(h, "residual_responses", hd.residual_responses, what);
  h5::write_string_attribute(h, "model", hd.model, what);
  h5::write_string_attribute(h, "responses_file", hd.responses_file, what);
  h5::write_string_attribute(h, "source", hd.source, what);
  if (!hd.adapted.empty()) h5::write_string_attribute(h, "adapted", hd.adapted, what);
  if (hd.best) {
    const hsize_t bd[2] = {hd.users, hd.prompts};
    best_ = h5::create_dataset(h, "best", H5T_STD_U32LE, bd, what);
    best_score_ = h5::create_dataset(h, "best_score", H5T_IEEE_F32LE, bd, what);
  } else {
    const hsize_t sd[2] = {hd.users, hd.responses};
    scores_ = h5::create_dataset(h, "scores", H5T_IEEE_F32LE, sd, what);
  }
}

void ScoresWriter::write_scores(std::uint64_t row0, std::uint64_t rows,
                                std::span<const float> scores) {
  h5::write_rows<float>(scores_.get(), row0, rows, scores, comm_, path_ + ": /scores");
}

void ScoresWriter::write_best(std::uint64_t row0, std::uint64_t rows,
                              std::span<const std::uint32_t> best,
                              std::span<const float> best_score) {
  h5::write_rows<std::uint32_t>(best_.get(), row0, rows, best, comm_, path_ + ": /best");
  h5::write_rows<float>(best_score_.get(), row0, rows, best_score, comm_, path_ + ": /best_score");
}

void ScoresWriter::close() {
  scores_.reset();
  best_.reset();
  best_score_.reset();
  h5::finish_file(file_, path_, comm_);
}

namespace {
void check_2d(hid_t h, const char* name, std::uint64_t rows, std::uint64_t cols, bool floats,
              const std::string& path) {
  h5::Handle d = h5::open_dataset(h, name, path);
  const h5::DatasetShape s = h5::shape_of(d.get(), path + ": /" + name);
  const bool type_ok = floats ? s.type_class == H5T_FLOAT : s.type_class == H5T_INTEGER;
  if (s.dims.size() != 2 || s.dims[0] != rows || s.dims[1] != cols || !type_ok)
    throw InputError(fmt::format("{}: /{}: expected {} x {} {}", path, name, rows, cols,
                                 floats ? "floats" : "integers"));
}
}  // namespace

ScoresFile open_scores(const std::string& path, const mpi::Comm& comm, const std::string& option) {
  ScoresFile f;
  f.path = path;
  f.file = open_pref_file(path, kScoresFile, comm, option).file;
  ScoresHeader& hd = f.header;
  mpi::agree(comm, [&] {
    const hid_t h = f.file.get();
    const std::string what = path + ": /";
    hd.users = h5::read_attribute<std::uint64_t>(h, "users", what);
    hd.first_user = h5::read_attribute<std::uint64_t>(h, "first_user", what);
    hd.responses = h5::read_attribute<std::uint64_t>(h, "responses", what);
    hd.prompts = h5::read_attribute<std::uint64_t>(h, "prompts", what);
    hd.rank = h5::read_attribute<std::uint32_t>(h, "rank", what);
    hd.items = h5::read_string_attribute(h, "items", what);
    hd.residual_responses = h5::read_attribute<std::uint64_t>(h, "residual_responses", what);
    hd.model = h5::read_string_attribute(h, "model", what);
    hd.responses_file = h5::read_string_attribute(h, "responses_file", what);
    hd.source = h5::read_string_attribute(h, "source", what);
    if (h5::has_attribute(h, "adapted")) hd.adapted = h5::read_string_attribute(h, "adapted", what);
    hd.best = h5::exists(h, "/best");
    if (hd.best) {
      check_2d(h, "best", hd.users, hd.prompts, false, path);
      check_2d(h, "best_score", hd.users, hd.prompts, true, path);
    } else {
      check_2d(h, "scores", hd.users, hd.responses, true, path);
    }
  });
  return f;
}

std::vector<float> read_scores(const ScoresFile& f, std::uint64_t row0, std::uint64_t rows,
                               const mpi::Comm& comm) {
  std::vector<float> out(rows * f.header.responses);
  mpi::agree(comm, [&] {
    if (f.header.best) throw InputError(f.path + ": holds /best (score --best-of-N), not /scores");
    h5::Handle d = h5::open_dataset(f.file.get(), "scores", f.path);
    h5::read_rows<float>(d.get(), row0, rows, out, comm, f.path + ": /scores");
  });
  return out;
}

void read_best(const ScoresFile& f, std::uint64_t row0, std::uint64_t rows,
               std::vector<std::uint32_t>& best, std::vector<float>& best_score,
               const mpi::Comm& comm) {
  best.resize(rows * f.header.prompts);
  best_score.resize(rows * f.header.prompts);
  mpi::agree(comm, [&] {
    if (!f.header.best) throw InputError(f.path + ": holds /scores, not /best (--best-of-N)");
    h5::Handle d = h5::open_dataset(f.file.get(), "best", f.path);
    h5::read_rows<std::uint32_t>(d.get(), row0, rows, best, comm, f.path + ": /best");
    h5::Handle s = h5::open_dataset(f.file.get(), "best_score", f.path);
    h5::read_rows<float>(s.get(), row0, rows, best_score, comm, f.path + ": /best_score");
  });
}

}  // namespace pref::io
