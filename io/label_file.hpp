#pragma once
// The label-data file format (docs/format.md): reading with validation, and writing.
//
//   /            attrs format="pref-labels", format_version=1 or 2, users, comparisons
//   /labels      training labels: user, comparison, value (1-D, same length)
//   /validation  optional, same columns
//   /test        optional, same columns
//   /new_users   optional, attr users; same columns, user ids count new users from 0
//   /truth       optional ground truth of synthetic populations
//   /ids         optional id maps of imported data
//   /generator   optional attributes recording how a synthetic population was made
//   /responses   version 2, optional: attrs responses=R, prompts=P; prompt (R ids in [0, P)),
//                optional embedding (R x d float16/32/64)
//   /comparisons version 2, with /responses: first, second (M response ids of one prompt each)
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "io/hdf5.hpp"
#include "io/pref_file.hpp"
#include "solver/base/enum_names.hpp"
#include "solver/base/labels.hpp"
#include "solver/base/mpi.hpp"

namespace pref::io {

// The newest version this pref reads is 2, which adds the optional response structure
// (/responses, /comparisons); a file without it is written as version 1, which every reader
// of version 1 reads unchanged.
inline constexpr FileKind kLabelFile{"pref-labels", "label file", 2};
inline constexpr std::uint32_t kLabelFormatVersionPlain = 1;
// Values stored as uint8 q mean q / kValueDenominator (0 second preferred, 100 tie, 200 first).
inline constexpr std::uint32_t kValueDenominator = 200;
// Ids are held as uint32 in memory.
inline constexpr std::uint64_t kMaxIds = 0xFFFFFFFFull;

enum class Split { kTrain, kValidation, kTest, kNewUsers };
inline constexpr std::array<Split, 4> kAllSplits = {Split::kTrain, Split::kValidation, Split::kTest,
                                                    Split::kNewUsers};
inline constexpr EnumNames<Split, 4> kSplitNames{{{{Split::kTrain, "train"},
                                                   {Split::kValidation, "validation"},
                                                   {Split::kTest, "test"},
                                                   {Split::kNewUsers, "new_users"}}}};
inline const char* split_name(Split s) {  // "train", "validation", "test", "new_users"
  return kSplitNames.name(s);
}
const char* split_group(Split s);  // "/labels", "/validation", "/test", "/new_users"
// Parses "train" | "validation" | "test" | "new_users"; throws InputError naming `option`.
inline Split parse_split(const std::string& name, const std::string& option) {
  return kSplitNames.parse(name, option);
}

// The response structure of a version-2 file (docs/format.md): comparison p is the pair
// (first[p], second[p]) of responses of one prompt; a label of 1 prefers first[p]. Held whole on
// every rank (4 bytes per response and 8 per comparison).
struct ResponseTable {
  std::uint64_t responses = 0, prompts = 0;
  std::vector<std::uint32_t> prompt;         // R: the prompt of each response
  std::vector<std::uint32_t> first, second;  // M: the two responses of each comparison
  std::uint64_t embedding_dim = 0;           // d of /responses/embedding; 0: none
  bool empty() const { return responses == 0; }
};

class LabelFile {
 public:
  // Collective. Opens the file and validates its metadata (format, counts, the columns of every
  // split present: element types, lengths). Errors are collective InputErrors naming the file
  // and the dataset (and `option` when the file was not found or is not a label file).
  static LabelFile open(const std::string& path, const mpi::Comm& comm,
                        const std::string& option = {});

  const std::string& path() const { return path_; }
  hid_t handle() const { return file_.get(); }
  std::uint64_t users() const { return users_; }
  std::uint64_t comparisons() const { return comparisons_; }
  std::uint64_t new_users() const { return new_users_; }
  bool has(Split s) const { return labels_[static_cast<int>(s)].has_value(); }
  std::uint64_t labels(Split s) const { return labels_[static_cast<int>(s)].value_or(0); }
  // Users whose ids the split's user column refers to.
  std::uint64_t users_of(Split s) const { return s == Split::kNewUsers ? new_users_ : users_; }
  std::uint32_t version() const { return version_; }
  // The response structure (empty() when the file has none), read and validated by open(): ids
  // in range, the two responses of a comparison distinct and of one prompt.
  bool has_responses() const { return !responses_.empty(); }
  const ResponseTable& responses() const { return responses_; }

  // Collective. Rows [row0, row0 + rows) of /responses/embedding (rows x embedding_dim,
  // row-major, as float whatever the stored float type), each value checked to be finite: a bad
  // one is a collective InputError naming the file, the dataset, the smallest bad row and column.
  std::vector<float> read_embedding(std::uint64_t row0, std::uint64_t rows,
                                    const mpi::Comm& comm) const;
  // Collective. Reads the whole embedding in even shares and checks it (pref inspect).
  void check_embedding(const mpi::Comm& comm) const;

