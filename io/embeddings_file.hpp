#pragma once
// The embeddings file of `pref import --embeddings EMB.h5` (docs/import.md, "Embeddings"):
//
//   /ids         n strings (fixed- or variable-length, ASCII or UTF-8): the response ids
//   /embedding   n x d, float16, float32 or float64: row k is the embedding of /ids[k]
//
// Any HDF5 file with these two datasets (h5py writes them in two lines). Rank 0 reads the ids
// (a few bytes each) and matches them to the responses; the rows are copied by every rank, each
// its even share of the output's rows in bounded chunks, so no rank ever holds the whole matrix.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/hdf5.hpp"
#include "solver/base/mpi.hpp"

namespace pref::io {

struct EmbeddingsInfo {
  std::uint64_t rows = 0, dim = 0;
  std::size_t type_size = 4;  // bytes of /embedding's floats: 2, 4 or 8
  std::string type_name() const { return "float" + std::to_string(8 * type_size); }
};

// Not collective: run on rank 0 (inside the caller's mpi::agree). Opens `path` (serially, read
// only), checks both datasets (shapes, types; an InputError naming the file and the dataset) and
// returns the ids in row order, each checked non-empty and free of NUL characters. The file is
// closed again.
std::vector<std::string> read_embedding_ids(const std::string& path, EmbeddingsInfo& info);

// The HDF5 file type pref writes for embeddings of `type_size` bytes (little-endian IEEE
// float16, float32 or float64: the input's own precision is kept).
h5::Handle embedding_file_type(std::size_t type_size, const std::string& what);

// Collective. Copies row src[k] of `path`'s /embedding into row k of `out` (a dataset of
// src.size() x info.dim), for every k: src must not decrease (the output numbers responses in
// the embeddings' order). Each rank copies its even share of the output rows, reading the
// source rows they need in chunks of a few MB. Every value copied is checked to be finite: a bad
// one is a collective InputError naming the file, the dataset, the row and the column.
void copy_embedding_rows(const std::string& path, const EmbeddingsInfo& info,
                         std::span<const std::uint64_t> src, hid_t out, const mpi::Comm& comm,
                         const std::string& out_what);

}  // namespace pref::io
