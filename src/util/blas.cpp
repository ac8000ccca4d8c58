#include "lumen/util/blas.h"

#include <dlfcn.h>

#include "lumen/util/log.h"

namespace lumen {
namespace {

// cblas_sgemm's signature, with CBLAS' enum values (row-major 101, no transpose 111, transpose
// 112), which are fixed by the CBLAS standard.
using SgemmFn = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                         const float* a, int lda, const float* b, int ldb, float beta, float* c,
                         int ldc);
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

SgemmFn Sgemm() {
  static SgemmFn fn = [] {
    // OpenBLAS first (Debian's libopenblas0 in either threading flavour), then any CBLAS that
    // Debian's BLAS alternatives point at.
    for (const char* name : {"libopenblas.so.0", "libcblas.so.3", "libblas.so.3"}) {
      void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (!lib) continue;
      if (auto f = reinterpret_cast<SgemmFn>(dlsym(lib, "cblas_sgemm"))) return f;
      dlclose(lib);
    }
    log::Warn("no CBLAS library (libopenblas0): matrix products run unoptimized");
    return SgemmFn{nullptr};
  }();
  return fn;
}

}  // namespace

bool BlasLoaded() {
  return Sgemm() != nullptr;
}

void MultiplyTransposed(int m, int n, int k, const float* a, int lda, const float* b, int ldb,
                        float* c, int ldc) {
  if (SgemmFn f = Sgemm()) {
    f(kRowMajor, kNoTrans, kTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
    return;
  }
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float s = 0;
      for (int t = 0; t < k; ++t)
        s += a[size_t(i) * size_t(lda) + size_t(t)] * b[size_t(j) * size_t(ldb) + size_t(t)];
      c[size_t(i) * size_t(ldc) + size_t(j)] = s;
    }
}

}  // namespace lumen
