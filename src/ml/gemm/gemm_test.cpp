// lumen's own matrix products against a double-precision reference, for every kernel set this
// CPU runs, both precisions, and shapes with every kind of edge (one row, partial tiles and
// panels, k not a multiple of the blocks, several k and row blocks).
#include "gemm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

namespace lumen::ml::gemm {
namespace {

struct Shape {
  int64_t m, n, k;
};

std::vector<float> Random(size_t n, std::mt19937& gen, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

// Relative Frobenius error of C against A·Wᵀ + bias in doubles.
double RelError(const std::vector<float>& a, const std::vector<float>& w,
                const std::vector<float>& bias, const std::vector<float>& c, const Shape& s,
                int64_t ldc) {
  double err = 0, ref = 0;
  for (int64_t i = 0; i < s.m; ++i)
    for (int64_t j = 0; j < s.n; ++j) {
      double v = bias.empty() ? 0.0 : bias[j];
      for (int64_t kk = 0; kk < s.k; ++kk) v += double(a[i * s.k + kk]) * w[j * s.k + kk];
      const double d = c[i * ldc + j] - v;
      err += d * d;
      ref += v * v;
    }
  return std::sqrt(err / ref);
}

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> out;
  for (Isa i : {Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512, Isa::kAvx512Vnni})
    if (Supported(i)) out.push_back(i);
  return out;
}

TEST(Gemm, MatchesReferenceForEveryKernelAndShape) {
  const auto isas = SupportedIsas();
  if (isas.empty()) GTEST_SKIP() << "this CPU has no AVX2 + FMA: ggml's products run instead";
  const Shape shapes[] = {{1, 1, 1},      {1, 768, 768},  {5, 17, 3},     {13, 50, 300},
                          {197, 96, 768}, {300, 33, 513}, {7, 2304, 130}, {20, 40, 1100}};
  std::mt19937 gen(7);
  for (const Shape& s : shapes) {
    auto a = Random(size_t(s.m * s.k), gen), w = Random(size_t(s.n * s.k), gen, 0.05f),
         bias = Random(size_t(s.n), gen);
    for (Isa isa : isas)
      for (Precision p : {Precision::kF32, Precision::kInt8}) {
        for (bool with_bias : {true, false}) {
          auto mat = Matrix::Pack(w.data(), with_bias ? bias.data() : nullptr, s.n, s.k, p, isa);
          ASSERT_TRUE(mat);
          // The output has a wider row stride than n: nothing past n is written.
          const int64_t ldc = s.n + 3;
          std::vector<float> c(size_t(s.m * ldc), 12345.0f);
          // Three threads' shares, run one after another and at once, cover all of C.
          std::vector<std::thread> threads;
          for (int t = 0; t < 3; ++t)
            threads.emplace_back(
                [&, t] { mat->Multiply(a.data(), s.m, s.k, c.data(), ldc, t, 3); });
          for (auto& th : threads) th.join();
          const double err = RelError(a, w, with_bias ? bias : std::vector<float>{}, c, s, ldc);
          const double bound =
              p == Precision::kF32
                  ? 1e-5
                  : (mat->kernel().find("vnni") != std::string::npos ? 0.012 : 0.025);
          EXPECT_LT(err, bound) << mat->kernel() << " m=" << s.m << " n=" << s.n << " k=" << s.k;
          for (int64_t i = 0; i < s.m; ++i)
            for (int64_t j = s.n; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], 12345.0f);
        }
      }
  }
}

TEST(Gemm, Int8IsExactOnRepresentableValues) {
  // Values that quantize without loss (activations: integers with 127 in every block; weights:
  // 0 and +-63, the largest of either kernel's range): the i32 accumulation and the +128
  // correction must then give the exact product.
  for (Isa isa : SupportedIsas()) {
    const Shape s{9, 40, 256};
    std::vector<float> a(size_t(s.m * s.k)), w(size_t(s.n * s.k));
    for (size_t i = 0; i < a.size(); ++i) a[i] = float(int(i * 37 % 255) - 127);
    for (int64_t j = 0; j < s.n; ++j)
      for (int64_t kk = 0; kk < s.k; ++kk)
        w[j * s.k + kk] = kk % 128 == 0 ? 63.0f : 63.0f * float(int((j * 31 + kk * 7) % 3) - 1);
    auto mat = Matrix::Pack(w.data(), nullptr, s.n, s.k, Precision::kInt8, isa);
    ASSERT_TRUE(mat);
    for (int64_t i = 0; i < s.m; ++i) a[i * s.k] = 127.0f, a[i * s.k + 128] = -127.0f;
    std::vector<float> c(size_t(s.m * s.n));
    mat->Multiply(a.data(), s.m, s.k, c.data(), s.n, 0, 1);
    EXPECT_LT(RelError(a, w, {}, c, s, s.n), 1e-6) << mat->kernel();
  }
}

// Multi-head attention against doubles: several images and heads, strided q/k/v rows (as views
// of a stacked projection), more keys than one k block (kKc = 256), a head size that is not a
// multiple of any nr, causal and not, and one query against many keys (SigLIP's pooling head).
TEST(Gemm, AttentionMatchesReference) {
  struct Case {
    int64_t tq, tk, d, heads, batch;
    bool causal;
  } cases[] = {{300, 300, 40, 3, 2, false},
               {77, 77, 64, 2, 2, true},
               {1, 197, 64, 4, 3, false},
               {5, 5, 8, 1, 1, true}};
  std::mt19937 gen(3);
  for (Isa isa : SupportedIsas())
    for (const Case& t : cases) {
      const int64_t H = t.d * t.heads, row = 3 * H + 5;  // q, k, v side by side, and a gap
      auto qkv = Random(size_t(t.batch * std::max(t.tq, t.tk) * row), gen);
      const int64_t batch_stride = std::max(t.tq, t.tk) * row;
      AttentionArgs a;
      a.q = qkv.data(), a.k = qkv.data() + H, a.v = qkv.data() + 2 * H;
      a.q_row = a.k_row = a.v_row = row;
      a.q_batch = a.k_batch = a.v_batch = batch_stride;
      std::vector<float> out(size_t(t.batch * t.tq * H), 777.0f);
      a.out = out.data(), a.out_row = H, a.out_batch = t.tq * H;
      a.tq = t.tq, a.tk = t.tk, a.d = t.d, a.heads = t.heads, a.batch = t.batch;
      a.scale = 1.0f / std::sqrt(float(t.d));
      a.causal = t.causal;
      std::vector<std::thread> threads;
      for (int i = 0; i < 2; ++i) threads.emplace_back([&, i] { Attention(a, isa, i, 2); });
      for (auto& th : threads) th.join();
      double err = 0, ref = 0;
      for (int64_t b = 0; b < t.batch; ++b)
        for (int64_t h = 0; h < t.heads; ++h)
          for (int64_t i = 0; i < t.tq; ++i) {
            const float* q = a.q + b * batch_stride + i * row + h * t.d;
            const int64_t keys = t.causal ? std::min(i + 1, t.tk) : t.tk;
            std::vector<double> p(static_cast<size_t>(keys));
            double mx = -1e300, sum = 0;
            for (int64_t j = 0; j < keys; ++j) {
              const float* k = a.k + b * batch_stride + j * row + h * t.d;
              double s = 0;
              for (int64_t c = 0; c < t.d; ++c) s += double(q[c]) * k[c];
              p[j] = s * a.scale;
              mx = std::max(mx, p[j]);
            }
            for (auto& x : p) sum += (x = std::exp(x - mx));
            for (int64_t c = 0; c < t.d; ++c) {
              double o = 0;
              for (int64_t j = 0; j < keys; ++j)
                o += p[j] / sum * a.v[b * batch_stride + j * row + h * t.d + c];
              const double d = out[(b * t.tq + i) * H + h * t.d + c] - o;
              err += d * d, ref += o * o;
            }
          }
      EXPECT_LT(std::sqrt(err / ref), 1e-5) << IsaName(isa) << " tq=" << t.tq << " tk=" << t.tk
                                            << " d=" << t.d << (t.causal ? " causal" : "");
    }
}

TEST(Gemm, IsaCapFromEnvironment) {
  if (!Supported(Isa::kAvx2)) GTEST_SKIP();
  setenv("LUMEN_ISA", "avx2", 1);
  EXPECT_EQ(BestIsa(), Isa::kAvx2);
  unsetenv("LUMEN_ISA");
  EXPECT_TRUE(BestIsa().has_value());
  EXPECT_EQ(ParseIsa("avx512-vnni"), Isa::kAvx512Vnni);
  EXPECT_FALSE(ParseIsa("sse2").has_value());
}

}  // namespace
}  // namespace lumen::ml::gemm
