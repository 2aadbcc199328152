// LSH for SLIDE: hash families over a layer's input space (DWTA, SimHash/SRP) and L hash tables
// of fixed-capacity buckets holding neuron ids, rebuilt from the neurons' weight vectors.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "alloc.hpp"
#include "kernels.hpp"

namespace slide {

enum class HashKind { Dwta, Srp, Kmeans };
HashKind parse_hash_kind(const std::string& s);

// K*L hash functions over dense `dim`-vectors, combined K at a time into L bucket indices.
// - DWTA: each of the K*L bins sees 8 input dims and hashes to the position (0..7) of the largest.
// - SRP (SimHash): each of the K*L bits is the sign of a dense Gaussian projection; the projections are
//   stored as tiles of kTile columns, so the codes of a block of vectors are one small matrix product.
// - Kmeans: one table (K = L = 1) whose buckets are the 2^range_pow cells of a spherical k-means of the
//   neurons' vectors; a vector's code is its most similar centroid. A data-dependent hash: the network
//   sets and refines the centroids (set_centroids) and ranks whole cells by centroid_scores when it queries.
class HashFamily {
 public:
  HashFamily() = default;
  HashFamily(HashKind kind, int K, int L, int dim, int range_pow, bool compat_shift, std::uint64_t seed);
  // codes[t * stride] for t < L: the bucket of v in table t. scratch: at least scratch_size() ints.
  void bucket_codes(const Kernels& k, const float* v, std::uint32_t* codes, std::int32_t* scratch,
                    std::int64_t stride = 1) const;
  int scratch_size() const { return (K_ * L_ + 7) / 8 * 8; }
  // Codes of n vectors stored row by row (P: n x dim): codes[t * stride + i]. Identical to bucket_codes of
  // each row; rehashing uses it (blocked kernels: DWTA 8 vectors at a time, SRP and k-means as GEMMs).
  void codes_rows(const Kernels& k, const float* P, int n, std::uint32_t* codes, std::int64_t stride) const;
  int K() const { return K_; }
  int L() const { return L_; }
  int num_hashes() const { return K_ * L_; }
  int dim() const { return dim_; }
  HashKind kind() const { return kind_; }
  // Kmeans: number of cells, the centroids (cells x dim, unit rows), and their scores against v.
  int cells() const { return kind_ == HashKind::Kmeans ? (1 << range_pow_) : 0; }
  const std::vector<float>& centroids() const { return centroids_; }
  void set_centroids(const float* c);  // rows are normalised here; an all-zero row stays zero
  void centroid_scores(const Kernels& k, const float* P, int n, float* out) const;  // n vectors: n x cells

 private:
  // out[i * ncols + c] = P_i . column c of the tiled matrix (tiles of dim x kTile), for n rows
  void tiled_product(const Kernels& k, const std::vector<float>& tiles, int ncols, const float* P, int n,
                     float* out) const;
  void combine(const std::int32_t* h, std::int64_t hstride, std::uint32_t* codes, std::int64_t stride) const;

  HashKind kind_ = HashKind::Dwta;
  int K_ = 0, L_ = 0, dim_ = 0, range_pow_ = 0, shift_ = 0;
  std::uint32_t mask_ = 0;
  // DWTA: bins of 8 dims (from random permutations of all dims), dims sorted ascending so ties go to the
  // lowest dim, as the original. Stored in groups of 8 bins, structure of arrays (see Kernels::dwta).
  std::vector<std::int32_t> bin_dims_, bin_pos_;
  std::vector<std::int32_t> bin_dims_aos_, bin_pos_aos_;  // the same, one bin after another (Kernels::dwta8)
  // SRP: K*L Gaussian projections; k-means: the centroids. Both as tiles of kTile columns (dim x kTile each).
  std::vector<float> tiles_;
  std::vector<float> centroids_;  // k-means only: cells x dim, row-major
};

enum class Replacement { Fifo, Reservoir };
Replacement parse_replacement(const std::string& s);

// L tables x 2^range_pow buckets, each holding at most `capacity` ids, stored contiguously (CSR per
// table) instead of the original's 13M small arrays: ~0.2 GB for Amazon-670K instead of 6.7 GB.
class HashTables {
 public:
  HashTables() = default;
  HashTables(int L, int range_pow, int capacity, Replacement policy, PagePolicy pages);
  // Refill every table: codes[t*N + i] is the bucket in table t of the i-th neuron inserted, order[i].
  // FIFO keeps each bucket's last `capacity` insertions, reservoir a uniform sample of them.
  void build(const std::uint32_t* codes, std::int64_t N, const std::int32_t* order, std::uint64_t seed,
             int threads);
  const std::int32_t* bucket(int t, std::uint32_t b, int* len) const {
    const std::uint32_t* off = offsets_.data() + static_cast<std::int64_t>(t) * (nbuckets_ + 1);
    *len = static_cast<int>(off[b + 1] - off[b]);
    return ids_.data() + static_cast<std::int64_t>(t) * N_ + off[b];
  }
  int L() const { return L_; }
  std::int64_t nbuckets() const { return nbuckets_; }
  int capacity() const { return capacity_; }
  // Raw contents, for saving a network exactly as it is between rehashes.
  std::int64_t N() const { return N_; }
  const std::uint32_t* offsets() const { return offsets_.data(); }
  std::size_t offsets_size() const { return offsets_.size(); }
  const std::int32_t* ids() const { return ids_.data(); }
  void restore(std::int64_t N, const std::uint32_t* offsets, const std::int32_t* ids);
  // Occupancy statistics for tests and reports: non-empty buckets and stored ids, summed over tables.
  void stats(std::int64_t* nonempty, std::int64_t* stored) const;

 private:
  int L_ = 0, capacity_ = 0;
  std::int64_t nbuckets_ = 0, N_ = 0;
  Replacement policy_ = Replacement::Fifo;
  PagePolicy pages_ = PagePolicy::Auto;
  HugeArray<std::uint32_t> offsets_;  // L x (nbuckets+1)
  HugeArray<std::int32_t> ids_;       // L x N (each table's ids packed at its start)
};

}  // namespace slide
