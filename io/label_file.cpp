#include "io/label_file.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "solver/base/partition.hpp"

namespace pref::io {

const char* split_group(Split s) {
  switch (s) {
    case Split::kTrain:
      return "/labels";
    case Split::kValidation:
      return "/validation";
    case Split::kTest:
      return "/test";
    case Split::kNewUsers:
      return "/new_users";
  }
  return "?";
}

bool is_quantizable(float v) {
  // Exact means that decoding the byte gives v back: float(q / 200) == v. (Asking v * 200 to be
  // a whole number in double would reject almost every multiple, e.g. 0.48f or 0.3f, since
  // k / 200 is rarely a binary fraction.)
  const double q = std::nearbyint(static_cast<double>(v) * kValueDenominator);
  return std::isfinite(q) && q >= 0 && q <= kValueDenominator &&
         static_cast<float>(q / kValueDenominator) == v;
}

namespace {

// Validates the three columns of one split's group; returns (rows, value denominator).
std::pair<std::uint64_t, std::uint32_t> check_columns(hid_t file, const std::string& path,
                                                      const std::string& group) {
  std::array<std::uint64_t, 3> len{};
  std::uint32_t denominator = 0;
  const char* names[3] = {"user", "comparison", "value"};
  for (int c = 0; c < 3; ++c) {
    const std::string ds = group + "/" + names[c];
    const std::string what = path + ": " + ds;
    if (!h5::exists(file, ds))
      throw InputError(path + ": missing dataset " + ds +
                       " (no such object, or a link that resolves to nothing)");
    h5::Handle d = h5::open_dataset(file, ds, what);
    h5::DatasetShape s = h5::shape_of(d.get(), what);
    if (s.dims.size() != 1)
      throw InputError(
          fmt::format("{}: expected a 1-D dataset, found {} dimensions", what, s.dims.size()));
    len[c] = s.dims[0];
    if (c < 2) {
      if (s.type_class != H5T_INTEGER)
        throw InputError(
            fmt::format("{}: element type {}, expected an integer type", what, s.type_name()));
    } else if (s.type_class == H5T_INTEGER) {
      if (s.is_signed || s.type_size != 1)
        throw InputError(
            fmt::format("{}: element type {}, expected float32, float64 or uint8 (quantized)", what,
                        s.type_name()));
      denominator = h5::read_attribute<std::uint32_t>(d.get(), "denominator", what);
      if (denominator == 0 || denominator > 255)
        throw InputError(
            fmt::format("{}: attribute 'denominator' is {}, expected 1..255", what, denominator));
    } else if (s.type_class != H5T_FLOAT) {
      throw InputError(
          fmt::format("{}: element type {}, expected float32, float64 or uint8 (quantized)", what,
                      s.type_name()));
    }
  }
  if (len[0] != len[1] || len[0] != len[2])
    throw InputError(
        fmt::format("{}: {}: columns of different lengths (user {}, comparison {}, value {})", path,
                    group, len[0], len[1], len[2]));
  return {len[0], denominator};
}

std::uint64_t positive_count(hid_t obj, const std::string& name, const std::string& what) {
  // Read as a signed 64-bit value so that a negative count is reported as such.
  const std::int64_t v = h5::read_attribute<std::int64_t>(obj, name, what);
  if (v <= 0)
    throw InputError(
        fmt::format("{}: attribute '{}' is {}, expected a positive count", what, name, v));
  if (static_cast<std::uint64_t>(v) > kMaxIds)
    throw InputError(fmt::format("{}: attribute '{}' is {}, more than pref supports ({})", what,
                                 name, v, kMaxIds));
  return static_cast<std::uint64_t>(v);
}

// A 1-D integer dataset of `rows` rows (the response structure's columns).
void check_id_column(hid_t file, const std::string& path, const std::string& ds,
                     std::uint64_t rows) {
  const std::string what = path + ": " + ds;
  if (!h5::exists(file, ds)) throw InputError(path + ": missing dataset " + ds);
  h5::Handle d = h5::open_dataset(file, ds, what);
  h5::DatasetShape s = h5::shape_of(d.get(), what);
  if (s.dims.size() != 1)
    throw InputError(
        fmt::format("{}: expected a 1-D dataset, found {} dimensions", what, s.dims.size()));
  if (s.type_class != H5T_INTEGER)
    throw InputError(
        fmt::format("{}: element type {}, expected an integer type", what, s.type_name()));
  if (s.dims[0] != rows)
    throw InputError(fmt::format("{}: {} rows, expected {}", what, s.dims[0], rows));
}

// Reads a whole 1-D id column on every rank and checks every id is in [0, limit); the first bad
// row is reported (the same on every rank: each reads everything).
std::vector<std::uint32_t> read_id_column(hid_t file, const std::string& path,
                                          const std::string& ds, std::uint64_t rows,
                                          std::uint64_t limit, const char* kind,
                                          const mpi::Comm& comm) {
  const std::string what = path + ": " + ds;
  h5::Handle d = h5::open_dataset(file, ds, what);
  std::vector<std::int64_t> buf(rows);
  h5::read_rows<std::int64_t>(d.get(), 0, rows, buf, comm, what);
  std::vector<std::uint32_t> out(rows);
  for (std::uint64_t i = 0; i < rows; ++i) {
    if (buf[i] < 0 || static_cast<std::uint64_t>(buf[i]) >= limit)
      throw InputError(
          fmt::format("{}: row {}: {} id {} out of range [0, {})", what, i, kind, buf[i], limit),
          i);
    out[i] = static_cast<std::uint32_t>(buf[i]);
  }
  return out;
}

// The response structure of a version-2 file: metadata, then the ids (read whole by every rank).
ResponseTable read_response_table(hid_t h, const std::string& path, std::uint32_t version,
                                  std::uint64_t comparisons, const mpi::Comm& comm) {
  ResponseTable t;
  const bool has_r = h5::exists(h, "/responses"), has_c = h5::exists(h, "/comparisons");
  if (!has_r && !has_c) return t;
  if (version < 2)
    throw InputError(
        fmt::format("{}: {}: response structure needs format_version 2 (the file "
                    "has format_version {})",
                    path, has_r ? "/responses" : "/comparisons", version));
  if (!has_r) throw InputError(path + ": /comparisons: response ids without a /responses group");
  {
    h5::Handle g = h5::open_group(h, "/responses", path + ": /responses");
    t.responses = positive_count(g.get(), "responses", path + ": /responses");
    t.prompts = positive_count(g.get(), "prompts", path + ": /responses");
  }
  if (!has_c)
    throw InputError(path +
                     ": /responses: the comparisons' response ids are missing "
                     "(/comparisons/first, /comparisons/second)");
  check_id_column(h, path, "/responses/prompt", t.responses);
  check_id_column(h, path, "/comparisons/first", comparisons);
  check_id_column(h, path, "/comparisons/second", comparisons);
  if (h5::exists(h, "/responses/embedding")) {
    const std::string what = path + ": /responses/embedding";
    h5::Handle d = h5::open_dataset(h, "/responses/embedding", what);
    h5::DatasetShape s = h5::shape_of(d.get(), what);
    if (s.dims.size() != 2)
      throw InputError(
          fmt::format("{}: expected a 2-D dataset (responses x dimension), found {} "
                      "dimensions",
                      what, s.dims.size()));
    if (s.type_class != H5T_FLOAT)
      throw InputError(fmt::format("{}: element type {}, expected float16, float32 or float64",
                                   what, s.type_name()));
    if (s.dims[0] != t.responses)
      throw InputError(
          fmt::format("{}: {} rows, expected one per response ({})", what, s.dims[0], t.responses));
    if (s.dims[1] == 0) throw InputError(what + ": 0 columns, expected at least 1");
    t.embedding_dim = s.dims[1];
  }
  t.prompt = read_id_column(h, path, "/responses/prompt", t.responses, t.prompts, "prompt", comm);
  t.first =
      read_id_column(h, path, "/comparisons/first", comparisons, t.responses, "response", comm);
  t.second =
      read_id_column(h, path, "/comparisons/second", comparisons, t.responses, "response", comm);
  for (std::uint64_t p = 0; p < comparisons; ++p) {
    const std::uint32_t a = t.first[p], b = t.second[p];
    if (a == b)
      throw InputError(fmt::format("{}: /comparisons: row {}: both responses are {}", path, p, a),
                       p);
    if (t.prompt[a] != t.prompt[b])
      throw InputError(fmt::format("{}: /comparisons: row {}: responses {} (prompt {}) and {} "
                                   "(prompt {}) are of different prompts",
                                   path, p, a, t.prompt[a], b, t.prompt[b]),
                       p);
  }
  return t;
}

}  // namespace

LabelFile LabelFile::open(const std::string& path, const mpi::Comm& comm,
                          const std::string& option) {
  LabelFile f;
  f.path_ = path;
  OpenedFile opened = open_pref_file(path, kLabelFile, comm, option);
  f.file_ = std::move(opened.file);
  f.version_ = opened.version;
  mpi::agree(comm, [&] {
    const hid_t h = f.file_.get();
    f.users_ = positive_count(h, "users", path + ": /");
    f.comparisons_ = positive_count(h, "comparisons", path + ": /");
    if (!h5::exists(h, "/labels")) throw InputError(path + ": missing group /labels");
    for (Split s : kAllSplits) {
      const std::string g = split_group(s);
      if (!h5::exists(h, g)) continue;
      h5::Handle grp = h5::open_group(h, g, path + ": " + g);  // a group, or an InputError
      if (s == Split::kNewUsers) f.new_users_ = positive_count(grp.get(), "users", path + ": " + g);
      auto [rows, denominator] = check_columns(h, path, g);
      f.labels_[static_cast<int>(s)] = rows;
      f.value_denominator_[static_cast<int>(s)] = denominator;
    }
    if (f.labels(Split::kTrain) == 0) throw InputError(path + ": /labels: no labels");
  });
  mpi::agree(comm, [&] {
    f.responses_ = read_response_table(f.file_.get(), path, f.version_, f.comparisons_, comm);
  });
  return f;
}

std::vector<float> LabelFile::read_embedding(std::uint64_t row0, std::uint64_t rows,
                                             const mpi::Comm& comm) const {
  const std::uint64_t d = responses_.embedding_dim;
  const std::string what = path_ + ": /responses/embedding";
  std::vector<float> out;
  mpi::agree(comm, [&] {
    if (d == 0) throw InputError(path_ + ": no /responses/embedding");
    if (row0 + rows > responses_.responses)
      throw InputError(fmt::format("{}: rows {}..{} asked of {}", what, row0, row0 + rows,
                                   responses_.responses));
    out.resize(rows * d);
    h5::Handle ds = h5::open_dataset(file_.get(), "/responses/embedding", what);
    h5::read_rows<float>(ds.get(), row0, rows, out, comm, what);
    for (std::uint64_t i = 0; i < rows * d; ++i)
      if (!std::isfinite(out[i]))
        throw InputError(fmt::format("{}: row {}, column {}: value {} is not finite", what,
                                     row0 + i / d, i % d, out[i]),
                         row0 * d + i);
  });
  return out;
}

void LabelFile::check_embedding(const mpi::Comm& comm) const {
  if (responses_.embedding_dim == 0) return;
  const Partition rows = Partition::uniform(responses_.responses, comm.size());
  // In chunks of about 2^22 values per rank.
  const std::uint64_t chunk =
      std::max<std::uint64_t>(1, (std::uint64_t{1} << 22) / responses_.embedding_dim);
  const std::uint64_t n = rows.count(comm.rank()), r0 = rows.begin(comm.rank());
  const std::uint64_t rounds = mpi::allreduce_max(comm, (n + chunk - 1) / chunk);
  for (std::uint64_t k = 0; k < rounds; ++k) {
    const std::uint64_t lo = std::min(n, k * chunk), hi = std::min(n, lo + chunk);
    read_embedding(r0 + lo, hi - lo, comm);
  }
}

LabelColumns LabelFile::read(Split s, const mpi::Comm& comm) const {
  LabelColumns out;
  const std::uint64_t total = labels(s);
  const Partition rows = Partition::uniform(total, comm.size());
  const std::uint64_t row0 = rows.begin(comm.rank());
  const std::uint64_t n = rows.count(comm.rank());
  out.first_row = row0;
  const std::string group = split_group(s);
  const std::uint64_t n_users = users_of(s);
  const std::uint32_t denominator = value_denominator_[static_cast<int>(s)];
  mpi::agree(comm, [&] {
    out.user.resize(n);
    out.comparison.resize(n);
    out.value.resize(n);
  });
  // Read in chunks: ids of an unsigned column of at most 32 bits straight into the columns (the
  // writer's types), other ids through a signed 64-bit buffer so that negative and too-large
  // ids are seen as they are; values of a quantized column as its bytes, others through double.
  const std::uint64_t chunk = std::uint64_t{1} << 22;
  const std::uint64_t chunks = mpi::allreduce_max(comm, (n + chunk - 1) / chunk);
  std::vector<std::int64_t> ibuf;
  std::vector<double> vbuf;
  std::vector<std::uint8_t> qbuf;
  struct Bad {
    std::uint64_t row = InputError::kNoOrder;
    std::string msg;
  } bad;
  auto note = [&](std::uint64_t row, std::string msg) {
    if (row < bad.row) bad = {row, std::move(msg)};
  };
  mpi::agree(comm, [&] {
    h5::Handle du = h5::open_dataset(file_.get(), group + "/user", path_);
    h5::Handle dc = h5::open_dataset(file_.get(), group + "/comparison", path_);
    h5::Handle dv = h5::open_dataset(file_.get(), group + "/value", path_);
    const char* col_names[2] = {"user", "comparison"};
    const std::uint64_t limits[2] = {n_users, comparisons_};
    std::uint32_t* dest[2] = {out.user.data(), out.comparison.data()};
    hid_t dsets[2] = {du.get(), dc.get()};
    bool narrow[2];
    for (int c = 0; c < 2; ++c) {
      const h5::DatasetShape sh = h5::shape_of(dsets[c], path_ + ": " + group + "/" + col_names[c]);
      narrow[c] = !sh.is_signed && sh.type_size <= 4;
    }
    for (std::uint64_t k = 0; k < chunks; ++k) {
      const std::uint64_t lo = std::min(n, k * chunk);
      const std::uint64_t m = std::min(n, lo + chunk) - lo;
      for (int c = 0; c < 2; ++c) {
        const std::string what = path_ + ": " + group + "/" + col_names[c];
        auto out_of_range = [&](std::uint64_t i, std::int64_t id) {
          note(row0 + lo + i, fmt::format("{}: row {}: {} id {} out of range [0, {})", what,
                                          row0 + lo + i, col_names[c], id, limits[c]));
        };
        if (narrow[c]) {
          std::span<std::uint32_t> ids(dest[c] + lo, m);
          h5::read_rows<std::uint32_t>(dsets[c], row0 + lo, m, ids, comm, what);
          for (std::uint64_t i = 0; i < m; ++i)
            if (ids[i] >= limits[c]) {
              out_of_range(i, ids[i]);
              break;
            }
          continue;
        }
        ibuf.resize(m);
        h5::read_rows<std::int64_t>(dsets[c], row0 + lo, m, ibuf, comm, what);
        for (std::uint64_t i = 0; i < m; ++i) {
          const std::int64_t id = ibuf[i];
          if (id < 0 || static_cast<std::uint64_t>(id) >= limits[c]) {
            out_of_range(i, id);
            break;
          }
          dest[c][lo + i] = static_cast<std::uint32_t>(id);
        }
      }
      const std::string what = path_ + ": " + group + "/value";
      if (denominator) {
        qbuf.resize(m);
        h5::read_rows<std::uint8_t>(dv.get(), row0 + lo, m, qbuf, comm, what);
        for (std::uint64_t i = 0; i < m; ++i) {
          const double v = qbuf[i];
          if (v > denominator) {
            note(row0 + lo + i, fmt::format("{}: row {}: value {}/{} = {} outside [0, 1]", what,
                                            row0 + lo + i, v, denominator, v / denominator));
            break;
          }
          out.value[lo + i] = static_cast<float>(v / denominator);
        }
      } else {
        vbuf.resize(m);
        h5::read_rows<double>(dv.get(), row0 + lo, m, vbuf, comm, what);
        for (std::uint64_t i = 0; i < m; ++i) {
          const double v = vbuf[i];
          if (!std::isfinite(v)) {
            note(row0 + lo + i, fmt::format("{}: row {}: value {} is not a finite number in [0, 1]",
                                            what, row0 + lo + i, v));
            break;
          } else if (v < 0 || v > 1) {
            note(row0 + lo + i,
                 fmt::format("{}: row {}: value {} outside [0, 1]", what, row0 + lo + i, v));
            break;
          }
          out.value[lo + i] = static_cast<float>(v);
        }
      }
      if (bad.row != InputError::kNoOrder) {
        // Keep taking part in the remaining collective reads, then report.
        for (std::uint64_t k2 = k + 1; k2 < chunks; ++k2) {
          h5::read_rows<std::int64_t>(du.get(), 0, 0, ibuf, comm, path_);
          h5::read_rows<std::int64_t>(dc.get(), 0, 0, ibuf, comm, path_);
          h5::read_rows<double>(dv.get(), 0, 0, vbuf, comm, path_);
        }
        throw InputError(bad.msg, bad.row);
      }
    }
  });
  return out;
}

IdsSummary read_ids_summary(const LabelFile& f, const mpi::Comm& comm) {
  IdsSummary s;
  mpi::agree(comm, [&] {
    const hid_t h = f.handle();
    if (!h5::exists(h, "/ids")) return;
    s.present = true;
    const std::string what = f.path() + ": /ids";
    h5::Handle g = h5::open_group(h, "/ids", what);
    for (const char* name : {"users", "comparisons", "prompts", "responses"})
      if (h5::exists(g.get(), name)) s.datasets.push_back(name);
    for (auto [name, out] : {std::pair<const char*, std::string*>{"source", &s.source},
                             {"layout", &s.layout},
                             {"embeddings", &s.embeddings}})
      if (h5::has_attribute(g.get(), name)) *out = h5::read_string_attribute(g.get(), name, what);
  });
  return s;
}

LabelFileWriter::LabelFileWriter(const std::string& path, const mpi::Comm& comm,
                                 std::uint64_t users, std::uint64_t comparisons,
                                 bool with_responses)
    : path_(path), comm_(comm.view()), users_(users), comparisons_(comparisons) {
  mpi::agree(comm_, [&] { file_ = h5::create_file(path, comm_); });
  const std::string what = path + ": /";
  // A file without responses is version 1, readable by every pref.
  write_format(file_.get(),
               with_responses
                   ? kLabelFile
                   : FileKind{kLabelFile.format, kLabelFile.noun, kLabelFormatVersionPlain},
               what);
  h5::write_attribute<std::uint64_t>(file_.get(), "users", users, what);
  h5::write_attribute<std::uint64_t>(file_.get(), "comparisons", comparisons, what);
}

namespace {
// The narrowest unsigned type that holds ids [0, n).
hid_t id_file_type(std::uint64_t n) {
  if (n <= 0x10000ull) return H5T_STD_U16LE;
  if (n <= 0x100000000ull) return H5T_STD_U32LE;
  return H5T_STD_U64LE;
}
}  // namespace

void LabelFileWriter::create(Split s, std::uint64_t rows, bool quantized, std::uint64_t new_users) {
  const std::string g = split_group(s);
  const std::string what = path_ + ": " + g;
  h5::Handle grp = h5::create_group(file_.get(), g, what);
  std::uint64_t n_users = users_;
  if (s == Split::kNewUsers) {
    h5::write_attribute<std::uint64_t>(grp.get(), "users", new_users, what);
    n_users = new_users;
  }
  const hsize_t dims[1] = {rows};
  Columns& c = columns_[static_cast<int>(s)];
  c.user = h5::create_dataset(grp.get(), "user", id_file_type(n_users), dims, what);
  c.comparison =
      h5::create_dataset(grp.get(), "comparison", id_file_type(comparisons_), dims, what);
  c.quantized = quantized;
  c.value =
      h5::create_dataset(grp.get(), "value", quantized ? H5T_STD_U8LE : H5T_IEEE_F32LE, dims, what);
  if (quantized)
    h5::write_attribute<std::uint32_t>(c.value.get(), "denominator", kValueDenominator, what);
}

void LabelFileWriter::write(Split s, std::uint64_t row0, const LabelColumns& cols) {
  Columns& c = columns_[static_cast<int>(s)];
  const std::string what = path_ + ": " + split_group(s);
  const std::uint64_t n = cols.size();
  h5::write_rows<std::uint32_t>(c.user.get(), row0, n, cols.user, comm_, what);
  h5::write_rows<std::uint32_t>(c.comparison.get(), row0, n, cols.comparison, comm_, what);
  if (c.quantized) {
    std::vector<std::uint8_t> q(n);
    for (std::uint64_t i = 0; i < n; ++i)
      q[i] = static_cast<std::uint8_t>(std::nearbyint(cols.value[i] * kValueDenominator));
    h5::write_rows<std::uint8_t>(c.value.get(), row0, n, q, comm_, what);
  } else {
    h5::write_rows<float>(c.value.get(), row0, n, cols.value, comm_, what);
  }
}

void LabelFileWriter::create_responses(std::uint64_t responses, std::uint64_t prompts,
                                       std::uint64_t embedding_dim, hid_t embedding_type) {
  const std::string what = path_ + ": /responses";
  h5::Handle grp = h5::create_group(file_.get(), "/responses", what);
  h5::write_attribute<std::uint64_t>(grp.get(), "responses", responses, what);
  h5::write_attribute<std::uint64_t>(grp.get(), "prompts", prompts, what);
  const hsize_t rdims[1] = {responses};
  response_prompt_ = h5::create_dataset(grp.get(), "prompt", id_file_type(prompts), rdims, what);
  embedding_dim_ = embedding_dim;
  if (embedding_dim > 0) {
    const hsize_t edims[2] = {responses, embedding_dim};
    embedding_ = h5::create_dataset(grp.get(), "embedding", embedding_type, edims, what);
  }
  const std::string cwhat = path_ + ": /comparisons";
  h5::Handle cg = h5::create_group(file_.get(), "/comparisons", cwhat);
  const hsize_t cdims[1] = {comparisons_};
  pair_first_ = h5::create_dataset(cg.get(), "first", id_file_type(responses), cdims, cwhat);
  pair_second_ = h5::create_dataset(cg.get(), "second", id_file_type(responses), cdims, cwhat);
}

void LabelFileWriter::write_responses(std::uint64_t row0, std::span<const std::uint32_t> prompt,
                                      std::span<const float> embedding) {
  const std::string what = path_ + ": /responses";
  h5::write_rows<std::uint32_t>(response_prompt_.get(), row0, prompt.size(), prompt, comm_, what);
  if (embedding_.valid())
    h5::write_rows<float>(embedding_.get(), row0, prompt.size(), embedding, comm_,
                          what + "/embedding");
}

void LabelFileWriter::write_response_prompts(std::uint64_t row0,
                                             std::span<const std::uint32_t> prompt) {
  h5::write_rows<std::uint32_t>(response_prompt_.get(), row0, prompt.size(), prompt, comm_,
                                path_ + ": /responses/prompt");
}

void LabelFileWriter::write_pairs(std::uint64_t row0, std::span<const std::uint32_t> first,
                                  std::span<const std::uint32_t> second) {
  const std::string what = path_ + ": /comparisons";
  h5::write_rows<std::uint32_t>(pair_first_.get(), row0, first.size(), first, comm_, what);
  h5::write_rows<std::uint32_t>(pair_second_.get(), row0, second.size(), second, comm_, what);
}

void LabelFileWriter::close() {
  for (auto& c : columns_) {
    c.user.reset();
    c.comparison.reset();
    c.value.reset();
  }
  response_prompt_.reset();
  embedding_.reset();
  pair_first_.reset();
  pair_second_.reset();
  h5::finish_file(file_, path_, comm_);
}

LabelFile::Generator LabelFile::generator(const mpi::Comm& comm) const {
  Generator g;
  mpi::agree(comm, [&] {
    const hid_t h = file_.get();
    if (!h5::exists(h, "/generator")) return;
    const std::string what = path_ + ": /generator";
    h5::Handle grp = h5::open_group(h, "/generator", what);
    g.present = true;
    g.model = h5::read_string_attribute(grp.get(), "model", what);
    g.seed = h5::read_attribute<std::uint64_t>(grp.get(), "seed", what);
    if (h5::has_attribute(grp.get(), "temperature"))
      g.temperature = h5::read_attribute<double>(grp.get(), "temperature", what);
    if (!(g.temperature > 0) || !std::isfinite(g.temperature))
      throw InputError(fmt::format("{}: /generator: temperature {} is not a positive number", path_,
                                   g.temperature));
  });
  return g;
}

bool LabelFile::has_truth() const {
  return h5::exists(file_.get(), "/truth/user_weights");
}

bool LabelFile::has_ids() const {
  return h5::exists(file_.get(), "/ids");
}

std::vector<float> LabelFile::read_truth(const std::string& name, std::uint64_t total,
                                         std::uint64_t row0, std::uint64_t rows,
                                         std::uint64_t* cols, const mpi::Comm& comm) const {
  std::vector<float> out;
  const std::string ds = "/truth/" + name, what = path_ + ": " + ds;
  mpi::agree(comm, [&] {
    h5::Handle d = h5::open_dataset(file_.get(), ds, what);
    const h5::DatasetShape s = h5::shape_of(d.get(), what);
    if (s.dims.size() != 2 || s.type_class != H5T_FLOAT)
      throw InputError(what + ": expected a 2-D float dataset");
    // The whole dataset's row count, so that the message does not depend on the rank count.
    if (s.dims[0] != total || s.dims[1] == 0)
      throw InputError(fmt::format("{}: {} x {}, expected {} rows and at least one column", what,
                                   s.dims[0], s.dims[1], total));
    *cols = s.dims[1];
    out.resize(rows * s.dims[1]);
    h5::read_rows<float>(d.get(), row0, rows, out, comm, what);
    require_finite<float>(out, s.dims[1], row0, what);
  });
  return out;
}

}  // namespace pref::io
