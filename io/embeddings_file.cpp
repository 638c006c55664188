#include "io/embeddings_file.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "solver/base/error.hpp"
#include "solver/base/partition.hpp"

namespace pref::io {

namespace {

// About this many values per chunk of a copy (16 MB of floats).
constexpr std::uint64_t kChunkValues = std::uint64_t{1} << 22;
// Ids read per HDF5 call.
constexpr hsize_t kIdChunk = 1 << 16;

std::string shown_id(const std::string& s) {
  constexpr std::size_t kMax = 60;
  std::string out = "'";
  for (std::size_t i = 0; i < s.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out += c < 0x20 || c == 0x7F ? fmt::format("\\x{:02x}", c) : std::string(1, s[i]);
  }
  return out + (s.size() > kMax ? "...'" : "'");
}

// Reads ids [row0, row0 + n) of a string dataset into out (fixed- or variable-length).
void read_id_chunk(hid_t d, hid_t ftype, hsize_t row0, hsize_t n, std::vector<std::string>& out,
                   const std::string& what) {
  h5::Handle fspace(PREF_H5_CHECK(H5Dget_space(d), what), H5Sclose);
  PREF_H5_CHECK(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &row0, nullptr, &n, nullptr),
                what);
  h5::Handle mspace(PREF_H5_CHECK(H5Screate_simple(1, &n, nullptr), what), H5Sclose);
  h5::Handle mem(PREF_H5_CHECK(H5Tcopy(H5T_C_S1), what), H5Tclose);
  PREF_H5_CHECK(H5Tset_cset(mem.get(), PREF_H5_CHECK(H5Tget_cset(ftype), what)), what);
  auto fail = [&] {
    const std::string msg = h5::take_error_message();
    throw InputError(what + ": cannot read the ids" + (msg.empty() ? "" : " (" + msg + ")"));
  };
  if (H5Tis_variable_str(ftype) > 0) {
    PREF_H5_CHECK(H5Tset_size(mem.get(), H5T_VARIABLE), what);
    std::vector<char*> buf(n, nullptr);
    if (H5Dread(d, mem.get(), mspace.get(), fspace.get(), H5P_DEFAULT, buf.data()) < 0) fail();
    for (char* s : buf) out.emplace_back(s ? s : "");
    H5Dvlen_reclaim(mem.get(), mspace.get(), H5P_DEFAULT, buf.data());
    return;
  }
  const std::size_t width = H5Tget_size(ftype);
  if (width == 0) fail();
  PREF_H5_CHECK(H5Tset_size(mem.get(), width), what);
  PREF_H5_CHECK(H5Tset_strpad(mem.get(), H5T_STR_NULLPAD), what);
  std::vector<char> buf(n * width);
  if (H5Dread(d, mem.get(), mspace.get(), fspace.get(), H5P_DEFAULT, buf.data()) < 0) fail();
  for (hsize_t i = 0; i < n; ++i) {
    const char* p = buf.data() + i * width;
    // NUL-padded or NUL-terminated; a space-padded (Fortran) id keeps its trailing blanks cut.
    std::size_t len = strnlen(p, width);
    if (H5Tget_strpad(ftype) == H5T_STR_SPACEPAD)
      while (len > 0 && p[len - 1] == ' ') --len;
    out.emplace_back(p, len);
  }
}

}  // namespace

std::vector<std::string> read_embedding_ids(const std::string& path, EmbeddingsInfo& info) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError(path + ": no such file");
  if (fs::is_directory(path, ec)) throw InputError(path + ": is a directory");
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    h5::take_error_message();
    throw InputError(path + ": not an HDF5 file");
  }
  const hid_t raw = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (raw < 0) {
    const std::string msg = h5::take_error_message();
    throw InputError(path + ": cannot open as HDF5" + (msg.empty() ? "" : " (" + msg + ")"));
  }
  h5::Handle file(raw, H5Fclose);
  const std::string ids_what = path + ": /ids", emb_what = path + ": /embedding";
  if (!h5::exists(file.get(), "/ids"))
    throw InputError(path + ": missing dataset /ids (the response ids, one string per row)");
  if (!h5::exists(file.get(), "/embedding"))
    throw InputError(path + ": missing dataset /embedding (one row per id)");
  h5::Handle ids = h5::open_dataset(file.get(), "/ids", ids_what);
  h5::Handle emb = h5::open_dataset(file.get(), "/embedding", emb_what);
  const h5::DatasetShape is = h5::shape_of(ids.get(), ids_what);
  const h5::DatasetShape es = h5::shape_of(emb.get(), emb_what);
  if (is.dims.size() != 1)
    throw InputError(
        fmt::format("{}: expected a 1-D dataset, found {} dimensions", ids_what, is.dims.size()));
  if (is.type_class != H5T_STRING)
    throw InputError(
        fmt::format("{}: element type {}, expected strings", ids_what, is.type_name()));
  if (es.dims.size() != 2)
    throw InputError(
        fmt::format("{}: expected a 2-D dataset (ids x dimension), found {} "
                    "dimensions",
                    emb_what, es.dims.size()));
  if (es.type_class != H5T_FLOAT || (es.type_size != 2 && es.type_size != 4 && es.type_size != 8))
    throw InputError(fmt::format("{}: element type {}, expected float16, float32 or float64",
                                 emb_what, es.type_name()));
  if (es.dims[0] != is.dims[0])
    throw InputError(fmt::format("{}: {} rows, expected one per id of /ids ({})", emb_what,
                                 es.dims[0], is.dims[0]));
  if (es.dims[1] == 0) throw InputError(emb_what + ": 0 columns, expected at least 1");
  if (is.dims[0] == 0) throw InputError(ids_what + ": no ids");
  info.rows = is.dims[0];
  info.dim = es.dims[1];
  info.type_size = es.type_size;

  h5::Handle ftype(PREF_H5_CHECK(H5Dget_type(ids.get()), ids_what), H5Tclose);
  std::vector<std::string> out;
  out.reserve(info.rows);
  for (hsize_t r = 0; r < info.rows; r += kIdChunk)
    read_id_chunk(ids.get(), ftype.get(), r, std::min<hsize_t>(kIdChunk, info.rows - r), out,
                  ids_what);
  for (std::uint64_t r = 0; r < out.size(); ++r) {
    if (out[r].empty()) throw InputError(fmt::format("{}: row {}: empty id", ids_what, r), r);
    if (out[r].find('\0') != std::string::npos)
      throw InputError(
          fmt::format("{}: row {}: id {} contains a NUL character", ids_what, r, shown_id(out[r])),
          r);
  }
  return out;
}

