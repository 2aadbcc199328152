#include "kernels.hpp"

#include <immintrin.h>

#include <stdexcept>

namespace slide {

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,prefer-vector-width=512")
namespace k_avx512 {
#define KERNEL_NAME "avx512"
#define SLIDE_GATHER8
#define GEMM_COLS 32
#define GEMM_ROWS 8
#include "kernels_impl.inc"
#undef GEMM_ROWS
#undef GEMM_COLS
#undef SLIDE_GATHER8
#undef KERNEL_NAME
}  // namespace k_avx512
#pragma GCC pop_options

// AVX-512 BF16 (vdpbf16ps): the AVX-512 kernels, but dot products on bf16 rows multiply 32 bf16 pairs per
// instruction (exact products, fp32 accumulation) after rounding x to bf16 once per call.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,prefer-vector-width=512")
namespace k_avx512bf16 {
inline __mmask32 tail32(int left) { return left >= 32 ? ~0u : (1u << left) - 1u; }
inline __mmask16 tail16(int left) { return left >= 16 ? 0xffffu : left <= 0 ? 0u : static_cast<__mmask16>((1u << left) - 1u); }
inline __m512bh row_chunk(const std::uint16_t* w, int k, int n) {
  return (__m512bh)_mm512_maskz_loadu_epi16(tail32(n - k), w + k);
}

void gather_dot_bf16(const std::uint16_t* W, std::int64_t ld, const std::int32_t* ids, int m, const float* x, int n,
                     float* out) {
  constexpr int kMaxChunks = 64;  // rows of up to 2048 values; longer ones take the conversion path
  const int chunks = (n + 31) / 32;
  if (chunks > kMaxChunks) return k_avx512::table.gather_dot_bf16(W, ld, ids, m, x, n, out);
  __m512bh xb[kMaxChunks];
  for (int c = 0; c < chunks; ++c) {
    const int k = c * 32;
    const __m512 lo = _mm512_maskz_loadu_ps(tail16(n - k), x + k);
    const __m512 hi = _mm512_maskz_loadu_ps(tail16(n - k - 16), x + k + 16);
    xb[c] = _mm512_cvtne2ps_pbh(hi, lo);
  }
  auto prefetch = [&](int r) {
    if (r < m) {
      const char* p = reinterpret_cast<const char*>(W + ids[r] * ld);
      for (int o = 0; o < n * 2; o += 64) __builtin_prefetch(p + o);
    }
  };
  int i = 0;
  for (; i + 4 <= m; i += 4) {
    for (int r = i + 8; r < i + 12; ++r) prefetch(r);
    const std::uint16_t* w0 = W + ids[i] * ld;
    const std::uint16_t* w1 = W + ids[i + 1] * ld;
    const std::uint16_t* w2 = W + ids[i + 2] * ld;
    const std::uint16_t* w3 = W + ids[i + 3] * ld;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (int c = 0; c < chunks; ++c) {
      a0 = _mm512_dpbf16_ps(a0, row_chunk(w0, c * 32, n), xb[c]);
      a1 = _mm512_dpbf16_ps(a1, row_chunk(w1, c * 32, n), xb[c]);
      a2 = _mm512_dpbf16_ps(a2, row_chunk(w2, c * 32, n), xb[c]);
      a3 = _mm512_dpbf16_ps(a3, row_chunk(w3, c * 32, n), xb[c]);
    }
    out[i] = _mm512_reduce_add_ps(a0);
    out[i + 1] = _mm512_reduce_add_ps(a1);
    out[i + 2] = _mm512_reduce_add_ps(a2);
    out[i + 3] = _mm512_reduce_add_ps(a3);
  }
  for (; i < m; ++i) {
    const std::uint16_t* w = W + ids[i] * ld;
    __m512 a = _mm512_setzero_ps();
    for (int c = 0; c < chunks; ++c) a = _mm512_dpbf16_ps(a, row_chunk(w, c * 32, n), xb[c]);
    out[i] = _mm512_reduce_add_ps(a);
  }
}

// Built on first use, not at load: code in this region may use AVX-512, and a global initialised here would
// run it when the module is imported, on every CPU.
const Kernels& table() {
  static const Kernels t = [] {
    Kernels k = k_avx512::table;
    k.name = "avx512_bf16";
    k.gather_dot_bf16 = gather_dot_bf16;
    return k;
  }();
  return t;
}
}  // namespace k_avx512bf16
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace k_avx2 {
#define KERNEL_NAME "avx2"
#define SLIDE_GATHER8
#define GEMM_COLS 16
#define GEMM_ROWS 6
#include "kernels_impl.inc"
#undef GEMM_ROWS
#undef GEMM_COLS
#undef SLIDE_GATHER8
#undef KERNEL_NAME
}  // namespace k_avx2
#pragma GCC pop_options

namespace k_scalar {
#define KERNEL_NAME "scalar"
#define GEMM_COLS 16
#define GEMM_ROWS 3
#include "kernels_impl.inc"
#undef GEMM_ROWS
#undef GEMM_COLS
#undef KERNEL_NAME
}  // namespace k_scalar

std::string best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bf16"))
    return "avx512_bf16";
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
  return "scalar";
}

const Kernels& select_kernels(const std::string& isa) {
  const std::string best = best_isa();
  const std::string want = isa == "auto" ? best : isa;
  auto rank = [](const std::string& s) {
    return s == "avx512_bf16" ? 3 : s == "avx512" ? 2 : s == "avx2" ? 1 : s == "scalar" ? 0 : -1;
  };
  if (rank(want) < 0)
    throw std::invalid_argument("isa must be 'auto', 'avx512_bf16', 'avx512', 'avx2' or 'scalar', got '" + isa + "'");
  if (rank(want) > rank(best))
    throw std::invalid_argument("isa '" + want + "' requested but this CPU supports at most '" + best + "'");
  if (want == "avx512_bf16") return k_avx512bf16::table();
  if (want == "avx512") return k_avx512::table;
  if (want == "avx2") return k_avx2::table;
  return k_scalar::table;
}

}  // namespace slide
