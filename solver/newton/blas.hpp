#pragma once
// The Fortran BLAS routines pref calls directly (OpenBLAS on Debian; column-major, arguments by
// pointer). Every use declares them from here. ScaLAPACK's and BLACS's own prototypes are in
// solver/svd/scalapack.hpp.
extern "C" {
// C = alpha op(A) op(B) + beta C.
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc);
// C = alpha op(A) op(A)^T + beta C, one triangle of C.
void dsyrk_(const char* uplo, const char* trans, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* beta, double* c, const int* ldc);
// B = alpha op(A)^-1 B (side L) or alpha B op(A)^-1 (side R), A triangular.
void dtrsm_(const char* side, const char* uplo, const char* transa, const char* diag, const int* m,
            const int* n, const double* alpha, const double* a, const int* lda, double* b,
            const int* ldb);
}
