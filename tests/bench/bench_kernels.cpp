// Benchmark (not a test): throughput of the Newton row kernel's label loop (margin, loss,
// gradient and Hessian) for several J, next to the machine's measured dgemm rate.
// Usage: bench_kernels [labels_per_row=40] [total_labels=4e6] [Js=4,8,16,32,64]
#include <fmt/core.h>

#include <Eigen/Core>
#include <chrono>
#include <cstdlib>
#include <vector>

#include "solver/base/rng.hpp"
#include "solver/newton/blas.hpp"
#include "solver/newton/newton.hpp"

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double dgemm_gflops(int n) {
  std::vector<double> a(std::size_t(n) * n, 1.0), b(a), c(a);
  const double one = 1, zero = 0;
  dgemm_("N", "N", &n, &n, &n, &one, a.data(), &n, b.data(), &n, &zero, c.data(), &n);
  int reps = 0;
  const double t0 = now();
  double t = 0;
  while ((t = now() - t0) < 1.0) {
    dgemm_("N", "N", &n, &n, &n, &one, a.data(), &n, b.data(), &n, &zero, c.data(), &n);
    ++reps;
  }
  return 2.0 * n * n * double(n) * reps / t / 1e9;
}
}  // namespace

int main(int argc, char** argv) {
  const std::size_t per_row = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 40;
  const std::size_t total =
      argc > 2 ? static_cast<std::size_t>(std::strtod(argv[2], nullptr)) : 4000000;
  std::vector<int> js;
  for (const char* s = argc > 3 ? argv[3] : "4,8,16,32,64"; *s;) {
    char* end = nullptr;
    js.push_back(static_cast<int>(std::strtol(s, &end, 10)));
    s = *end == ',' ? end + 1 : end;
    if (end == s && *s) break;
  }
  const std::size_t partners = 10000;
  fmt::print(
      "dgemm (OpenBLAS, one thread unless OPENBLAS_NUM_THREADS says otherwise): "
      "{:.1f} GFLOP/s at n=1000\n",
      dgemm_gflops(1000));
  fmt::print("{:>4} {:>10} {:>14} {:>16} {:>16}\n", "J", "labels/row", "Mlabels/s",
             "Hessian GFLOP/s", "row solves/s");
  for (int J : js) {
    std::vector<double> table(partners * J);
    pref::Rng rng(1, pref::Stream::kSketch, J);
    for (auto& v : table) v = 0.3 * rng.normal();
    const std::size_t rows = std::max<std::size_t>(1, total / per_row);
    std::vector<std::uint32_t> idx(rows * per_row);
    std::vector<float> y(idx.size());
    for (std::size_t k = 0; k < idx.size(); ++k) {
      idx[k] = static_cast<std::uint32_t>(rng.below(partners));
      y[k] = rng.uniform() < 0.5 ? 0.0f : 1.0f;
    }
    std::vector<double> w(rows * J);
    for (auto& v : w) v = 0.3 * rng.normal();
    pref::RowWorkspace ws;
    Eigen::VectorXd g(J);
    Eigen::MatrixXd H(J, J);
    double sink = 0;
    const double t0 = now();
    for (std::size_t r = 0; r < rows; ++r) {
      g.setZero();
      H.setZero();
      sink += pref::accumulate_row(w.data() + r * J, J, table.data(),
                                   {idx.data() + r * per_row, per_row},
                                   {y.data() + r * per_row, per_row}, g, &H, ws, nullptr);
      sink += H(J - 1, 0);
    }
    const double t = now() - t0;
    // Row solves: one full Newton step (accumulate, Cholesky, line search) per row.
    std::vector<double> w2 = w;
    const double t1 = now();
    for (std::size_t r = 0; r < rows; ++r)
      pref::solve_row(w2.data() + r * J, J, table.data(), {idx.data() + r * per_row, per_row},
                      {y.data() + r * per_row, per_row}, 1.0, 1, ws);
    const double t2 = now() - t1;
    const double labels = double(rows * per_row);
    // The Hessian's lower triangle: J(J+1)/2 multiply-adds per label.
    fmt::print("{:>4} {:>10} {:>14.2f} {:>16.2f} {:>16.3g}{}\n", J, per_row, labels / t / 1e6,
               labels * J * (J + 1) / t / 1e9, rows / t2, sink == 42 ? " " : "");
  }
  return 0;
}
