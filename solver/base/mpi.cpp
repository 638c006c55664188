#include "solver/base/mpi.hpp"

#include <chrono>
#include <thread>

#include <cstring>
#include <exception>
#include <map>

namespace pref::mpi {

void throw_error(int code, const char* call, const char* file, int line) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, buf, &len);
  throw Error(std::string("MPI error in ") + call + " at " + file + ":" + std::to_string(line) +
              ": " + std::string(buf, len));
}

Environment::Environment(int& argc, char**& argv) {
  int provided = 0;
  PREF_MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
  // Errors come back as codes and become exceptions (PREF_MPI_CHECK) instead of aborting.
  PREF_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
}

namespace {
std::map<int, MPI_Datatype>& bytes_types() {
  static std::map<int, MPI_Datatype> types;
  return types;
}
}  // namespace

MPI_Datatype detail::bytes_type(int bytes) {
  auto& types = bytes_types();
  if (auto it = types.find(bytes); it != types.end()) return it->second;
  MPI_Datatype t = MPI_DATATYPE_NULL;
  PREF_MPI_CHECK(MPI_Type_contiguous(bytes, MPI_BYTE, &t));
  if (const int rc = MPI_Type_commit(&t); rc != MPI_SUCCESS) {
    MPI_Type_free(&t);
    throw_error(rc, "MPI_Type_commit(&t)", __FILE__, __LINE__);
  }
  types.emplace(bytes, t);
  return t;
}

Environment::~Environment() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (auto& [bytes, t] : bytes_types()) MPI_Type_free(&t);
  bytes_types().clear();
  MPI_Finalize();
}

Comm::~Comm() {
  if (owned_ && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

Comm::Comm(Comm&& other) noexcept : comm_(other.comm_), owned_(other.owned_) {
  other.comm_ = MPI_COMM_NULL;
  other.owned_ = false;
}

Comm& Comm::operator=(Comm&& other) noexcept {
  if (this != &other) {
    if (owned_ && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    comm_ = other.comm_;
    owned_ = other.owned_;
    other.comm_ = MPI_COMM_NULL;
    other.owned_ = false;
  }
  return *this;
}

Comm Comm::dup() const {
  Comm out;
  PREF_MPI_CHECK(MPI_Comm_dup(comm_, &out.comm_));
  out.owned_ = true;
  return out;
}

int Comm::rank() const {
  int r = 0;
  PREF_MPI_CHECK(MPI_Comm_rank(comm_, &r));
  return r;
}

int Comm::size() const {
  int s = 0;
  PREF_MPI_CHECK(MPI_Comm_size(comm_, &s));
  return s;
}

void Comm::barrier() const {
  PREF_MPI_CHECK(MPI_Barrier(comm_));
}

std::string broadcast(const Comm& comm, const std::string& s, int root) {
  std::uint64_t n = broadcast(comm, static_cast<std::uint64_t>(s.size()), root);
  std::string out = comm.rank() == root ? s : std::string(n, '\0');
  broadcast(comm, std::span<char>(out.data(), out.size()), root);
  return out;
}

void sleeping_barrier(const Comm& comm, int poll_us) {
  MPI_Request req;
  PREF_MPI_CHECK(MPI_Ibarrier(comm.get(), &req));
  int done = 0;
  while (true) {
    PREF_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (done) return;
    std::this_thread::sleep_for(std::chrono::microseconds(poll_us));
  }
}

void agree(const Comm& comm, const std::function<void()>& fn) {
  // kind: 0 none, 1 other error, 2 I/O error, 3 input error (input errors take precedence: a
  // bad file often makes another rank fail in some other way too; a failed write is the
  // environment's, not a bug, and keeps its own exit code)
  int kind = 0;
  std::uint64_t order = InputError::kNoOrder;
  std::string message;
  try {
    fn();
  } catch (const InputError& e) {
    kind = 3;
    order = e.order();
    message = e.what();
  } catch (const IoError& e) {
    kind = 2;
    message = e.what();
  } catch (const std::exception& e) {
    kind = 1;
    message = e.what();
  }
  const int any = allreduce_max(comm, kind);
  if (any == 0) return;
  // Among the errors of the winning kind: the smallest order, then the lowest rank.
  const std::uint64_t key = kind == 3 ? order : InputError::kNoOrder;
  const std::uint64_t best_key = allreduce_min(comm, kind == any ? key : InputError::kNoOrder);
  const int candidate = (kind == any && key == best_key) ? comm.rank() : comm.size();
  const int root = allreduce_min(comm, candidate);
  const std::string msg = broadcast(comm, message, root);
  if (any == 3) throw InputError(msg, best_key, /*collective=*/true);
  if (any == 2) throw IoError(msg, /*collective=*/true);
  throw Error(msg, /*collective=*/true);
}

}  // namespace pref::mpi
