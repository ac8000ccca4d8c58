// Matrix products through OpenBLAS, loaded on first use.
//
// OpenBLAS (the pthread build Debian installs) starts its thread pool when it is loaded, and
// those threads spin for ~0.1 s of CPU before they sleep: linked into lumen, every command paid
// that, on every core but one, while it did its real work (a `convert` of one photo spent as
// much CPU in OpenBLAS' spinning as in libwebp). So it is opened with dlopen by the first product
// (tags, dupes), and commands that never multiply matrices never load it.
#pragma once

namespace lumen {

// C[m x n] = A[m x k] * B[n x k]^T, row-major with leading dimensions lda, ldb, ldc: each entry
// is the dot product of a row of A and a row of B (the cosine of unit vectors).
// Uses OpenBLAS (or another CBLAS); without one, a plain loop, after a warning.
void MultiplyTransposed(int m, int n, int k, const float* a, int lda, const float* b, int ldb,
                        float* c, int ldc);

// Whether a CBLAS library was found (loads it).
bool BlasLoaded();

}  // namespace lumen
