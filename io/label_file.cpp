#include "io/label_file.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "solver/base/partition.hpp"

namespace pref::io {

const char* split_name(Split s) {
  switch (s) {
    case Split::kTrain: return "train";
    case Split::kValidation: return "validation";
    case Split::kTest: return "test";
    case Split::kNewUsers: return "new_users";
  }
  return "?";
}

const char* split_group(Split s) {
  switch (s) {
    case Split::kTrain: return "/labels";
    case Split::kValidation: return "/validation";
    case Split::kTest: return "/test";
    case Split::kNewUsers: return "/new_users";
  }
  return "?";
}

Split parse_split(const std::string& name, const std::string& option) {
  for (Split s : kAllSplits)
    if (name == split_name(s)) return s;
  throw InputError(option + ": unknown split '" + name +
                   "' (expected train, validation, test or new_users)");
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
      throw InputError(fmt::format("{}: expected a 1-D dataset, found {} dimensions", what,
                                   s.dims.size()));
    len[c] = s.dims[0];
    if (c < 2) {
      if (s.type_class != H5T_INTEGER)
        throw InputError(
            fmt::format("{}: element type {}, expected an integer type", what, s.type_name()));
    } else if (s.type_class == H5T_INTEGER) {
      if (s.is_signed || s.type_size != 1)
        throw InputError(fmt::format(
            "{}: element type {}, expected float32, float64 or uint8 (quantized)", what,
            s.type_name()));
      denominator = h5::read_attribute<std::uint32_t>(d.get(), "denominator", what);
      if (denominator == 0 || denominator > 255)
        throw InputError(fmt::format("{}: attribute 'denominator' is {}, expected 1..255", what,
                                     denominator));
    } else if (s.type_class != H5T_FLOAT) {
      throw InputError(fmt::format(
          "{}: element type {}, expected float32, float64 or uint8 (quantized)", what,
          s.type_name()));
    }
  }
  if (len[0] != len[1] || len[0] != len[2])
    throw InputError(fmt::format(
        "{}: {}: columns of different lengths (user {}, comparison {}, value {})", path, group,
        len[0], len[1], len[2]));
  return {len[0], denominator};
}

std::uint64_t positive_count(hid_t obj, const std::string& name, const std::string& what) {
  // Read as a signed 64-bit value so that a negative count is reported as such.
  const std::int64_t v = h5::read_attribute<std::int64_t>(obj, name, what);
  if (v <= 0)
    throw InputError(fmt::format("{}: attribute '{}' is {}, expected a positive count", what,
                                 name, v));
  if (static_cast<std::uint64_t>(v) > kMaxIds)
    throw InputError(fmt::format("{}: attribute '{}' is {}, more than pref supports ({})", what,
                                 name, v, kMaxIds));
  return static_cast<std::uint64_t>(v);
}

}  // namespace

