#include "kernels.hpp"

#include <immintrin.h>

#include <stdexcept>

namespace slide {

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,prefer-vector-width=512")
namespace k_avx512 {
#define KERNEL_NAME "avx512"
#define SLIDE_GATHER8
#include "kernels_impl.inc"
#undef SLIDE_GATHER8
#undef KERNEL_NAME
}  // namespace k_avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace k_avx2 {
#define KERNEL_NAME "avx2"
#define SLIDE_GATHER8
#include "kernels_impl.inc"
#undef SLIDE_GATHER8
#undef KERNEL_NAME
}  // namespace k_avx2
#pragma GCC pop_options

namespace k_scalar {
#define KERNEL_NAME "scalar"
#include "kernels_impl.inc"
#undef KERNEL_NAME
}  // namespace k_scalar

std::string best_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
  return "scalar";
}

const Kernels& select_kernels(const std::string& isa) {
  const std::string best = best_isa();
  const std::string want = isa == "auto" ? best : isa;
  auto rank = [](const std::string& s) { return s == "avx512" ? 2 : s == "avx2" ? 1 : s == "scalar" ? 0 : -1; };
  if (rank(want) < 0) throw std::invalid_argument("isa must be auto, avx512, avx2 or scalar, got '" + isa + "'");
  if (rank(want) > rank(best))
    throw std::invalid_argument("isa '" + want + "' requested but this CPU supports at most '" + best + "'");
  if (want == "avx512") return k_avx512::table;
  if (want == "avx2") return k_avx2::table;
  return k_scalar::table;
}

}  // namespace slide
