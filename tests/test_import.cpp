// pref import end to end: a CSV (and JSON lines) with string ids is written here from known
// rows, imported at 1 and 4 ranks, read back with the HDF5 C API and compared with the rows;
// bad inputs must fail with exit code 2, one message naming the file and the line, and no
// output file left behind. A few parser cases are checked directly on io::read_label_table.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/import.hpp"

namespace fs = std::filesystem;
using namespace pref;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A fresh directory per test, under the build tree's test tmp.
std::string test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string base =
      env("PREF_TEST_TMP").empty() ? fs::temp_directory_path().string() : env("PREF_TEST_TMP");
  const fs::path dir =
      fs::path(base) / "import" / (std::string(info->test_suite_name()) + "." + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct RunResult {
  int code = -1;
  std::string output;  // standard output and standard error
};

// Runs `pref <args>` under mpirun with `ranks` processes (0: as one plain process), with a
// timeout so that a hang fails the test instead of blocking it.
RunResult run_pref(const std::string& args, int ranks) {
  const std::string binary = env("PREF_BINARY");
  const std::string mpiexec = env("PREF_MPIEXEC");
  EXPECT_FALSE(binary.empty()) << "PREF_BINARY is not set (run through ctest)";
  std::string cmd = "timeout 60 ";
  if (ranks > 0)
    cmd += shell_quote(mpiexec.empty() ? "mpirun" : mpiexec) + " -np " + std::to_string(ranks) +
           " --oversubscribe ";
  cmd += shell_quote(binary) + " " + args + " 2>&1";
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The "pref: error:" lines of an output.
std::vector<std::string> error_lines(const std::string& output) {
  std::vector<std::string> out;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("pref: error", 0) == 0) out.push_back(line);
  return out;
}

// --- the rows a test writes, and what the file must hold ---------------------------------

struct Row {
  std::string user, comparison, label, split;  // label as written; split "" = none
};

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos && !s.empty() && s.front() != ' ' &&
      s.back() != ' ')
    return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

struct Expected {
  std::vector<std::string> users, comparisons;
  struct Label {
    std::uint32_t user, comparison;
    float value;
  };
  std::map<std::string, std::vector<Label>> splits;  // "train", "validation", "test"
};

// Decodes the rows independently of pref: ids by first appearance, values with strtod.
Expected expected_of(const std::vector<Row>& rows) {
  Expected e;
  std::unordered_map<std::string, std::uint32_t> u, c;
  auto id = [](std::unordered_map<std::string, std::uint32_t>& m, std::vector<std::string>& v,
               const std::string& s) {
    auto [it, added] = m.emplace(s, static_cast<std::uint32_t>(v.size()));
    if (added) v.push_back(s);
    return it->second;
  };
  for (const Row& r : rows) {
    const std::uint32_t ui = id(u, e.users, r.user);
    const std::uint32_t ci = id(c, e.comparisons, r.comparison);
    const float v = static_cast<float>(std::strtod(r.label.c_str(), nullptr));
    e.splits[r.split.empty() ? "train" : r.split].push_back({ui, ci, v});
  }
  return e;
}

// --- reading a label file back with the plain HDF5 C API ---------------------------------

struct SplitData {
  std::vector<std::uint32_t> user, comparison;
  std::vector<float> value;
  bool quantized = false;
};

struct FileData {
  std::uint64_t users = 0, comparisons = 0;
  std::vector<std::string> user_ids, comparison_ids;
  std::map<std::string, SplitData> splits;
};

bool link_exists(hid_t f, const std::string& path) {
  return H5Lexists(f, path.c_str(), H5P_DEFAULT) > 0;
}

std::uint64_t read_u64_attr(hid_t obj, const char* name) {
  std::uint64_t v = 0;
  const hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  EXPECT_GE(a, 0) << name;
  EXPECT_GE(H5Aread(a, H5T_NATIVE_UINT64, &v), 0);
  H5Aclose(a);
  return v;
}

template <class T>
std::vector<T> read_column(hid_t f, const std::string& path, hid_t mem_type) {
  const hid_t d = H5Dopen2(f, path.c_str(), H5P_DEFAULT);
  EXPECT_GE(d, 0) << path;
  const hid_t s = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(s, &n, nullptr);
  std::vector<T> v(n);
  if (n) {
    EXPECT_GE(H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0) << path;
  }
  H5Sclose(s);
  H5Dclose(d);
  return v;
}