LabelFile LabelFile::open(const std::string& path, const mpi::Comm& comm) {
  LabelFile f;
  f.path_ = path;
  // Plain checks first, so that a missing or foreign file gets a plain message.
  mpi::agree(comm, [&] {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw InputError(path + ": no such file");
    if (std::filesystem::is_directory(path, ec)) throw InputError(path + ": is a directory");
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw InputError(path + ": cannot be read");
    htri_t is = H5Fis_hdf5(path.c_str());
    if (is <= 0) {
      h5::take_error_message();
      throw InputError(path + ": not an HDF5 file");
    }
  });
  mpi::agree(comm, [&] { f.file_ = h5::open_file(path, comm); });
  mpi::agree(comm, [&] {
    const hid_t h = f.file_.get();
    if (!h5::has_attribute(h, "format"))
      throw InputError(path + ": not a pref label file (no 'format' attribute on /)");
    const std::string format = h5::read_string_attribute(h, "format", path + ": /");
    if (format != kLabelFormat)
      throw InputError(fmt::format("{}: not a pref label file (format '{}', expected '{}')",
                                   path, format, kLabelFormat));
    const auto version = h5::read_attribute<std::int64_t>(h, "format_version", path + ": /");
    if (version < 1 || version > static_cast<std::int64_t>(kLabelFormatVersion))
      throw InputError(fmt::format(
          "{}: format_version {} is not supported (this pref reads version {})", path, version,
          kLabelFormatVersion));
    f.users_ = positive_count(h, "users", path + ": /");
    f.comparisons_ = positive_count(h, "comparisons", path + ": /");
    if (!h5::exists(h, "/labels")) throw InputError(path + ": missing group /labels");
    for (Split s : kAllSplits) {
      const std::string g = split_group(s);
      if (!h5::exists(h, g)) continue;
      if (s == Split::kNewUsers) {
        h5::Handle grp = h5::open_group(h, g, path + ": " + g);
        f.new_users_ = positive_count(grp.get(), "users", path + ": " + g);
      }
      auto [rows, denominator] = check_columns(h, path, g);
      f.labels_[static_cast<int>(s)] = rows;
      f.value_denominator_[static_cast<int>(s)] = denominator;
    }
    if (f.labels(Split::kTrain) == 0) throw InputError(path + ": /labels: no labels");
  });
  return f;
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
  // Read in chunks: ids through a signed 64-bit buffer so that negative and too-large ids are
  // seen as they are, values through double.
  const std::uint64_t chunk = std::uint64_t{1} << 22;
  const std::uint64_t chunks = mpi::allreduce_max(comm, (n + chunk - 1) / chunk);
  std::vector<std::int64_t> ibuf;
  std::vector<double> vbuf;
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
    for (std::uint64_t k = 0; k < chunks; ++k) {
      const std::uint64_t lo = std::min(n, k * chunk);
      const std::uint64_t m = std::min(n, lo + chunk) - lo;
      ibuf.resize(m);
      vbuf.resize(m);
      const char* col_names[2] = {"user", "comparison"};
      const std::uint64_t limits[2] = {n_users, comparisons_};
      std::uint32_t* dest[2] = {out.user.data(), out.comparison.data()};
      hid_t dsets[2] = {du.get(), dc.get()};
      for (int c = 0; c < 2; ++c) {
        const std::string what = path_ + ": " + group + "/" + col_names[c];
        h5::read_rows<std::int64_t>(dsets[c], row0 + lo, m, ibuf, comm, what);
        for (std::uint64_t i = 0; i < m; ++i) {
          const std::int64_t id = ibuf[i];
          if (id < 0 || static_cast<std::uint64_t>(id) >= limits[c]) {
            note(row0 + lo + i, fmt::format("{}: row {}: {} id {} out of range [0, {})", what,
                                            row0 + lo + i, col_names[c], id, limits[c]));
            break;
          }
          dest[c][lo + i] = static_cast<std::uint32_t>(id);
        }
      }
      const std::string what = path_ + ": " + group + "/value";
      h5::read_rows<double>(dv.get(), row0 + lo, m, vbuf, comm, what);
      for (std::uint64_t i = 0; i < m; ++i) {
        double v = vbuf[i];
        if (denominator) {
          if (v > denominator) {
            note(row0 + lo + i, fmt::format("{}: row {}: value {}/{} = {} outside [0, 1]", what,
                                            row0 + lo + i, v, denominator, v / denominator));
            break;
          }
          v /= denominator;
        } else if (!std::isfinite(v)) {
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

LabelFileWriter::LabelFileWriter(const std::string& path, const mpi::Comm& comm,
                                 std::uint64_t users, std::uint64_t comparisons)
    : path_(path), comm_(comm.view()), users_(users), comparisons_(comparisons) {
  mpi::agree(comm_, [&] { file_ = h5::create_file(path, comm_); });
  const std::string what = path + ": /";
  h5::write_string_attribute(file_.get(), "format", kLabelFormat, what);
  h5::write_attribute<std::uint32_t>(file_.get(), "format_version", kLabelFormatVersion, what);
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

void LabelFileWriter::create(Split s, std::uint64_t rows, bool quantized,
                             std::uint64_t new_users) {
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
  c.comparison = h5::create_dataset(grp.get(), "comparison", id_file_type(comparisons_), dims, what);
  c.quantized = quantized;
  c.value = h5::create_dataset(grp.get(), "value", quantized ? H5T_STD_U8LE : H5T_IEEE_F32LE,
                               dims, what);
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

void LabelFileWriter::close() {
  for (auto& c : columns_) {
    c.user.reset();
    c.comparison.reset();
    c.value.reset();
  }
  h5::finish_file(file_, path_, comm_);
}

std::vector<float> read_matrix_rows(hid_t file, const std::string& dataset, std::uint64_t row0,
                                    std::uint64_t rows, std::uint64_t* cols_out,
                                    const mpi::Comm& comm, const std::string& what) {
  std::vector<float> out;
  std::uint64_t cols = 0;
  mpi::agree(comm, [&] {
    if (!h5::exists(file, dataset)) throw InputError(what + ": missing dataset " + dataset);
  });
  h5::Handle d = h5::open_dataset(file, dataset, what);
  h5::DatasetShape s = h5::shape_of(d.get(), what);
  mpi::agree(comm, [&] {
    if (s.dims.size() != 2 || s.type_class != H5T_FLOAT)
      throw InputError(what + ": " + dataset + ": expected a 2-D float dataset");
    if (row0 + rows > s.dims[0])
      throw InputError(fmt::format("{}: {}: has {} rows, expected at least {}", what, dataset,
                                   s.dims[0], row0 + rows));
  });
  cols = s.dims[1];
  out.resize(rows * cols);
  h5::read_rows<float>(d.get(), row0, rows, out, comm, what + ": " + dataset);
  if (cols_out) *cols_out = cols;
  return out;
}

}  // namespace pref::io
