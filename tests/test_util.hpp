#pragma once
// Shared helpers of the tests: scratch paths, running the `pref` binary (under mpirun, with a
// timeout) and capturing its exit code and output, and serial HDF5 reading/writing with the C
// API (default file driver, no MPI needed) to build bad files and check written ones.
#include <fcntl.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "io/hdf5.hpp"

namespace pref::test {

// ---------------------------------------------------------------------------------------------
// Paths and files

// The scratch directory of the tests (PREF_TEST_TMP, else the system's temporary directory).
inline std::string tmp_dir() {
  const char* t = std::getenv("PREF_TEST_TMP");
  std::string dir = t && *t ? t : std::filesystem::temp_directory_path().string();
  std::filesystem::create_directories(dir);
  return dir;
}

// A fresh directory under tmp_dir() named after `name` and this process, emptied if it exists.
inline std::string fresh_dir(const std::string& name) {
  const std::string dir = tmp_dir() + "/" + name + "." + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// Running programs

struct RunResult {
  int exit_code = -1;  // the program's exit status; 128+n when killed by signal n
  bool timed_out = false;
  std::string out, err;
  std::string command;  // for messages
};

// Lines of a child's output that fail the test whatever the test expects of the child: HDF5
// printing its error stack (pref silences it, even when it fails) and sanitizer reports (a
// sanitized pref that dies of one exits with a code a test of a failing run may accept). They
// are copied to this process's standard error after kChildAlarm, which ctest's
// FAIL_REGULAR_EXPRESSION matches (cmake/PrefTesting.cmake). Open MPI's abort banners are not
// among them: the tests of failing runs expect those.
inline constexpr const char* kChildAlarm = "child output alarm: ";
inline void forward_alarms(const RunResult& r) {
  static const char* const kAlarms[] = {"HDF5-DIAG", "ERROR: AddressSanitizer",
                                        "ERROR: LeakSanitizer", "runtime error:"};
  for (const std::string* text : {&r.out, &r.err})
    for (const std::string& line : split_lines(*text))
      for (const char* alarm : kAlarms)
        if (contains(line, alarm)) {
          std::fprintf(stderr, "%s%s: %s\n", kChildAlarm, r.command.c_str(), line.c_str());
          break;
        }
}

// Runs argv (argv[0] looked up in PATH) under `timeout <seconds>`, with standard output and
// error captured; standard input is /dev/null.
inline RunResult run_command(const std::vector<std::string>& argv, int timeout_seconds = 120) {
  static std::atomic<int> counter{0};  // run_command may be called from several threads
  const std::string base =
      tmp_dir() + "/run." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const std::string out_path = base + ".out", err_path = base + ".err";
  std::vector<std::string> full = {"timeout", "-k", "10", std::to_string(timeout_seconds)};
  full.insert(full.end(), argv.begin(), argv.end());
  RunResult r;
  for (const auto& a : full) r.command += (r.command.empty() ? "" : " ") + a;
  // Everything the child needs is prepared before fork(): the child of a multi-threaded process
  // may only make async-signal-safe calls (no allocation) until exec.
  std::vector<char*> args;
  for (auto& a : full) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw std::runtime_error("waitpid failed");
  if (WIFEXITED(status))
    r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    r.exit_code = 128 + WTERMSIG(status);
  r.timed_out = r.exit_code == 124 || r.exit_code == 137;
  r.out = read_bytes(out_path);
  r.err = read_bytes(err_path);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  forward_alarms(r);
  return r;
}

inline std::string pref_binary() {
  const char* b = std::getenv("PREF_BINARY");
  if (!b || !*b) throw std::runtime_error("PREF_BINARY is not set");
  return b;
}

inline std::string mpiexec() {
  const char* m = std::getenv("PREF_MPIEXEC");
  return m && *m ? m : "mpirun";
}

// Runs `pref args...` under `mpirun -np ranks --oversubscribe -q` (mpirun's own notices are
// silenced so that standard error holds what pref printed). odls_base_sigkill_timeout 0: after a
// rank exits with a nonzero code mpirun otherwise waits 1-2 s before ending the job, which would
// dominate the run time of the tests that expect exit code 2 (every rank has finished printing
// by then: they all return from main after MPI_Finalize).
// Each run gets its own session directory (orte_tmpdir_base, short for PMIx's socket paths):
// mpiruns that start and end at the same time in a shared one race on creating and removing it
// ("ORTE_ERROR_LOG: Error in file .../session_dir.c").
// The same with another binary (e.g. the test-only pref_test_hooks) and extra environment
// variables ("NAME=value", set for mpirun and so for every rank).
inline RunResult run_pref_with(const std::string& binary, const std::vector<std::string>& env,
                               int ranks, const std::vector<std::string>& args,
                               int timeout_seconds = 120) {
  static std::atomic<int> counter{0};
  const std::string session = "/tmp/pref-test-ompi." + std::to_string(::getpid()) + "." +
                              std::to_string(counter++) + (env.empty() ? "" : "e");
  std::filesystem::create_directories(session);
  std::vector<std::string> argv;
  if (!env.empty()) {
    argv.push_back("env");
    argv.insert(argv.end(), env.begin(), env.end());
  }
  argv.insert(argv.end(), {mpiexec(), "-q", "--mca", "odls_base_sigkill_timeout", "0", "--mca",
                           "orte_tmpdir_base", session, "-np", std::to_string(ranks),
                           "--oversubscribe", binary});
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = run_command(argv, timeout_seconds);
  std::error_code ec;
  std::filesystem::remove_all(session, ec);
  return r;
}

inline RunResult run_pref(int ranks, const std::vector<std::string>& args,
                          int timeout_seconds = 120) {
  return run_pref_with(pref_binary(), {}, ranks, args, timeout_seconds);
}

// The lines of standard error that are not progress logs ("[pref ...] ..."), nor warnings of
// Open MPI's event library ("[warn] Epoll MOD(1) on fd 30 failed...": about 1 run in 40 when
// mpirun ends a job whose rank exited nonzero without waiting, see run_pref).
inline std::vector<std::string> error_lines(const RunResult& r) {
  std::vector<std::string> out;
  for (auto& l : split_lines(r.err))
    if (!l.empty() && l.rfind("[pref ", 0) != 0 && l.rfind("[warn] ", 0) != 0) out.push_back(l);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Serial HDF5 (C API, default driver)

// Throws on a negative HDF5 return value.
template <class T>
T h5check(T rc, const char* what) {
  if (rc < 0) throw std::runtime_error(std::string("HDF5 call failed: ") + what);
  return rc;
}

// An owned hid_t with its close function.
class H5Id {
 public:
  H5Id() = default;
  H5Id(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  ~H5Id() {
    if (id_ >= 0 && closer_) closer_(id_);
  }
  H5Id(H5Id&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  H5Id& operator=(H5Id&& o) noexcept {
    std::swap(id_, o.id_);
    std::swap(closer_, o.closer_);
    return *this;
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }

 private:
  hid_t id_ = -1;
  herr_t (*closer_)(hid_t) = nullptr;
};

template <class T>
hid_t h5_native() {
  return pref::h5::native_type<T>();
}

inline H5Id h5_create(const std::string& path) {
  return H5Id(h5check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                      ("create " + path).c_str()),
              H5Fclose);
}

inline H5Id h5_open(const std::string& path, bool writable = false) {
  return H5Id(h5check(H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT),
                      ("open " + path).c_str()),
              H5Fclose);
}

// A dataset `path` (intermediate groups are created) of the given dimensions and file type
// `file_type` (default: the native type of T), holding data (row-major).
template <class T>
void h5_write_dims(hid_t file, const std::string& path, const std::vector<T>& data, int rank,
                   const hsize_t* dims, hid_t file_type) {
  H5Id space(h5check(H5Screate_simple(rank, dims, nullptr), "space"), H5Sclose);
  H5Id lcpl(h5check(H5Pcreate(H5P_LINK_CREATE), "lcpl"), H5Pclose);
  H5Pset_create_intermediate_group(lcpl, 1);
  H5Id d(h5check(H5Dcreate2(file, path.c_str(), file_type >= 0 ? file_type : h5_native<T>(), space,
                            lcpl, H5P_DEFAULT, H5P_DEFAULT),
                 ("create dataset " + path).c_str()),
         H5Dclose);
  if (!data.empty())
    h5check(H5Dwrite(d, h5_native<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()),
            ("write " + path).c_str());
}

// A 1-D dataset `path` (intermediate groups are created) of file type `file_type` (default: the
// native type of T), holding data.
template <class T>
void h5_write(hid_t file, const std::string& path, const std::vector<T>& data,
              hid_t file_type = -1) {
  const hsize_t n = data.size();
  h5_write_dims(file, path, data, 1, &n, file_type);
}

// A 2-D dataset `path` of rows x (data.size() / rows) elements (row-major), stored as
// `file_type` (default: the native type of T; HDF5 converts, e.g. float to float16).
template <class T>
void h5_write_matrix(hid_t file, const std::string& path, const std::vector<T>& data, hsize_t rows,
                     hid_t file_type = -1) {
  const hsize_t dims[2] = {rows, rows ? data.size() / rows : 0};
  h5_write_dims(file, path, data, 2, dims, file_type);
}

// IEEE half precision (what numpy's float16 is stored as by h5py).
inline H5Id h5_float16_type() {
  H5Id t(h5check(H5Tcopy(H5T_IEEE_F32LE), "copy float type"), H5Tclose);
  h5check(H5Tset_fields(t, 15, 10, 5, 0, 10), "float16 fields");
  h5check(H5Tset_size(t, 2), "float16 size");
  h5check(H5Tset_ebias(t, 15), "float16 bias");
  return t;
}

// A 1-D fixed-length string dataset.
inline void h5_write_strings(hid_t file, const std::string& path,
                             const std::vector<std::string>& data) {
  std::size_t width = 1;
  for (auto& s : data) width = std::max(width, s.size());
  std::string buf(width * data.size(), '\0');
  for (std::size_t i = 0; i < data.size(); ++i) buf.replace(i * width, data[i].size(), data[i]);
  H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, width);
  const hsize_t n = data.size();
  H5Id space(h5check(H5Screate_simple(1, &n, nullptr), "space"), H5Sclose);
  H5Id lcpl(h5check(H5Pcreate(H5P_LINK_CREATE), "lcpl"), H5Pclose);
  H5Pset_create_intermediate_group(lcpl, 1);
  H5Id d(h5check(H5Dcreate2(file, path.c_str(), type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT),
                 "create string dataset"),
         H5Dclose);
  h5check(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "write strings");
}

// A scalar numeric attribute on the object at obj_path ("/" for the root).
template <class T>
void h5_write_attr(hid_t file, const std::string& obj_path, const std::string& name, T value) {
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Id a(h5check(H5Acreate_by_name(file, obj_path.c_str(), name.c_str(), h5_native<T>(), space,
                                   H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                 ("attribute " + name).c_str()),
         H5Aclose);
  h5check(H5Awrite(a, h5_native<T>(), &value), "write attribute");
}

inline void h5_write_string_attr(hid_t file, const std::string& obj_path, const std::string& name,
                                 const std::string& value) {
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, std::max<std::size_t>(1, value.size()));
  H5Id a(h5check(H5Acreate_by_name(file, obj_path.c_str(), name.c_str(), type, space, H5P_DEFAULT,
                                   H5P_DEFAULT, H5P_DEFAULT),
                 ("attribute " + name).c_str()),
         H5Aclose);
  std::string buf = value.empty() ? std::string(1, '\0') : value;
  h5check(H5Awrite(a, type, buf.data()), "write attribute");
}

inline bool h5_exists(hid_t file, const std::string& path) {
  return H5Lexists(file, path.c_str(), H5P_DEFAULT) > 0;
}

// The dimensions of a dataset.
inline std::vector<hsize_t> h5_dims(hid_t file, const std::string& path) {
  H5Id d(h5check(H5Dopen2(file, path.c_str(), H5P_DEFAULT), ("open " + path).c_str()), H5Dclose);
  H5Id space(H5Dget_space(d), H5Sclose);
  std::vector<hsize_t> dims(H5Sget_simple_extent_ndims(space));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

// A whole numeric dataset, converted to T, in row-major order.
template <class T>
std::vector<T> h5_read(hid_t file, const std::string& path) {
  H5Id d(h5check(H5Dopen2(file, path.c_str(), H5P_DEFAULT), ("open " + path).c_str()), H5Dclose);
  H5Id space(H5Dget_space(d), H5Sclose);
  std::vector<T> out(H5Sget_simple_extent_npoints(space));
  if (!out.empty())
    h5check(H5Dread(d, h5_native<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
            ("read " + path).c_str());
  return out;
}

namespace detail {
struct ObjectList {
  std::vector<std::string> names;
};
inline herr_t collect_link(hid_t, const char* name, const H5L_info_t*, void* data) {
  static_cast<ObjectList*>(data)->names.push_back(std::string("/") + name);
  return 0;
}
inline herr_t collect_attr(hid_t, const char* name, const H5A_info_t*, void* data) {
  static_cast<ObjectList*>(data)->names.push_back(name);
  return 0;
}
// The raw bytes of a dataset or attribute, in its own (file) type, plus a description of the
// type and shape.
inline std::string raw_dataset(hid_t d, std::string* desc) {
  H5Id type(H5Dget_type(d), H5Tclose);
  H5Id space(H5Dget_space(d), H5Sclose);
  std::vector<hsize_t> dims(H5Sget_simple_extent_ndims(space));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  desc->assign("class ").append(std::to_string(H5Tget_class(type)));
  desc->append(" size ").append(std::to_string(H5Tget_size(type))).append(" dims");
  for (auto x : dims) desc->append(" ").append(std::to_string(x));
  std::string buf(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)) * H5Tget_size(type),
                  '\0');
  if (!buf.empty()) h5check(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "read");
  return buf;
}
inline std::string raw_attribute(hid_t a, std::string* desc) {
  H5Id type(H5Aget_type(a), H5Tclose);
  H5Id space(H5Aget_space(a), H5Sclose);
  desc->assign("class ").append(std::to_string(H5Tget_class(type)));
  desc->append(" size ").append(std::to_string(H5Tget_size(type)));
  std::string buf(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)) * H5Tget_size(type),
                  '\0');
  h5check(H5Aread(a, type, buf.data()), "read attribute");
  return buf;
}
}  // namespace detail