std::vector<std::string> read_ids(hid_t f, const std::string& path) {
  const hid_t d = H5Dopen2(f, path.c_str(), H5P_DEFAULT);
  EXPECT_GE(d, 0) << path;
  const hid_t ft = H5Dget_type(d);
  EXPECT_EQ(H5Tget_class(ft), H5T_STRING) << path;
  EXPECT_FALSE(H5Tis_variable_str(ft)) << path << ": expected fixed-length strings";
  EXPECT_EQ(H5Tget_strpad(ft), H5T_STR_NULLPAD) << path;
  const std::size_t width = H5Tget_size(ft);
  const hid_t s = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(s, &n, nullptr);
  std::vector<char> buf(n * width);
  if (n) {
    EXPECT_GE(H5Dread(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), 0) << path;
  }
  std::vector<std::string> out;
  for (hsize_t i = 0; i < n; ++i) {
    const char* p = buf.data() + i * width;
    std::size_t len = 0;
    while (len < width && p[len]) ++len;
    out.emplace_back(p, len);
  }
  H5Sclose(s);
  H5Tclose(ft);
  H5Dclose(d);
  return out;
}

FileData read_file(const std::string& path) {
  FileData fd;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0) << path;
  if (f < 0) return fd;
  fd.users = read_u64_attr(f, "users");
  fd.comparisons = read_u64_attr(f, "comparisons");
  fd.user_ids = read_ids(f, "/ids/users");
  fd.comparison_ids = read_ids(f, "/ids/comparisons");
  const std::pair<const char*, const char*> groups[] = {
      {"train", "/labels"}, {"validation", "/validation"}, {"test", "/test"}};
  for (auto [name, g] : groups) {
    if (!link_exists(f, g)) continue;
    SplitData sd;
    const std::string grp = g;
    sd.user = read_column<std::uint32_t>(f, grp + "/user", H5T_NATIVE_UINT32);
    sd.comparison = read_column<std::uint32_t>(f, grp + "/comparison", H5T_NATIVE_UINT32);
    const hid_t d = H5Dopen2(f, (grp + "/value").c_str(), H5P_DEFAULT);
    const hid_t t = H5Dget_type(d);
    sd.quantized = H5Tget_class(t) == H5T_INTEGER;
    H5Tclose(t);
    if (sd.quantized) {
      const std::uint64_t den = read_u64_attr(d, "denominator");
      EXPECT_EQ(den, 200u);
      for (std::uint8_t q : read_column<std::uint8_t>(f, grp + "/value", H5T_NATIVE_UINT8))
        sd.value.push_back(static_cast<float>(static_cast<double>(q) / static_cast<double>(den)));
    } else {
      sd.value = read_column<float>(f, grp + "/value", H5T_NATIVE_FLOAT);
    }
    H5Dclose(d);
    fd.splits[name] = std::move(sd);
  }
  H5Fclose(f);
  return fd;
}

void expect_matches(const FileData& fd, const Expected& e) {
  EXPECT_EQ(fd.users, e.users.size());
  EXPECT_EQ(fd.comparisons, e.comparisons.size());
  EXPECT_EQ(fd.user_ids, e.users);
  EXPECT_EQ(fd.comparison_ids, e.comparisons);
  ASSERT_EQ(fd.splits.size(), e.splits.size());
  for (const auto& [name, labels] : e.splits) {
    ASSERT_TRUE(fd.splits.count(name)) << name;
    const SplitData& sd = fd.splits.at(name);
    ASSERT_EQ(sd.user.size(), labels.size()) << name;
    ASSERT_EQ(sd.comparison.size(), labels.size()) << name;
    ASSERT_EQ(sd.value.size(), labels.size()) << name;
    for (std::size_t i = 0; i < labels.size(); ++i) {
      EXPECT_EQ(sd.user[i], labels[i].user) << name << " row " << i;
      EXPECT_EQ(sd.comparison[i], labels[i].comparison) << name << " row " << i;
      EXPECT_EQ(sd.value[i], labels[i].value) << name << " row " << i;
    }
  }
}

