#include "lsh.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "rng.hpp"

namespace slide {

HashKind parse_hash_kind(const std::string& s) {
  if (s == "dwta") return HashKind::Dwta;
  if (s == "srp") return HashKind::Srp;
  if (s == "kmeans") return HashKind::Kmeans;
  throw std::invalid_argument("hash must be 'dwta', 'srp' or 'kmeans', got '" + s + "'");
}

Replacement parse_replacement(const std::string& s) {
  if (s == "fifo") return Replacement::Fifo;
  if (s == "reservoir") return Replacement::Reservoir;
  throw std::invalid_argument("replacement must be 'fifo' or 'reservoir', got '" + s + "'");
}

HashFamily::HashFamily(HashKind kind, int K, int L, int dim, int range_pow, bool compat_shift, std::uint64_t seed)
    : kind_(kind), K_(K), L_(L), dim_(dim), range_pow_(range_pow) {
  if (K < 1 || L < 1 || dim < 1 || range_pow < 1 || range_pow > 30)
    throw std::invalid_argument("LSH needs K >= 1, L >= 1, 1 <= range_pow <= 30");
  if (kind == HashKind::Kmeans && (K != 1 || L != 1 || range_pow > 16))
    throw std::invalid_argument("hash 'kmeans' is one table of 2^range_pow cells: it needs K = 1, L = 1 and "
                                "range_pow <= 16, got K=" + std::to_string(K) + " L=" + std::to_string(L) +
                                " range_pow=" + std::to_string(range_pow));
  mask_ = (1u << range_pow) - 1u;
  const int nh = K * L;
  Rng rng(seed);
  if (kind == HashKind::Dwta) {
    // Bins of 8 consecutive slots over concatenated random permutations of the dims (as the original):
    // slot p*dim + j holds dim perm_p[j]; bin = slot / 8, position = slot % 8.
    constexpr int kBin = 8;
    // The original shifts each 3-bit code by floor(ln 8) = 2 bits, so codes overlap; log2 8 = 3 is correct.
    shift_ = compat_shift ? 2 : 3;
    const int permutations = (nh * kBin + dim - 1) / dim;
    std::vector<std::int32_t> slot_dim(static_cast<std::size_t>(permutations) * dim);
    std::vector<std::int32_t> perm(dim);
    for (int p = 0; p < permutations; ++p) {
      std::iota(perm.begin(), perm.end(), 0);
      for (int i = dim - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
      std::copy(perm.begin(), perm.end(), slot_dim.begin() + static_cast<std::size_t>(p) * dim);
    }
    const int groups = (nh + 7) / 8;
    bin_dims_.assign(static_cast<std::size_t>(groups) * 64, 0);  // padding bins read dim 0, results unused
    bin_pos_.assign(static_cast<std::size_t>(groups) * 64, 0);
    bin_dims_aos_.assign(static_cast<std::size_t>(nh) * kBin, 0);
    bin_pos_aos_.assign(static_cast<std::size_t>(nh) * kBin, 0);
    for (int b = 0; b < nh; ++b) {
      std::pair<int, int> e[kBin];
      for (int j = 0; j < kBin; ++j) e[j] = {slot_dim[static_cast<std::size_t>(b) * kBin + j], j};
      std::sort(e, e + kBin);  // ascending dim: the first max in dim order wins, like the original's scan
      const int g = b / 8, lane = b % 8;
      for (int j = 0; j < kBin; ++j) {
        bin_dims_[g * 64 + j * 8 + lane] = e[j].first;
        bin_pos_[g * 64 + j * 8 + lane] = e[j].second;
        bin_dims_aos_[b * kBin + j] = e[j].first;
        bin_pos_aos_[b * kBin + j] = e[j].second;
      }
    }
  } else if (kind == HashKind::Srp) {
    shift_ = 1;
    const int ntiles = (nh + kTile - 1) / kTile;
    tiles_.assign(static_cast<std::size_t>(ntiles) * dim * kTile, 0.f);  // unused columns stay zero
    for (int h = 0; h < nh; ++h)
      for (int d = 0; d < dim; ++d) tiles_[(static_cast<std::size_t>(h / kTile) * dim + d) * kTile + h % kTile] = rng.normal();
  } else {
    shift_ = 0;
    centroids_.assign(static_cast<std::size_t>(cells()) * dim, 0.f);
    tiles_.assign(static_cast<std::size_t>((cells() + kTile - 1) / kTile) * dim * kTile, 0.f);
  }
}

void HashFamily::set_centroids(const float* c) {
  if (kind_ != HashKind::Kmeans) throw std::logic_error("set_centroids: not a k-means family");
  const int C = cells();
  for (int i = 0; i < C; ++i) {
    double n2 = 0;
    for (int d = 0; d < dim_; ++d) n2 += static_cast<double>(c[static_cast<std::size_t>(i) * dim_ + d]) * c[static_cast<std::size_t>(i) * dim_ + d];
    const float inv = n2 > 0 ? static_cast<float>(1.0 / std::sqrt(n2)) : 0.f;
    for (int d = 0; d < dim_; ++d) {
      const float v = c[static_cast<std::size_t>(i) * dim_ + d] * inv;
      centroids_[static_cast<std::size_t>(i) * dim_ + d] = v;
      tiles_[(static_cast<std::size_t>(i / kTile) * dim_ + d) * kTile + i % kTile] = v;
    }
  }
}

void HashFamily::tiled_product(const Kernels& k, const std::vector<float>& tiles, int ncols, const float* P, int n,
                               float* out) const {
  const int ntiles = (ncols + kTile - 1) / kTile;
  std::vector<float> buf(static_cast<std::size_t>(n) * kTile);
  for (int t = 0; t < ntiles; ++t) {
    k.score_tile(P, dim_, n, tiles.data() + static_cast<std::size_t>(t) * dim_ * kTile, dim_, buf.data());
    const int w = std::min(kTile, ncols - t * kTile);
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < w; ++c) out[static_cast<std::size_t>(i) * ncols + t * kTile + c] = buf[i * kTile + c];
  }
}

void HashFamily::centroid_scores(const Kernels& k, const float* P, int n, float* out) const {
  tiled_product(k, tiles_, cells(), P, n, out);
}

// Combine the K hashes of each table into its bucket index: h[(t*K + j) * hstride].
void HashFamily::combine(const std::int32_t* h, std::int64_t hstride, std::uint32_t* codes, std::int64_t stride) const {
  for (int t = 0; t < L_; ++t) {
    std::uint32_t idx = 0;
    // added, not OR-ed: with the original's overlapping shift the sum is what it computes
    for (int j = 0; j < K_; ++j) idx += static_cast<std::uint32_t>(h[(t * K_ + j) * hstride]) << ((K_ - 1 - j) * shift_);
    // With K*shift > range_pow, fold the high bits in rather than dropping them.
    codes[t * stride] = (idx ^ (idx >> range_pow_)) & mask_;
  }
}

void HashFamily::bucket_codes(const Kernels& k, const float* v, std::uint32_t* codes, std::int32_t* h,
                              std::int64_t stride) const {
  if (kind_ == HashKind::Dwta) {
    k.dwta(v, bin_dims_.data(), bin_pos_.data(), (K_ * L_ + 7) / 8, h);
    combine(h, 1, codes, stride);
  } else {
    codes_rows(k, v, 1, codes, stride);
  }
}

void HashFamily::codes_rows(const Kernels& k, const float* P, int n, std::uint32_t* codes, std::int64_t stride) const {
  const int nh = K_ * L_;
  if (kind_ == HashKind::Dwta) {
    // 8 vectors side by side (dim x 8) through the gather-free kernel; the rest one by one
    std::vector<std::int32_t> h(static_cast<std::size_t>(8) * scratch_size());
    std::vector<float> Wt(static_cast<std::size_t>(dim_) * 8);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
      for (int l = 0; l < 8; ++l)
        for (int d = 0; d < dim_; ++d) Wt[d * 8 + l] = P[static_cast<std::size_t>(i + l) * dim_ + d];
      k.dwta8(Wt.data(), bin_dims_aos_.data(), bin_pos_aos_.data(), nh, h.data());  // h[b*8 + lane]
      for (int l = 0; l < 8; ++l) combine(h.data() + l, 8, codes + i + l, stride);
    }
    for (; i < n; ++i) bucket_codes(k, P + static_cast<std::size_t>(i) * dim_, codes + i, h.data(), stride);
    return;
  }
  if (kind_ == HashKind::Srp) {
    std::vector<float> z(static_cast<std::size_t>(n) * nh);
    tiled_product(k, tiles_, nh, P, n, z.data());
    std::vector<std::int32_t> bits(nh);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < nh; ++j) bits[j] = z[static_cast<std::size_t>(i) * nh + j] >= 0.f ? 1 : 0;
      combine(bits.data(), 1, codes + i, stride);
    }
    return;
  }
  // k-means: the most similar centroid (first one on ties), tile by tile: the running best of each vector, so the
  // n x cells scores are never written out (with 1024 cells, copying and rescanning them took a third of a rebuild)
  const int C = cells(), ntiles = (C + kTile - 1) / kTile;
  std::vector<float> buf(static_cast<std::size_t>(n) * kTile), best(n, -std::numeric_limits<float>::infinity());
  std::vector<std::uint32_t> arg(n, 0);
  for (int t = 0; t < ntiles; ++t) {
    k.score_tile(P, dim_, n, tiles_.data() + static_cast<std::size_t>(t) * dim_ * kTile, dim_, buf.data());
    const int w = std::min(kTile, C - t * kTile);
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < w; ++c)
        if (buf[i * kTile + c] > best[i]) {
          best[i] = buf[i * kTile + c];
          arg[i] = static_cast<std::uint32_t>(t * kTile + c);
        }
  }
  for (int i = 0; i < n; ++i) codes[i] = arg[i];
}