// A string attribute of the object at obj ("/" for the root), without its padding.
inline std::string h5_string_attr(hid_t file, const std::string& obj, const std::string& name) {
  H5Id a(h5check(H5Aopen_by_name(file, obj.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                 name.c_str()),
         H5Aclose);
  std::string desc;
  std::string s = detail::raw_attribute(a, &desc);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

// The differences between two HDF5 files (empty when they hold the same objects, and every
// dataset and attribute has the same type, shape and bytes).
inline std::vector<std::string> h5_differences(const std::string& a, const std::string& b) {
  std::vector<std::string> diffs;
  H5Id fa = h5_open(a), fb = h5_open(b);
  detail::ObjectList la, lb;
  H5Lvisit(fa, H5_INDEX_NAME, H5_ITER_INC, detail::collect_link, &la);
  H5Lvisit(fb, H5_INDEX_NAME, H5_ITER_INC, detail::collect_link, &lb);
  if (la.names != lb.names) {
    diffs.push_back("different objects");
    return diffs;
  }
  la.names.insert(la.names.begin(), "/");
  for (const auto& name : la.names) {
    H5Id oa(h5check(H5Oopen(fa, name.c_str(), H5P_DEFAULT), name.c_str()), H5Oclose);
    H5Id ob(h5check(H5Oopen(fb, name.c_str(), H5P_DEFAULT), name.c_str()), H5Oclose);
    if (H5Iget_type(oa) != H5Iget_type(ob)) {
      diffs.push_back(name + ": different kinds of object");
      continue;
    }
    if (H5Iget_type(oa) == H5I_DATASET) {
      std::string da, db;
      if (detail::raw_dataset(oa, &da) != detail::raw_dataset(ob, &db) || da != db)
        diffs.push_back(name + ": different contents (" + da + " / " + db + ")");
    }
    detail::ObjectList aa, ab;
    hsize_t ia = 0, ib = 0;
    H5Aiterate2(oa, H5_INDEX_NAME, H5_ITER_INC, &ia, detail::collect_attr, &aa);
    H5Aiterate2(ob, H5_INDEX_NAME, H5_ITER_INC, &ib, detail::collect_attr, &ab);
    if (aa.names != ab.names) {
      diffs.push_back(name + ": different attributes");
      continue;
    }
    for (const auto& an : aa.names) {
      H5Id xa(H5Aopen(oa, an.c_str(), H5P_DEFAULT), H5Aclose);
      H5Id xb(H5Aopen(ob, an.c_str(), H5P_DEFAULT), H5Aclose);
      std::string da, db;
      if (detail::raw_attribute(xa, &da) != detail::raw_attribute(xb, &db) || da != db)
        diffs.push_back(name + " attribute " + an + ": different");
    }
  }
  return diffs;
}

}  // namespace pref::test