// Every dataset and attribute of a file (type and raw bytes), to compare two files exactly.
using Dump = std::map<std::string, std::string>;

std::string type_and_bytes(hid_t type, const std::vector<char>& bytes) {
  return std::to_string(H5Tget_class(type)) + "/" + std::to_string(H5Tget_size(type)) + "/" +
         std::to_string(H5Tget_order(type)) + "/" + std::to_string(H5Tget_sign(type)) + ":" +
         std::string(bytes.begin(), bytes.end());
}

herr_t dump_attribute(hid_t obj, const char* name, const H5A_info_t*, void* data) {
  auto* ctx = static_cast<std::pair<Dump*, std::string>*>(data);
  const hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  const hid_t t = H5Aget_type(a);
  const hid_t s = H5Aget_space(a);
  std::vector<char> bytes(static_cast<std::size_t>(H5Sget_simple_extent_npoints(s)) *
                          H5Tget_size(t));
  H5Aread(a, t, bytes.data());
  (*ctx->first)[ctx->second + "@" + name] = type_and_bytes(t, bytes);
  H5Sclose(s);
  H5Tclose(t);
  H5Aclose(a);
  return 0;
}

void dump_attributes(hid_t obj, const std::string& path, Dump& out) {
  std::pair<Dump*, std::string> ctx{&out, path};
  hsize_t idx = 0;
  H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, dump_attribute, &ctx);
}

herr_t dump_link(hid_t root, const char* name, const H5L_info_t*, void* data) {
  auto* out = static_cast<Dump*>(data);
  const hid_t o = H5Oopen(root, name, H5P_DEFAULT);
  if (H5Iget_type(o) == H5I_DATASET) {
    const hid_t t = H5Dget_type(o);
    const hid_t s = H5Dget_space(o);
    std::vector<char> bytes(static_cast<std::size_t>(H5Sget_simple_extent_npoints(s)) *
                            H5Tget_size(t));
    if (!bytes.empty()) H5Dread(o, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
    (*out)[name] = type_and_bytes(t, bytes);
    H5Sclose(s);
    H5Tclose(t);
  } else {
    (*out)[name] = "group";
  }
  dump_attributes(o, name, *out);
  H5Oclose(o);
  return 0;
}

Dump dump_file(const std::string& path) {
  Dump out;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0) << path;
  if (f < 0) return out;
  dump_attributes(f, "/", out);
  H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, dump_link, &out);
  H5Fclose(f);
  return out;
}

// No temporary "<out>.partial.<pid>" left in a directory.
bool has_partial_files(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".partial.") != std::string::npos) return true;
  return false;
}

// --- the round-trip data ------------------------------------------------------------------

// Hand-written rows with the awkward cases first, then random ones (all (user, comparison)
// pairs distinct).
std::vector<Row> round_trip_rows() {
  std::vector<Row> rows = {
      {"alice", "q1,a", "1", "train"},
      {"bob", "q2", "0.5", "train"},
      {"say \"hi\"", "q1,a", "0", "train"},
      {"zo\xC3\xAB", "q 3", "0.25", "train"},
      {"42", "7", "0.75", "test"},
      {"alice", "q2", "0.3333", "validation"},  // not a multiple of 1/200: stored as float32
      {"multi\nline", "q2", "1", "train"},
      {" padded ", "q2", "0", "test"},  // quoted, so the blanks belong to the id
      {"bob", "7", "1e-1", "validation"},
      {"7", "42", "0.5", "train"},
  };
  std::mt19937 rng(12345);
  std::set<std::pair<std::string, std::string>> seen;
  for (const Row& r : rows) seen.insert({r.user, r.comparison});
  const char* labels[] = {"0", "0.5", "1", "0.25", "0.005"};  // multiples of 1/200
  while (rows.size() < 3000) {
    const unsigned u = rng() % 400, c = rng() % 150, l = rng() % 5, s = rng() % 10;
    Row r{"user-" + std::to_string(u) + (u % 7 == 0 ? ",x" : ""),
          "cmp \"" + std::to_string(c) + "\"", labels[l],
          s < 8    ? "train"
          : s == 8 ? "validation"
                   : "test"};
    if (seen.insert({r.user, r.comparison}).second) rows.push_back(r);
  }
  return rows;
}

