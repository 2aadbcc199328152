// Hot loops, compiled three times (AVX-512, AVX2+FMA, baseline x86-64) and chosen at run time
// (faiss-style dispatch), so one portable binary runs the best code the CPU supports.
#pragma once
#include <cstdint>
#include <string>

namespace slide {

constexpr int kTile = 16;  // neurons per tile of the dense-inference micro-kernel

struct Kernels {
  const char* name;
  // a . b over n floats
  float (*dot)(const float* a, const float* b, int n);
  // y += a * x
  void (*axpy)(float* y, float a, const float* x, int n);
  // out[i] = W[ids[i]] . x   (rows of length n, row stride ld)
  void (*gather_dot)(const float* W, std::int64_t ld, const std::int32_t* ids, int m, const float* x, int n,
                     float* out);
  // y += sum_i coef[i] * W[ids[i]]
  void (*gather_axpy)(const float* W, std::int64_t ld, const std::int32_t* ids, const float* coef, int m, int n,
                      float* y);
  // y = sum_i coef[i] * W[ids[i]]: gather_axpy into a zeroed y (the same sums), without zeroing it first
  void (*gather_sum)(const float* W, std::int64_t ld, const std::int32_t* ids, const float* coef, int m, int n,
                     float* y);
  // one Adam step on n weights given their gradient g (lr_t already bias-corrected)
  void (*adam)(float* w, float* m, float* v, const float* g, int n, float lr_t, float b1, float b2, float eps);
  // adam after a row's idle steps (zero gradient), taken first in closed form and in the same pass:
  // w -= c * m / (sqrt(v) + eps), m *= d1, v *= d2 (c: the idle steps' summed step sizes, d1 = b1^idle,
  // d2 = b2^idle), then the Adam step with gradient g
  void (*adam_after_idle)(float* w, float* m, float* v, const float* g, int n, float lr_t, float b1, float b2,
                          float eps, float c, float d1, float d2);
  // gather_axpy of rows read with their owed idle Adam steps applied: y += sum_i coef[i] * (w - c[i] * m / (sqrt(v) +
  // eps)) for row ids[i] of W, whose m and v lie moff and 2 moff elements after its w (c[i] = 0: w alone)
  void (*gather_axpy_idle)(const float* W, std::int64_t ld, std::int64_t moff, const std::int32_t* ids,
                           const float* coef, const float* c, int m, int n, float eps, float* y);
  // out[s*kTile + c] = H[s] . Wt[:, c]  for s < ns; Wt is n x kTile (a transposed tile of kTile neurons)
  void (*score_tile)(const float* H, int ldh, int ns, const float* Wt, int n, float* out);
  // C = A B: A is M x K, B is K x N with N a multiple of kTile (row strides lda, ldb, ldc); score_tile is this with
  // N = kTile.
  void (*gemm)(const float* A, int lda, int M, const float* B, int ldb, int K, int N, float* C, int ldc);
  // C = A^T B for A stored K x M (row stride lda): gemm of A's transpose without transposing it (the same sums, in
  // the same order)
  void (*gemm_tn)(const float* A, int lda, int M, const float* B, int ldb, int K, int N, float* C, int ldc);
  // DWTA over bins in groups of 8 (structure of arrays: dims[g][j][lane], pos likewise): for every bin,
  // out[bin] = position (0..7) of the largest of v over its 8 dims; the first max in dim order wins.
  void (*dwta)(const float* v, const std::int32_t* dims, const std::int32_t* pos, int ngroups, std::int32_t* out);
  // DWTA of 8 vectors at once (rehashing): Wt is dim x 8 (the 8 vectors side by side), so each bin reads
  // 8 contiguous values per dim instead of gathering. Bins here are array-of-structs: dims[b*8 + j],
  // pos[b*8 + j]. out[b*8 + lane] = position for bin b, vector lane.
  void (*dwta8)(const float* Wt, const std::int32_t* dims, const std::int32_t* pos, int nbins, std::int32_t* out);
  // bfloat16 storage (precision: bf16): gather_dot / gather_axpy on rows stored as bf16, computed in fp32
  void (*gather_dot_bf16)(const std::uint16_t* W, std::int64_t ld, const std::int32_t* ids, int m, const float* x,
                          int n, float* out);
  void (*gather_axpy_bf16)(const std::uint16_t* W, std::int64_t ld, const std::int32_t* ids, const float* coef, int m,
                           int n, float* y);
  void (*gather_axpy_idle_bf16)(const std::uint16_t* W, std::int64_t ld, std::int64_t moff, const std::int32_t* ids,
                                const float* coef, const float* c, int m, int n, float eps, float* y);
  // adam_after_idle on bf16 w, m, v (c = 0, d1 = d2 = 1: no idle steps), stored with stochastic rounding whose
  // random bits are a hash of (seed, element index)
  void (*adam_bf16)(std::uint16_t* w, std::uint16_t* m, std::uint16_t* v, const float* g, int n, float lr_t, float b1,
                    float b2, float eps, float c, float d1, float d2, std::uint32_t seed);
  void (*to_bf16)(const float* x, std::uint16_t* out, int n);  // round to nearest even
  void (*from_bf16)(const std::uint16_t* x, float* out, int n);
  // out[i] = exp(z[i] - shift) (relative error ~2e-7); returns the sum (softmax)
  float (*exp_sum)(const float* z, int m, float shift, float* out);
};

// isa: "auto" (best the CPU supports), "avx512_bf16" (AVX-512 with its BF16 dot products), "avx512", "avx2" or
// "scalar". Throws if the CPU lacks it.
const Kernels& select_kernels(const std::string& isa);
// The best level the CPU supports ("avx512_bf16", "avx512", "avx2", "scalar").
std::string best_isa();

}  // namespace slide