h5::Handle embedding_file_type(std::size_t type_size, const std::string& what) {
  if (type_size == 8) return h5::Handle(PREF_H5_CHECK(H5Tcopy(H5T_IEEE_F64LE), what), H5Tclose);
  h5::Handle t(PREF_H5_CHECK(H5Tcopy(H5T_IEEE_F32LE), what), H5Tclose);
  if (type_size == 2) {
    // IEEE binary16 as h5py writes numpy's float16: sign bit 15, exponent bits 10-14 (bias 15),
    // mantissa bits 0-9.
    PREF_H5_CHECK(H5Tset_fields(t.get(), 15, 10, 5, 0, 10), what);
    PREF_H5_CHECK(H5Tset_size(t.get(), 2), what);
    PREF_H5_CHECK(H5Tset_ebias(t.get(), 15), what);
  }
  return t;
}

void copy_embedding_rows(const std::string& path, const EmbeddingsInfo& info,
                         std::span<const std::uint64_t> src, hid_t out, const mpi::Comm& comm,
                         const std::string& out_what) {
  const std::string what = path + ": /embedding";
  const std::uint64_t d = info.dim;
  for (std::size_t k = 1; k < src.size(); ++k)
    if (src[k] < src[k - 1]) throw Error(what + ": copy_embedding_rows needs sorted rows");
  // Single precision through float (exact for float16), double precision through double.
  const bool wide = info.type_size == 8;
  const hid_t mem = wide ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
  const std::size_t elem = wide ? sizeof(double) : sizeof(float);

  // This rank's output rows, cut into chunks that each read a bounded span of source rows.
  const Partition part = Partition::uniform(src.size(), comm.size());
  const std::uint64_t o0 = part.begin(comm.rank()), o1 = part.end(comm.rank());
  const std::uint64_t cap = std::max<std::uint64_t>(1, kChunkValues / d);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> chunks;  // [a, b) of output rows
  for (std::uint64_t a = o0; a < o1;) {
    std::uint64_t b = a + 1;
    while (b < o1 && b - a < cap && src[b] - src[a] < cap) ++b;
    chunks.emplace_back(a, b);
    a = b;
  }
  const std::uint64_t rounds = mpi::allreduce_max(comm, static_cast<std::uint64_t>(chunks.size()));

  h5::Handle file;
  mpi::agree(comm, [&] { file = h5::open_file(path, comm); });
  h5::Handle ds;
  mpi::agree(comm, [&] { ds = h5::open_dataset(file.get(), "/embedding", what); });
  std::vector<char> in, outbuf;
  std::uint64_t bad_row = InputError::kNoOrder;
  std::string bad_msg;
  for (std::uint64_t k = 0; k < rounds; ++k) {
    std::uint64_t a = 0, b = 0, s0 = 0, s1 = 0;
    if (k < chunks.size()) {
      std::tie(a, b) = chunks[k];
      s0 = src[a];
      s1 = src[b - 1] + 1;
    }
    in.resize((s1 - s0) * d * elem);
    mpi::agree(comm, [&] { h5::read_rows_raw(ds.get(), mem, s0, s1 - s0, in.data(), comm, what); });
    outbuf.resize((b - a) * d * elem);
    for (std::uint64_t r = a; r < b; ++r)
      std::memcpy(outbuf.data() + (r - a) * d * elem, in.data() + (src[r] - s0) * d * elem,
                  d * elem);
    // The rows read are the rows copied (and possibly rows between them no response uses,
    // which are not checked).
    for (std::uint64_t r = a; r < b && bad_row == InputError::kNoOrder; ++r) {
      for (std::uint64_t c = 0; c < d; ++c) {
        const double v = wide ? reinterpret_cast<const double*>(outbuf.data())[(r - a) * d + c]
                              : reinterpret_cast<const float*>(outbuf.data())[(r - a) * d + c];
        if (!std::isfinite(v)) {
          bad_row = src[r];
          bad_msg =
              fmt::format("{}: row {}, column {}: value {} is not finite", what, src[r], c, v);
          break;
        }
      }
    }
    h5::write_rows_raw(out, mem, a, b - a, outbuf.data(), comm, out_what);
  }
  mpi::agree(comm, [&] {
    if (bad_row != InputError::kNoOrder) throw InputError(bad_msg, bad_row);
  });
}

}  // namespace pref::io