std::string to_csv(const std::vector<Row>& rows) {
  std::string out = "user,comparison,label,split\r\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    out += csv_field(r.user) + "," + csv_field(r.comparison) + "," + r.label + "," + r.split;
    out += i % 3 == 0 ? "\r\n" : "\n";  // mixed line endings
    if (i == 4) out += "\n";            // a blank line
  }
  return out;
}

}  // namespace

TEST(ImportCli, CsvRoundTripAtOneAndFourRanks) {
  const std::string dir = test_dir();
  const std::vector<Row> rows = round_trip_rows();
  const std::string csv = dir + "/labels.csv";
  write_text(csv, to_csv(rows));
  const Expected e = expected_of(rows);
  std::map<int, Dump> dumps;
  for (int ranks : {0, 1, 4}) {
    const std::string out = dir + "/out" + std::to_string(ranks) + ".h5";
    const RunResult r =
        run_pref("import --csv " + shell_quote(csv) + " --out " + shell_quote(out), ranks);
    ASSERT_EQ(r.code, 0) << r.output;
    SCOPED_TRACE("ranks " + std::to_string(ranks));
    const FileData fd = read_file(out);
    expect_matches(fd, e);
    // Train and test hold only multiples of 1/200 (one byte each); validation does not.
    EXPECT_TRUE(fd.splits.at("train").quantized);
    EXPECT_TRUE(fd.splits.at("test").quantized);
    EXPECT_FALSE(fd.splits.at("validation").quantized);
    dumps[ranks] = dump_file(out);
    EXPECT_FALSE(has_partial_files(dir));
  }
  EXPECT_EQ(dumps[0], dumps[1]);
  EXPECT_EQ(dumps[1], dumps[4]) << "1-rank and 4-rank outputs differ";
  EXPECT_TRUE(dumps[1].count("ids/users"));
  EXPECT_TRUE(dumps[1].count("ids/comparisons"));

  // pref's own reader accepts the file and counts the same.
  const RunResult insp = run_pref("inspect --json " + shell_quote(dir + "/out4.h5"), 2);
  ASSERT_EQ(insp.code, 0) << insp.output;
  // inspect's keys are sorted, so the first "labels" is the top-level (train) count.
  auto first_value = [&](const std::string& key) {
    const std::size_t at = insp.output.find("\"" + key + "\":");
    if (at == std::string::npos) return std::string("(missing)");
    const std::size_t from = at + key.size() + 3;
    return insp.output.substr(from, insp.output.find_first_of(",}", from) - from);
  };
  EXPECT_EQ(first_value("users"), std::to_string(e.users.size())) << insp.output;
  EXPECT_EQ(first_value("comparisons"), std::to_string(e.comparisons.size())) << insp.output;
  EXPECT_EQ(first_value("labels"), std::to_string(e.splits.at("train").size())) << insp.output;
  EXPECT_EQ(first_value("ids"), "true") << insp.output;
}

TEST(ImportCli, JsonLinesRoundTripAndIntegerIds) {
  const std::string dir = test_dir();
  // Integer ids become their decimal strings and share the map with string ids.
  std::string text;
  text += "{\"user\": 17, \"comparison\": \"c1\", \"label\": 1}\n";
  text += "{\"user\": \"17\", \"comparison\": -3, \"label\": 0.5, \"split\": \"test\"}\n";
  text += "\n";
  text += "{\"comparison\": \"c,2\", \"user\": \"x\\ny\", \"label\": 0, \"extra\": [1, 2]}\r\n";
  text +=
      "{\"user\": 18446744073709551615, \"comparison\": \"c1\", \"label\": 0.3333, "
      "\"split\": null}\n";
  text += "{\"user\": \"b\", \"comparison\": \"c1\", \"label\": 0.25, \"split\": \"validation\"}\n";
  const std::vector<Row> rows = {{"17", "c1", "1", "train"},
                                 {"17", "-3", "0.5", "test"},
                                 {"x\ny", "c,2", "0", "train"},
                                 {"18446744073709551615", "c1", "0.3333", "train"},
                                 {"b", "c1", "0.25", "validation"}};
  const Expected e = expected_of(rows);
  for (const char* ext : {".jsonl", ".ndjson"}) {
    const std::string in = dir + "/labels" + ext;
    write_text(in, text);
    std::map<int, Dump> dumps;
    for (int ranks : {1, 4}) {
      const std::string out = dir + "/out" + ext + std::to_string(ranks) + ".h5";
      const RunResult r =
          run_pref("import --csv " + shell_quote(in) + " --out " + shell_quote(out), ranks);
      ASSERT_EQ(r.code, 0) << r.output;
      const FileData fd = read_file(out);
      expect_matches(fd, e);
      EXPECT_FALSE(fd.splits.at("train").quantized);  // 0.3333
      dumps[ranks] = dump_file(out);
    }
    EXPECT_EQ(dumps[1], dumps[4]);
  }
  // --format overrides the extension.
  const std::string odd = dir + "/labels.txt";
  write_text(odd, text);
  const RunResult r = run_pref(
      "import --format jsonl --csv " + shell_quote(odd) + " --out " + shell_quote(dir + "/odd.h5"),
      1);
  ASSERT_EQ(r.code, 0) << r.output;
  expect_matches(read_file(dir + "/odd.h5"), e);
}