HashTables::HashTables(int L, int range_pow, int capacity, Replacement policy, PagePolicy pages)
    : L_(L), capacity_(capacity), nbuckets_(std::int64_t(1) << range_pow), policy_(policy), pages_(pages) {
  if (capacity < 1) throw std::invalid_argument("bucket_size must be >= 1");
  offsets_.allocate(static_cast<std::size_t>(L) * (nbuckets_ + 1), pages_);
}

void HashTables::build(const std::uint32_t* codes, std::int64_t N, const std::int32_t* order, std::uint64_t seed,
                       int threads) {
  if (N != N_ || ids_.size() == 0) {
    N_ = N;
    ids_.allocate(static_cast<std::size_t>(L_) * N, pages_);
  }
  const std::int64_t nb = nbuckets_;
#pragma omp parallel num_threads(threads)
  {
    std::vector<std::uint32_t> count(nb), seen(nb);
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < L_; ++t) {
      std::fill(count.begin(), count.end(), 0u);
      std::fill(seen.begin(), seen.end(), 0u);
      const std::uint32_t* tc = codes + static_cast<std::int64_t>(t) * N;
      for (std::int64_t i = 0; i < N; ++i) ++count[tc[i]];
      std::uint32_t* off = offsets_.data() + static_cast<std::int64_t>(t) * (nb + 1);
      off[0] = 0;
      for (std::int64_t b = 0; b < nb; ++b)
        off[b + 1] = off[b] + std::min<std::uint32_t>(count[b], static_cast<std::uint32_t>(capacity_));
      std::int32_t* ids = ids_.data() + static_cast<std::int64_t>(t) * N;
      Rng rng(mix(seed, static_cast<std::uint64_t>(t)));
      for (std::int64_t i = 0; i < N; ++i) {
        const std::int32_t n = order[i];
        const std::uint32_t b = tc[i];
        const std::uint32_t j = seen[b]++;  // this is the j-th insertion into bucket b
        const std::uint32_t cap = static_cast<std::uint32_t>(capacity_);
        if (count[b] <= cap) {
          ids[off[b] + j] = n;
        } else if (policy_ == Replacement::Fifo) {
          // ring buffer overwrite == keep the last `cap` insertions
          if (j >= count[b] - cap) ids[off[b] + (j - (count[b] - cap))] = n;
        } else {
          if (j < cap) {
            ids[off[b] + j] = n;
          } else {
            const std::uint64_t r = rng.below(j + 1);
            if (r < cap) ids[off[b] + r] = n;
          }
        }
      }
    }
  }
}

void HashTables::restore(std::int64_t N, const std::uint32_t* offsets, const std::int32_t* ids) {
  N_ = N;
  ids_.allocate(static_cast<std::size_t>(L_) * N, pages_);
  std::copy(offsets, offsets + offsets_.size(), offsets_.data());
  std::copy(ids, ids + static_cast<std::size_t>(L_) * N, ids_.data());
}

void HashTables::stats(std::int64_t* nonempty, std::int64_t* stored) const {
  *nonempty = *stored = 0;
  for (int t = 0; t < L_; ++t) {
    const std::uint32_t* off = offsets_.data() + static_cast<std::int64_t>(t) * (nbuckets_ + 1);
    for (std::int64_t b = 0; b < nbuckets_; ++b) *nonempty += off[b + 1] > off[b];
    *stored += off[nbuckets_];
  }
}

}  // namespace slide