  // Collective. Reads this rank's even share of rows of a split and validates every row: ids in
  // range, value finite and in [0, 1]. A bad row is a collective InputError naming the file, the
  // dataset, the smallest bad row and its value.
  LabelColumns read(Split s, const mpi::Comm& comm) const;

  // What a synthetic population records besides its labels (docs/format.md): the generator's
  // attributes and the ground truth. Collective; a malformed object is an InputError naming it.
  struct Generator {
    bool present = false;  // a /generator group
    std::string model;     // its attributes `model` and `seed` (required in the group)
    std::uint64_t seed = 0;
    double temperature = 1;  // positive and finite (1 when absent)
  };
  Generator generator(const mpi::Comm& comm) const;
  bool has_truth() const;  // a /truth group with the users' true weights
  bool has_ids() const;    // an /ids group (imported data)
  // Rows [row0, row0 + rows) of /truth/<name>, a 2-D float dataset of exactly `total` rows (users
  // or comparisons), as floats; its columns in `cols`. A value that is not finite is an
  // InputError naming the dataset and the smallest such row, the same at any rank count.
  std::vector<float> read_truth(const std::string& name, std::uint64_t total, std::uint64_t row0,
                                std::uint64_t rows, std::uint64_t* cols,
                                const mpi::Comm& comm) const;

 private:
  std::string path_;
  h5::Handle file_;
  std::uint64_t users_ = 0, comparisons_ = 0, new_users_ = 0;
  std::array<std::optional<std::uint64_t>, 4> labels_;
  std::array<std::uint32_t, 4> value_denominator_{};  // 0: values stored as floats
  std::uint32_t version_ = 0;
  ResponseTable responses_;
};

// What /ids of an imported file says (docs/import.md): the id datasets it holds and the
// import's attributes.
struct IdsSummary {
  bool present = false;
  std::vector<std::string> datasets;       // e.g. users, prompts, responses
  std::string source, layout, embeddings;  // empty when absent
};
// Collective (the file is the same on every rank; a bad attribute ends every rank alike).
IdsSummary read_ids_summary(const LabelFile& f, const mpi::Comm& comm);

// Writes a label file collectively. Each split is created with its total number of rows, then
// written by every rank at its own row offset.
class LabelFileWriter {
 public:
  // Creates the file at `path` (normally AtomicOutput::temp_path()). Collective.
  // with_responses: the file will have the response structure and is written as version 2
  // (kLabelFormatVersionPlain otherwise).
  LabelFileWriter(const std::string& path, const mpi::Comm& comm, std::uint64_t users,
                  std::uint64_t comparisons, bool with_responses = false);
  hid_t handle() const { return file_.get(); }
  const std::string& path() const { return path_; }

  // Collective. quantized: values are multiples of 1/kValueDenominator and are stored in one
  // byte; otherwise as float32. new_users is required for Split::kNewUsers.
  void create(Split s, std::uint64_t rows, bool quantized, std::uint64_t new_users = 0);
  // Collective: every rank calls, each with its rows [row0, row0 + cols.size()).
  void write(Split s, std::uint64_t row0, const LabelColumns& cols);
  // Collective (files made with with_responses): creates /responses (R responses of P prompts,
  // an embedding of embedding_dim columns of embedding_type unless 0) and
  // /comparisons/{first,second}.
  void create_responses(std::uint64_t responses, std::uint64_t prompts, std::uint64_t embedding_dim,
                        hid_t embedding_type = H5T_IEEE_F32LE);
  // Collective: every rank its rows [row0, row0 + prompt.size()) of /responses; embedding holds
  // prompt.size() x embedding_dim values (ignored without an embedding).
  void write_responses(std::uint64_t row0, std::span<const std::uint32_t> prompt,
                       std::span<const float> embedding);
  // Collective: every rank its rows [row0, row0 + prompt.size()) of /responses/prompt only.
  void write_response_prompts(std::uint64_t row0, std::span<const std::uint32_t> prompt);
  // /responses/embedding (after create_responses with an embedding), for writers that fill it
  // themselves (pref import --embeddings copies rows of another file into it).
  hid_t embedding_dataset() const { return embedding_.get(); }
  // Collective: every rank its rows [row0, row0 + first.size()) of /comparisons.
  void write_pairs(std::uint64_t row0, std::span<const std::uint32_t> first,
                   std::span<const std::uint32_t> second);
  // Collective. Flushes and closes; errors (e.g. a full disk) are reported here.
  void close();

 private:
  std::string path_;
  mpi::Comm comm_;
  h5::Handle file_;
  std::uint64_t users_, comparisons_;
  struct Columns {
    h5::Handle user, comparison, value;
    bool quantized = false;
  };
  std::array<Columns, 4> columns_;
  h5::Handle response_prompt_, embedding_, pair_first_, pair_second_;
  std::uint64_t embedding_dim_ = 0;
};

// True when v is a multiple of 1/kValueDenominator (so the one-byte encoding is exact).
bool is_quantizable(float v);

}  // namespace pref::io