TEST(ImportCli, DuplicatesMeanAveragesIntoTheFirstRow) {
  const std::string dir = test_dir();
  const std::string csv = dir + "/dups.csv";
  // A trailing comma makes a fourth (empty) field: an error, not a silently ignored column.
  write_text(csv, "a,x,1\nb,x,0.5\na,x,0\na,y,1,\n");
  RunResult r =
      run_pref("import --csv " + shell_quote(csv) + " --out " + shell_quote(dir + "/o.h5"), 1);
  EXPECT_EQ(r.code, 2) << r.output;
  write_text(csv, "a,x,1\nb,x,0.5\na,x,0\na,y,1\na,x,0.5\n");
  for (int ranks : {1, 4}) {
    const std::string out = dir + "/mean" + std::to_string(ranks) + ".h5";
    r = run_pref(
        "import --duplicates mean --csv " + shell_quote(csv) + " --out " + shell_quote(out), ranks);
    ASSERT_EQ(r.code, 0) << r.output;
    const FileData fd = read_file(out);
    EXPECT_EQ(fd.user_ids, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(fd.comparison_ids, (std::vector<std::string>{"x", "y"}));
    const SplitData& t = fd.splits.at("train");
    EXPECT_EQ(t.user, (std::vector<std::uint32_t>{0, 1, 0}));
    EXPECT_EQ(t.comparison, (std::vector<std::uint32_t>{0, 0, 1}));
    EXPECT_EQ(t.value, (std::vector<float>{0.5f, 0.5f, 1.0f}));
  }
}

namespace {
struct BadCase {
  const char* name;
  const char* ext;
  std::string content;
  std::vector<std::string> expect;  // substrings of the error line besides the file name
  std::string options = "";
};
}  // namespace

TEST(ImportCli, BadInputFailsCleanlyAtOneAndFourRanks) {
  const std::string dir = test_dir();
  const std::vector<BadCase> cases = {
      {"fields", ".csv", "user,comparison,label\na,b,1\na,c\n", {"line 3", "found 2"}},
      {"fields4", ".csv", "a,b,1,train\na,c,1\n", {"line 2", "found 3"}},
      {"empty_user", ".csv", "a,b,1\n\n,b,1\n", {"line 3", "empty user id"}},
      {"empty_comparison", ".csv", "a,\"\",1\n", {"line 1", "empty comparison id"}},
      {"not_number", ".csv", "u,c,label\na,b,1\na,c,yes\n", {"line 3", "'yes'"}},
      {"nan", ".csv", "a,b,1\na,c,nan\n", {"line 2", "'nan'"}},
      {"inf", ".csv", "a,b,1\na,c,inf\n", {"line 2", "'inf'"}},
      {"above", ".csv", "a,b,1\na,c,1.5\n", {"line 2", "'1.5'", "[0, 1]"}},
      {"below", ".csv", "a,b,-0.25\n", {"line 1", "'-0.25'", "[0, 1]"}},
      {"split", ".csv", "a,b,1,train\na,c,1,training\n", {"line 2", "'training'"}},
      {"duplicate", ".csv", "a,b,1\nc,b,1\na,b,0\n", {"line 3", "line 1", "'a'", "'b'"}},
      {"leak",
       ".csv",
       "a,b,1,train\nc,d,1,train\na,b,0,test\n",
       {"line 3", "line 1", "test", "train"}},
      {"leak_mean",
       ".csv",
       "a,b,1,train\na,b,1,train\na,b,0,validation\n",
       {"line 3", "line 1", "validation"},
       "--duplicates mean"},
      {"quote", ".csv", "a,b,1\n\"a,b,1\n", {"line 2", "quoted field"}},
      {"empty", ".csv", "", {"no labels"}},
      {"header_only", ".csv", "user,comparison,label\n", {"no labels"}},
      {"no_train", ".csv", "a,b,1,validation\nb,b,1,test\n", {"no train labels"}},
      {"json_syntax",
       ".jsonl",
       "{\"user\":\"a\",\"comparison\":\"b\",\"label\":1}\n{\"user\":\n",
       {"line 2", "JSON"}},
      {"json_missing", ".jsonl", "{\"user\":\"a\",\"label\":1}\n", {"line 1", "'comparison'"}},
      {"json_float_id",
       ".jsonl",
       "{\"user\":1.5,\"comparison\":\"b\",\"label\":1}\n",
       {"line 1", "'1.5'"}},
      {"json_label",
       ".jsonl",
       "{\"user\":\"a\",\"comparison\":\"b\",\"label\":2}\n",
       {"line 1", "'2'"}},
  };
  for (const BadCase& c : cases) {
    const std::string in = dir + "/bad_" + c.name + c.ext;
    write_text(in, c.content);
    for (int ranks : {1, 4}) {
      SCOPED_TRACE(std::string(c.name) + " at " + std::to_string(ranks) + " ranks");
      const std::string out = dir + "/out_" + c.name + std::to_string(ranks) + ".h5";
      const RunResult r = run_pref(
          "import " + c.options + " --csv " + shell_quote(in) + " --out " + shell_quote(out),
          ranks);
      EXPECT_EQ(r.code, 2) << r.output;
      const std::vector<std::string> errors = error_lines(r.output);
      ASSERT_EQ(errors.size(), 1u) << r.output;
      EXPECT_NE(errors[0].find(in), std::string::npos) << errors[0];
      for (const std::string& s : c.expect)
        EXPECT_NE(errors[0].find(s), std::string::npos) << errors[0];
      EXPECT_FALSE(fs::exists(out));
      EXPECT_FALSE(has_partial_files(dir));
    }
  }
}

TEST(ImportCli, MissingInputAndExistingOutput) {
  const std::string dir = test_dir();
  for (int ranks : {1, 4}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    const std::string missing = dir + "/missing.csv";
    RunResult r = run_pref(
        "import --csv " + shell_quote(missing) + " --out " + shell_quote(dir + "/o.h5"), ranks);
    EXPECT_EQ(r.code, 2) << r.output;
    ASSERT_EQ(error_lines(r.output).size(), 1u) << r.output;
    EXPECT_NE(error_lines(r.output)[0].find(missing), std::string::npos) << r.output;
    r = run_pref("import --csv " + shell_quote(dir) + " --out " + shell_quote(dir + "/o.h5"),
                 ranks);
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("is a directory"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir + "/o.h5"));
  }

  const std::string good = dir + "/good.csv", bad = dir + "/bad.csv", out = dir + "/out.h5";
  write_text(good, "a,b,1\n");
  write_text(bad, "a,b,1\na,c,2\n");
  ASSERT_EQ(run_pref("import --csv " + shell_quote(good) + " --out " + shell_quote(out), 1).code,
            0);
  const std::string before = read_bytes(out);
  ASSERT_FALSE(before.empty());
  for (int ranks : {1, 4}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    // Without --overwrite an existing file is refused, and left as it was.
    RunResult r =
        run_pref("import --csv " + shell_quote(good) + " --out " + shell_quote(out), ranks);
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
    EXPECT_EQ(read_bytes(out), before);
    // With --overwrite but bad input, the old file stays.
    r = run_pref("import --overwrite --csv " + shell_quote(bad) + " --out " + shell_quote(out),
                 ranks);
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("line 2"), std::string::npos) << r.output;
    EXPECT_EQ(read_bytes(out), before);
    EXPECT_FALSE(has_partial_files(dir));
  }
  // With --overwrite and good input it is replaced.
  write_text(good, "a,b,1\nc,d,0\n");
  ASSERT_EQ(
      run_pref("import --overwrite --csv " + shell_quote(good) + " --out " + shell_quote(out), 4)
          .code,
      0);
  EXPECT_EQ(read_file(out).users, 2u);
}

// --- the parser directly (serial, no MPI) ---------------------------------------------------

namespace {
io::LabelTable parse(const std::string& text, const std::string& name = "t.csv",
                     Duplicates d = Duplicates::kError) {
  const std::string path = test_dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return io::read_label_table(path, io::InputFormat::kAuto, d);
}

std::string parse_error(const std::string& text, const std::string& name = "t.csv") {
  try {
    parse(text, name);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST(ImportParser, HeaderDetectionAndFields) {
  // A header is recognised by its label column's name, in any case.
  EXPECT_EQ(parse("User,Comparison,Label\na,b,1\n").splits[0].size(), 1u);
  EXPECT_EQ(parse("user_id,pair,value,split\na,b,1,test\nb,b,0,train\n").splits[2].size(), 1u);
  // A first row that is neither a label nor a header is an error on line 1, with a hint.
  const std::string e = parse_error("user,item,rating\na,b,1\n");
  EXPECT_NE(e.find("line 1"), std::string::npos) << e;
  EXPECT_NE(e.find("'rating'"), std::string::npos) << e;
  // Blanks around fields are dropped, those inside quotes kept; BOM and CRLF are handled.
  const io::LabelTable t = parse("\xEF\xBB\xBFuser,comparison,label\r\n  a , \" b \" , +0.5 \r\n");
  EXPECT_EQ(t.users.id(0), "a");
  EXPECT_EQ(t.comparisons.id(0), " b ");
  EXPECT_EQ(t.splits[0].value, std::vector<float>{0.5f});
  EXPECT_EQ(t.lines, 2u);
  // Ids: NUL-padded table, width of the longest id.
  const io::LabelTable w = parse("a,b,1\nlonger,b,0\n");
  EXPECT_EQ(w.users.width, 6u);
  EXPECT_EQ(w.comparisons.width, 1u);
  EXPECT_EQ(w.users.id(0), "a");
  EXPECT_EQ(w.users.id(1), "longer");
  // A quoted field may span lines; its record is numbered by its first line.
  const io::LabelTable m = parse("\"a\nb\",c,1\nd,c,0\n");
  EXPECT_EQ(m.users.id(0), "a\nb");
  const std::string bad = parse_error("\"a\nb\",c,1\nd,c,x\n");
  EXPECT_NE(bad.find("line 3"), std::string::npos) << bad;
  EXPECT_NE(parse_error("a,\"b\"c,1\n").find("line 1"), std::string::npos);
  // Numbers: forms strtod knows, but not hex or trailing text.
  EXPECT_EQ(parse("a,b,5e-1\n").splits[0].value, std::vector<float>{0.5f});
  EXPECT_NE(parse_error("a,b,0x1p-1\n").find("not a number"), std::string::npos);
  EXPECT_NE(parse_error("a,b,0.5x\n").find("not a number"), std::string::npos);
  EXPECT_NE(parse_error("a,b,1e400\n").find("outside [0, 1]"), std::string::npos);
  EXPECT_NE(parse_error("a,b,1\n", "t.nope").find("(no error)"), std::string::npos);
}

TEST(ImportParser, MessagesNameFileLineAndValue) {
  std::string e = parse_error("a,b,1\nc,d,0.5,test\n");
  EXPECT_NE(e.find("t.csv: line 2:"), std::string::npos) << e;
  e = parse_error("a,b,1\n\n\nc,d,2\n");
  EXPECT_NE(e.find("t.csv: line 4: label '2'"), std::string::npos) << e;
  e = parse_error("a,\"multi\nline\",1\na,\"multi\nline\",1\n");
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  EXPECT_NE(e.find("line 1"), std::string::npos) << e;
  EXPECT_NE(e.find("'multi\\x0aline'"), std::string::npos) << e;  // one line, escaped
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  // The earliest problem in the file is reported, whatever the id order.
  e = parse_error("z,z,1\na,a,1\na,a,1\nz,z,1\n");
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
}
