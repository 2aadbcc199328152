#include "network.hpp"

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "rng.hpp"

namespace slide {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
constexpr char kMagic[8] = {'S', 'L', 'I', 'D', 'E', 'N', 'E', 'T'};
constexpr int kMaxThreads = 1024;
// 2: hash tables stored; 3: checksums, fsync'd writes; 4: k-means centroids and Adam update steps stored;
// 5: crowd_step's state stored; 6: hot_neurons' list and mean hidden output stored
constexpr std::uint32_t kFormat = 6;
// Random streams (rng.hpp's mix(seed, stream, counter)): one per kind of random choice, so that changing how
// many draws one kind makes never shifts another's. Per-layer streams add the layer index.
enum Stream : std::uint64_t {
  kStreamInitWeights = 0x1000,    // + layer; counter: the weight row
  kStreamInitBias = 0x2000,       // + layer
  kStreamHashFunctions = 0x3000,  // + layer; counter: the rebuild
  kStreamNeuronOrder = 0x4000,    // + layer: the fixed permutation of neurons to storage rows (padding runs)
  kStreamProbe = 0x5000,          // active_set(): counter: the caller's salt
  kStreamBatch = 0x6000,          // counter: the step; padding and random negatives of the batch's samples
  kStreamInsertOrder = 0x7000,    // + layer; counter: the rehash; the order neurons enter the tables
  kStreamTableFill = 0x8000,      // + layer; counter: the rehash; reservoir replacement in full buckets
  kStreamInference = 0x9000,      // counter: the row; padding of sparse inference (select: union)
  kStreamCellSeeds = 0xA000,      // + layer; counter: the rebuild; the rows that seed the k-means centroids
  kStreamRounding = 0xB000,       // + layer; counter: the step; stochastic rounding of bf16 Adam updates
  kStreamNear = 0xC000,           // mixed into a sample's padding seed: its draw from the near stratum (near_share)
};
constexpr std::uint32_t kNoCell = 0xFFFFFFFFu;  // Layer::cell_of of a row in no k-means cell
constexpr int kBlock = 64;                    // rows per block when rehashing (fixed: results do not depend on threads)
constexpr std::int64_t kScoreChunk = 4096;   // inference: rows whose k-means cell scores are held at once
constexpr int kNearCells = 32;                // k-means rehash: centroids each neuron is scored against (assign_near)
constexpr int kIdleTable = 1024;              // adam_catchup: idle lengths with a precomputed step sum
constexpr int kAutoCellsPow = 8;              // k-means, range_pow auto: 256 cells
constexpr int kCrowdPending = 64;             // crowd_step: most steps of rises left pending (bounds the history)
}  // namespace

// One layer. Layer 0 reads the sparse input and stores W feature-major (n_features x size), so a sample
// touches one contiguous row per nonzero feature; every other layer stores W neuron-major (size x in_dim).
struct Network::Layer {
  int in_dim = 0, size = 0;
  bool input = false, sparse = false;
  // Parameters in one allocation, as three row-major blocks (Part): weights, Adam m, Adam v (row stride ld), in
  // fp32 (P) or, with precision bf16 on the input and output layers, in bfloat16 (Q; P stays empty).
  enum Part : int { kWeights = 0, kMoment1 = 1, kMoment2 = 2 };
  static constexpr int kParts = 3;
  bool bf16 = false;
  HugeArray<float> P;
  HugeArray<std::uint16_t> Q;
  std::int64_t ld = 0;  // row stride = cols
  std::vector<float> b, mb, vb;
  std::vector<std::int64_t> last;  // adam_catchup: the step of each row's last Adam update (rows updated sparsely)
  std::vector<std::uint8_t> own;   // crowd_step: 1 = the row has been a label or retrieved (it has its own Adam state)
  std::vector<std::int32_t> hot;   // hot_neurons: rows scoring highest on the mean hidden output, best first
  std::int64_t at(Part part, std::int64_t r) const { return (part * rows() + r) * ld; }
  float* param(Part part, std::int64_t r) { return P.data() + at(part, r); }
  const float* param(Part part, std::int64_t r) const { return P.data() + at(part, r); }
  std::uint16_t* param16(Part part, std::int64_t r) { return Q.data() + at(part, r); }
  const std::uint16_t* param16(Part part, std::int64_t r) const { return Q.data() + at(part, r); }
  float* w(std::int64_t r) { return param(kWeights, r); }  // fp32 layers only
  const float* w(std::int64_t r) const { return param(kWeights, r); }
  float* m(std::int64_t r) { return param(kMoment1, r); }
  float* v(std::int64_t r) { return param(kMoment2, r); }
  // Row r of a part as floats, in either storage: the row itself (fp32) or its conversion into buf (bf16).
  const float* row(Part part, std::int64_t r, float* buf, const Kernels& k) const {
    if (!bf16) return param(part, r);
    k.from_bf16(param16(part, r), buf, cols());
    return buf;
  }
  // Store row r of a part from floats (rounded to nearest even with bf16).
  void set_row(Part part, std::int64_t r, const float* x, const Kernels& k) {
    if (bf16) k.to_bf16(x, param16(part, r), cols());
    else std::memcpy(param(part, r), x, sizeof(float) * cols());
  }
  const float* weights_f32() const { return P.data(); }
  // out[i] = row ids[i] . x, and y += sum_i coef[i] * row ids[i] (rows of cols() values), in either storage.
  void gather_dot(const Kernels& k, const std::int32_t* ids, int m, const float* x, float* out) const {
    if (bf16) k.gather_dot_bf16(Q.data(), ld, ids, m, x, cols(), out);
    else k.gather_dot(P.data(), ld, ids, m, x, cols(), out);
  }
  // out[i] = row ids[i] . x + its bias: the exact scores of those neurons
  void scores(const Kernels& k, const std::int32_t* ids, int m, const float* x, float* out) const {
    gather_dot(k, ids, m, x, out);
    for (int i = 0; i < m; ++i) out[i] += b[ids[i]];
  }
  void gather_axpy(const Kernels& k, const std::int32_t* ids, const float* coef, int m, float* y) const {
    if (bf16) k.gather_axpy_bf16(Q.data(), ld, ids, coef, m, cols(), y);
    else k.gather_axpy(P.data(), ld, ids, coef, m, cols(), y);
  }
  // gather_axpy of rows read with owed idle Adam steps c[i] applied (adam_catchup)
  void gather_axpy_idle(const Kernels& k, const std::int32_t* ids, const float* coef, const float* c, int m, float eps,
                        float* y) const {
    if (bf16) k.gather_axpy_idle_bf16(Q.data(), ld, rows() * ld, ids, coef, c, m, cols(), eps, y);
    else k.gather_axpy_idle(P.data(), ld, rows() * ld, ids, coef, c, m, cols(), eps, y);
  }
  HashFamily hash;
  HashTables tables;
  // Sparse layers store neuron id perm[r] in row r, a fixed random permutation (the original's _randNode).
  // Padding walks the permutation from a random start, as the original does; with this layout the walk
  // reads consecutive rows, so the padded neurons stream from memory instead of costing a cache miss each.
  std::vector<std::int32_t> perm, inv;  // row -> neuron id, neuron id -> row (empty: identity)
  std::int32_t row_of(std::int32_t id) const { return inv.empty() ? id : inv[id]; }
  std::int32_t id_of(std::int32_t row) const { return perm.empty() ? row : perm[row]; }
  std::vector<std::uint32_t> cell_of;   // k-means: row -> its cell in the table (kNoCell: in none); near_share
  void index_cells() {                  // after the table is built or restored
    if (hash.kind() != HashKind::Kmeans) return;
    cell_of.assign(static_cast<std::size_t>(size), kNoCell);
    for (std::int64_t b = 0; b < tables.nbuckets(); ++b) {
      int len;
      const std::int32_t* ids = tables.bucket(0, static_cast<std::uint32_t>(b), &len);
      for (int i = 0; i < len; ++i) cell_of[ids[i]] = static_cast<std::uint32_t>(b);
    }
  }
  std::vector<std::int32_t> order;      // rehash scratch: insertion order
  std::vector<std::uint32_t> codes;     // rehash scratch: bucket codes, table-major
  // The MIPS transform of the last rehash (NetConfig::mips): mean weight row and 1 / max augmented norm.
  int hdim = 0;                         // length of the vectors the hash sees: in_dim, or in_dim + 2 with mips
  std::vector<float> wmean;
  float inv_norm = 1.f;
  bool cells_seeded = false;            // k-means: centroids exist (seeded at the first rehash)
  std::int64_t rows() const { return input ? in_dim : size; }
  int cols() const { return input ? size : in_dim; }
};

// Per-batch buffers, reused across batches.
struct Network::Workspace {
  std::int64_t batch = 0;
  std::vector<std::vector<float>> H, D;  // per hidden layer: batch x size activations / pre-activation grads
  std::vector<float> dH, dX;             // batch x width of the last hidden layer / of a dense layer's input
  std::vector<float> cell_scores;        // k-means output layer: batch x cells (cell_scores_batch)
  std::vector<float> Z, wconv;           // dense output layer: batch x size logits, then their gradient; bf16 copy
  std::vector<float> wt, yp, wpad;       // dense layers: transposed / padded operands of the matrix products
  std::vector<std::vector<std::int32_t>> active;  // output layer: active neurons per sample
  std::vector<std::vector<float>> dz;             // output layer: d loss / d logit per active neuron
  std::vector<float> loss;
  std::vector<int> has_label;
  std::vector<int> first_random;      // output layer: per sample, the index in active of its first random negative
  std::vector<float> random_weight;   // output layer: per sample, 1 / the log-Q multiplier of its random negatives
  // batch_shared: each sample's first pass, the batch's shared neurons, and how many samples picked each neuron
  std::vector<Picked> first;
  std::vector<std::int32_t> shared, picks;
  std::vector<std::int32_t> shared_pos;  // per row of the layer: its index in shared (-1: not shared)
  std::vector<std::uint64_t> shared_bit;  // per row of the layer: shared or not (a bitmap small enough to stay cached)
  std::vector<std::int32_t> shared_in_cell;  // per k-means cell: its shared members (near_share's stratum size)
  // The batch's logits of the shared rows (batch x nsp), then their gradients (each sample's row is overwritten once
  // its logits are read); the last hidden layer's output transposed (d x batch padded to a tile).
  std::vector<float> Zs, HT;
  bool sharing = false;                  // this batch's output layer has shared rows (shared_pos, shared_bit set)
  // transposition of (row id, sample, coefficient) triples for the gradient pass
  std::vector<std::int32_t> count, slot;  // per row of the layer: entries this batch; its index in touched
  std::vector<std::int32_t> touched, tsample;
  std::vector<float> tcoef;
  std::vector<std::int64_t> tstart, tfill;
  std::vector<float> idle_c;  // adam_catchup: per input entry of the batch, its row's owed idle step sum (0: none)
  struct PerThread {
    // stamps of the neurons taken by the query running now: 16 bits, so that a 200k-neuron layer's marks (400 KB)
    // stay in L2 (a selection's adds are random accesses into them); wraps clear them every 65535 queries
    std::vector<std::uint16_t> mark;
    std::uint16_t stamp = 0;
    std::vector<std::int32_t> hscratch;
    std::vector<std::uint32_t> codes;
    std::vector<float> z, g, dz;  // dz: a sample's softmax gradient at every position of its softmax
    std::vector<std::uint32_t> count;       // topk: tables that returned each neuron (valid where marked)
    std::vector<std::int32_t> cand, rank;   // topk: retrieved neurons, their ranking
    std::vector<std::uint64_t> keys;        // best_first's sort keys
    std::vector<std::uint64_t> cell_key;    // k-means: the cells' sort keys (score, then cell), best first
    std::vector<float> q;                   // MIPS query vector (DWTA / SimHash)
    std::vector<std::uint16_t> cell_mark;   // near_share: stamp of the cells in the sample's near stratum
    std::vector<std::int32_t> near_cells;   // near_share: those cells, and the running total of their members
    std::vector<std::int64_t> near_ends;
    std::vector<std::int32_t> near_at;      // near_share: a round's drawn members (offsets in the table)
    std::vector<std::int32_t> given;        // batch_shared: the sample's first pass
    std::vector<std::uint64_t> union_bits;  // batch_shared: the neurons of the samples this thread selected for
    std::int64_t n_labels = 0, n_retrieved = 0, n_random = 0;
    double t_hash = 0, t_fwd = 0, t_bwd = 0;
  };
  std::vector<PerThread> pt;
};

static float* row_ptr(std::vector<float>& m, std::int64_t row, int width) { return m.data() + row * width; }

// `auto` (0) K, L and range_pow of a sparse layer, from its size and the active-set budget (min_active).
// k-means: 2^kAutoCellsPow cells (at most half the neurons): finer cells rank better (at 10k labels and a
// budget of 1000, 16 / 64 / 256 cells retrieved 78 / 82 / 92% of the top-20), and every rehash scores each
// neuron against every centroid, so the count is capped.
// DWTA / SRP: L = 32 tables whose buckets together return about 4x the budget, ranked by select: topk.
void resolve_auto(LayerSpec& s, int min_active) {
  const double n = s.size, budget = std::max(1, std::min(min_active, s.size));
  auto clamp_pow = [](double v, int hi) { return static_cast<int>(std::clamp(std::lround(v), 1L, static_cast<long>(hi))); };
  if (s.hash == "kmeans") {
    if (!s.K) s.K = 1;
    if (!s.L) s.L = 1;
    if (!s.range_pow) s.range_pow = std::clamp(static_cast<int>(std::log2(n)) - 1, 1, kAutoCellsPow);
    return;
  }
  if (!s.L) s.L = 32;
  const double bits = std::log2(std::max(2.0, n * s.L / (4 * budget)));  // log2 of the buckets per table
  const int per_hash = s.hash == "dwta" ? 3 : 1;                         // bits one hash contributes
  if (!s.K) s.K = clamp_pow(bits / per_hash, 30);
  if (!s.range_pow) s.range_pow = std::min(30, s.K * per_hash);
}

namespace {
std::string quoted_choices(const std::vector<std::string>& choices) {  // {a, b, c} -> "'a', 'b' or 'c'"
  std::string out;
  for (std::size_t i = 0; i < choices.size(); ++i)
    out += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + ("'" + choices[i] + "'");
  return out;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void check_value(const char* name, const std::string& v, const char* choices, double, double, unsigned) {
  const std::vector<std::string> allowed = split_choices(choices);
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), v) == allowed.end())
    throw std::invalid_argument(std::string(name) + " must be " + quoted_choices(allowed) + ", got '" + v + "'");
}

void check_value(const char*, bool, const char*, double, double, unsigned) {}

template <class T>
void check_value(const char* name, T value, const char*, double lo, double hi, unsigned flags) {
  const double v = static_cast<double>(value);
  if ((flags & kNullable) && std::isnan(v)) return;
  const bool lo_ok = flags & kLoOpen ? v > lo : v >= lo, hi_ok = flags & kHiOpen ? v < hi : v <= hi;
  if (std::isfinite(v) && lo_ok && hi_ok) return;
  std::string range;
  if (hi == kInf) range = std::string(flags & kLoOpen ? "> " : ">= ") + number_text(lo);
  else range = std::string("in ") + (flags & kLoOpen ? "(" : "[") + number_text(lo) + ", " + number_text(hi) +
               (flags & kHiOpen ? ")" : "]");
  throw std::invalid_argument(std::string(name) + " must be " + range + ", got " + number_text(v));
}
}  // namespace

const std::vector<OptionInfo>& network_options() {
  static const std::vector<OptionInfo> table = {
#define SLIDE_OPTION_INFO(name, T, dflt, choices, lo, hi, flags, doc) \
  OptionInfo{#name, option_type<T>(), choices, static_cast<double>(lo), static_cast<double>(hi), flags, doc},
      SLIDE_NETWORK_OPTIONS(SLIDE_OPTION_INFO)
#undef SLIDE_OPTION_INFO
  };
  return table;
}

void check_options(const NetConfig& cfg) {
#define SLIDE_OPTION_CHECK(name, T, dflt, choices, lo, hi, flags, doc) \
  check_value(#name, cfg.name, choices, static_cast<double>(lo), static_cast<double>(hi), flags);
  SLIDE_NETWORK_OPTIONS(SLIDE_OPTION_CHECK)
#undef SLIDE_OPTION_CHECK
}

Network::Network(const NetConfig& cfg) : cfg_(cfg) {
  if (cfg.n_features < 1) throw std::invalid_argument("n_features must be >= 1");
  if (cfg.layers.size() < 2) throw std::invalid_argument("need at least one hidden layer and the output layer");
  if (cfg.threads < 0 || cfg.threads > kMaxThreads)  // OpenMP crashes on absurd counts instead of failing
    throw std::invalid_argument("threads must be in 1.." + std::to_string(kMaxThreads) + " (0: all cores), got " +
                                std::to_string(cfg.threads));
  check_options(cfg);
  k_ = &select_kernels(cfg.isa);
  pages_ = parse_page_policy(cfg.hugepages);
  const Replacement repl = parse_replacement(cfg.replacement);
  threads_ = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();

  layers_.resize(cfg.layers.size());
  std::int64_t in_dim = cfg.n_features;
  for (std::size_t l = 0; l < cfg.layers.size(); ++l) {
    const LayerSpec& s = cfg.layers[l];
    Layer& layer = layers_[l];
    if (s.size < 1) throw std::invalid_argument("layer " + std::to_string(l) + ": size must be >= 1");
    if (!(s.sparsity > 0 && s.sparsity <= 1))
      throw std::invalid_argument("layer " + std::to_string(l) + ": sparsity must be in (0, 1]");
    const bool is_output = l + 1 == cfg.layers.size();
    if (!is_output && s.sparsity < 1)
      throw std::invalid_argument("layer " + std::to_string(l) +
                                  ": LSH-sparse hidden layers are not supported; set its sparsity to 1 "
                                  "(as in every published SLIDE configuration)");
    if (in_dim > std::numeric_limits<int>::max()) throw std::invalid_argument("n_features too large");
    layer.in_dim = static_cast<int>(in_dim);
    layer.size = s.size;
    layer.input = l == 0;
    layer.sparse = s.sparsity < 1;
    layer.ld = layer.cols();
    // bf16 storage where the memory is: the input layer and the output layer (hidden-to-hidden layers are small)
    layer.bf16 = cfg.bf16() && (layer.input || is_output);
    if (layer.bf16) layer.Q.allocate(Layer::kParts * static_cast<std::size_t>(layer.rows()) * layer.ld, pages_);
    else layer.P.allocate(Layer::kParts * static_cast<std::size_t>(layer.rows()) * layer.ld, pages_);
    layer.b.assign(s.size, 0.f);
    layer.mb.assign(s.size, 0.f);
    layer.vb.assign(s.size, 0.f);
    // N(0, init_std) weights and biases as the original, from counter-based streams (thread-count independent).
    const std::int64_t rows = layer.rows();
    const int cols = layer.cols();
    const float sd = static_cast<float>(cfg.init_std), bsd = static_cast<float>(cfg.bias_std());
    const bool trunc = cfg.init_truncated;
    auto draw = [trunc](Rng& rng) {
      float z = rng.normal();
      while (trunc && std::fabs(z) > 2.f) z = rng.normal();
      return z;
    };
#pragma omp parallel num_threads(threads_)
    {
      std::vector<float> w(cols);
#pragma omp for schedule(static)
      for (std::int64_t r = 0; r < rows; ++r) {
        Rng rng(mix(cfg.seed, kStreamInitWeights + l, static_cast<std::uint64_t>(r)));
        for (int c = 0; c < cols; ++c) w[c] = sd * draw(rng);
        layer.set_row(Layer::kWeights, r, w.data(), *k_);
      }
    }
    Rng brng(mix(cfg.seed, kStreamInitBias + l));
    for (auto& v : layer.b) v = bsd * draw(brng);
    if (layer.sparse) {
      if (cfg.select == "topk" && cfg.min_active < 1)
        throw std::invalid_argument("select 'topk' needs min_active >= 1: it is the active-set budget per sample");
      LayerSpec& rs = cfg_.layers[l];
      resolve_auto(rs, cfg.min_active);
      layer.hdim = layer.in_dim + (cfg.mips ? 2 : 0);
      layer.hash = HashFamily(parse_hash_kind(rs.hash), rs.K, rs.L, layer.hdim, rs.range_pow, cfg.dwta_compat_shift,
                          mix(cfg.seed, kStreamHashFunctions + l, 0));
      // k-means cells hold every neuron assigned to them (no bucket capacity)
      layer.tables = HashTables(rs.L, rs.range_pow, layer.hash.kind() == HashKind::Kmeans ? s.size : cfg.bucket_size, repl,
                            pages_);
      layer.perm.resize(s.size);
      std::iota(layer.perm.begin(), layer.perm.end(), 0);
      Rng prng(mix(cfg.seed, kStreamNeuronOrder + l));
      for (int i = s.size - 1; i > 0; --i) std::swap(layer.perm[i], layer.perm[prng.below(i + 1)]);
      layer.inv.resize(s.size);
      for (int r = 0; r < s.size; ++r) layer.inv[layer.perm[r]] = r;
    }
    in_dim = s.size;
  }
  rehash_interval_ = static_cast<double>(cfg.rehash);
  rebuild_interval_ = static_cast<double>(cfg.rebuild);
  next_rehash_ = rehash_interval_;
  next_rebuild_ = rebuild_interval_;
  ws_ = std::make_unique<Workspace>();
  ws_->pt.resize(threads_);
  for (Layer& layer : layers_)
    if (layer.sparse) rehash_layer(layer, false);
}

Network::~Network() = default;

std::int64_t Network::n_labels() const { return layers_.back().size; }
void Network::copy_bias(int index, float* out) {
  std::lock_guard<std::mutex> lock(mu_);
  settle_crowd();
  const Layer& layer = layers_.at(index);
  for (int id = 0; id < layer.size; ++id) out[id] = layer.b[layer.row_of(id)];
}

void Network::weight_shape(int index, std::int64_t* rows, std::int64_t* cols) const {
  const Layer& layer = layers_.at(index);
  *rows = layer.rows();
  *cols = layer.cols();
}

void Network::copy_weights(int index, float* out) {
  std::lock_guard<std::mutex> lock(mu_);
  settle_crowd();
  const Layer& layer = layers_.at(index);
  std::vector<float> buf(layer.cols());
  for (std::int64_t i = 0; i < layer.rows(); ++i) {  // in neuron-id order
    const std::int64_t r = layer.input ? i : layer.row_of(static_cast<std::int32_t>(i));
    std::memcpy(out + i * layer.cols(), layer.row(Layer::kWeights, r, buf.data(), *k_), sizeof(float) * layer.cols());
  }
}

void Network::table_stats(std::int64_t* nonempty, std::int64_t* stored) const {
  *nonempty = *stored = 0;
  const Layer& o = layers_.back();
  if (o.sparse) o.tables.stats(nonempty, stored);
}

void Network::validate_batch(const Csr& x, const Csr* y) const {
  auto check = [](const Csr& m, std::int64_t limit, const char* what) {
    if (m.rows < 0) throw std::invalid_argument(std::string(what) + ": negative row count");
    if (m.indptr[0] != 0) throw std::invalid_argument(std::string(what) + ": indptr[0] must be 0");
    for (std::int64_t r = 0; r < m.rows; ++r)
      if (m.indptr[r + 1] < m.indptr[r])
        throw std::invalid_argument(std::string(what) + ": indptr must be non-decreasing (row " +
                                    std::to_string(r) + ")");
    const std::int64_t nnz = m.indptr[m.rows];
    for (std::int64_t i = 0; i < nnz; ++i) {
      if (m.indices[i] < 0 || m.indices[i] >= limit)
        throw std::invalid_argument(std::string(what) + ": index " + std::to_string(m.indices[i]) +
                                    " outside [0, " + std::to_string(limit) + ")");
      if (m.data && !std::isfinite(m.data[i]))
        throw std::invalid_argument(std::string(what) + ": non-finite value at position " + std::to_string(i));
    }
  };
  check(x, cfg_.n_features, "features");
  if (y) {
    if (y->rows != x.rows)
      throw std::invalid_argument("labels have " + std::to_string(y->rows) + " rows but features have " +
                                  std::to_string(x.rows));
    check(*y, n_labels(), "labels");
  }
}

void Network::hash_vector(const Layer& layer, std::int64_t r, float* out) const {
  const float* w = layer.row(Layer::kWeights, r, out, *k_);  // bf16: converted into out, transformed in place below
  if (!cfg_.mips) {
    if (w != out) std::memcpy(out, w, sizeof(float) * layer.in_dim);
    return;
  }
  const float s = layer.inv_norm;
  const float* mean = layer.wmean.data();
  float n2 = 0.f;
#pragma omp simd reduction(+ : n2)
  for (int c = 0; c < layer.in_dim; ++c) {
    const float v = (w[c] - mean[c]) * s;
    out[c] = v;
    n2 += v * v;
  }
  out[layer.in_dim] = layer.b[r] * s;
  n2 += out[layer.in_dim] * out[layer.in_dim];
  out[layer.in_dim + 1] = std::sqrt(std::max(0.f, 1.f - n2));
}

void Network::query_vector(const Layer& layer, const float* h, float* out) const {
  std::memcpy(out, h, sizeof(float) * layer.in_dim);
  if (cfg_.mips) {
    out[layer.in_dim] = 1.f;
    out[layer.in_dim + 1] = 0.f;
  }
}

namespace {
// A set of rows as a bitmap, 64 rows a word (batch_shared's union: 25 KB at 200k rows, so tests stay in cache).
inline void set_bit(std::uint64_t* bits, std::int64_t r) { bits[r >> 6] |= std::uint64_t{1} << (r & 63); }
inline bool has_bit(const std::uint64_t* bits, std::int64_t r) { return bits[r >> 6] >> (r & 63) & 1u; }

// A sort key that orders by score, highest first, then by the lower index: the score's bits in an order-preserving
// form, then the index's complement (-0 ties with +0, as the floats compare). Sorting these keys is several times
// faster than sorting indices by a comparator that looks their scores up.
inline std::uint64_t best_key(float score, std::uint32_t index) {
  std::uint32_t u;
  const float f = score == 0.f ? 0.f : score;
  std::memcpy(&u, &f, 4);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (static_cast<std::uint64_t>(u) << 32) | (0xFFFFFFFFu - index);
}
inline std::uint32_t key_index(std::uint64_t key) { return 0xFFFFFFFFu - static_cast<std::uint32_t>(key); }

// rank = 0 .. n-1 ordered so that its first `keep` entries index the highest z, best first (ties: the lower index);
// the rest follow in no particular order. keys: scratch.
void best_first(const float* z, std::int64_t n, std::int64_t keep, std::vector<std::int32_t>& rank,
                std::vector<std::uint64_t>& keys) {
  keys.resize(n);
  for (std::int64_t i = 0; i < n; ++i) keys[i] = best_key(z[i], static_cast<std::uint32_t>(i));
  const auto mid = keys.begin() + keep;
  if (keep < n) std::nth_element(keys.begin(), mid, keys.end(), std::greater<std::uint64_t>());
  std::sort(keys.begin(), mid, std::greater<std::uint64_t>());
  rank.resize(n);
  for (std::int64_t i = 0; i < n; ++i) rank[i] = static_cast<std::int32_t>(key_index(keys[i]));
}
}  // namespace

void Network::cell_scores_batch(const Layer& o, const float* H, std::int64_t n, std::vector<float>& out) const {
  out.clear();
  if (!o.sparse || o.hash.kind() != HashKind::Kmeans || n == 0) return;
  const int C = o.hash.cells(), D = o.hdim;
  out.resize(static_cast<std::size_t>(n) * C);
  // row blocks across threads (each element one FMA chain in k order: the same for any block or thread count)
  constexpr std::int64_t kRows = 48;
#pragma omp parallel num_threads(threads_)
  {
    std::vector<float> Q(static_cast<std::size_t>(kRows) * D);
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t r0 = 0; r0 < n; r0 += kRows) {
      const int m = static_cast<int>(std::min(kRows, n - r0));
      for (int i = 0; i < m; ++i) query_vector(o, H + (r0 + i) * o.in_dim, Q.data() + static_cast<std::size_t>(i) * D);
      o.hash.centroid_scores(*k_, Q.data(), m, out.data() + static_cast<std::size_t>(r0) * C);
    }
  }
}

Network::Picked Network::select_active(const Layer& o, const float* h, const std::int32_t* labels, int n_labels,
                           std::uint64_t rng_seed, std::vector<std::int32_t>& active, Workspace& ws, bool pad,
                           int budget_override, const std::vector<std::int32_t>* inference_hot,
                           const float* cell_scores, bool retrieval_only, const Retrieval* given,
                           const std::vector<std::int32_t>* shared) const {
  auto& t = ws.pt[omp_get_thread_num()];
  active.clear();
  if (!o.sparse) {
    active.resize(o.size);
    std::iota(active.begin(), active.end(), 0);
    return {0, 0};
  }
  if (t.mark.size() != static_cast<std::size_t>(o.size)) {
    t.mark.assign(o.size, 0);
    t.stamp = 0;
  }
  if (++t.stamp == 0) {  // wrapped: clear the marks (0 is never a live stamp)
    std::fill(t.mark.begin(), t.mark.end(), std::uint16_t{0});
    std::fill(t.cell_mark.begin(), t.cell_mark.end(), std::uint16_t{0});
    t.stamp = 1;
  }
  const std::uint16_t st = t.stamp;
  const std::uint16_t unmarked = static_cast<std::uint16_t>(st - 1);  // any value but st
  // batch_shared: the shared neurons (ws.shared) are in the sample's softmax but not in `active`, which holds its own
  // neurons that are not shared, then its random negatives; none of them is added again
  const std::uint64_t* shared_bit = shared ? ws.shared_bit.data() : nullptr;
  const int n_shared = shared ? static_cast<int>(shared->size()) : 0;
  auto taken = [&](std::int32_t id) {
    return t.mark[id] == st || (shared_bit && has_bit(shared_bit, id));
  };
  auto add = [&](std::int32_t id) {
    if (!taken(id)) {
      t.mark[id] = st;
      active.push_back(id);
    }
  };
  // Everything here is in rows (see Layer::perm). The true labels are always active.
  if (given)
    for (int i = 0; i < given->n; ++i) add(given->ids[i]);  // labels, hot and retrieved neurons of the first pass
  else
    for (int i = 0; i < n_labels; ++i) add(o.row_of(labels[i]));
  const int n_lab = given ? given->picked.labels : static_cast<int>(active.size());
  const bool topk = cfg_.select == "topk";
  const int budget = std::min(budget_override > 0 ? budget_override : cfg_.min_active, o.size);
  // topk: retrieval fills the budget less the random share (training only)
  const int n_random = pad && topk ? static_cast<int>(std::lround(cfg_.random_share * budget)) : 0;
  const int fill_to = std::max(n_lab, budget - n_random);
  int target = budget;  // where the random negatives end (batch_shared: n_random after the shared neurons)
  // batch_shared: the neurons every sample of the batch takes, after its own; the random negatives stand for the rest
  auto add_shared = [&] {
    if (shared) target = static_cast<int>(active.size()) + n_random;
  };
  const std::vector<std::int32_t>& hot = inference_hot ? *inference_hot : o.hot;
  if (topk && !hot.empty() && !given) {
    // hot_neurons: the short list scored exactly; its best quarter joins first
    const int nh = static_cast<int>(hot.size());
    t.z.resize(nh);
    o.scores(*k_, hot.data(), nh, h, t.z.data());
    // at most an eighth of the budget too (a quarter of training's retrieved half), so that small budgets stay
    // mostly the tables'; the same count with or without the random share, so training's set starts as inference's.
    // (The whole list in inference, half the budget at most, found no better top-1 and cost time.)
    const int keep = std::min({std::max(1, nh / 4), std::max(1, budget / 8),
                               std::max(0, fill_to - static_cast<int>(active.size()))});
    best_first(t.z.data(), nh, keep, t.rank, t.keys);
    for (int i = 0; i < keep; ++i) add(hot[t.rank[i]]);
  }
  std::pair<int, int> near{0, 0};  // near_share: neurons drawn from the near stratum, and the stratum's size
  if (o.hash.kind() == HashKind::Kmeans) {
    // Cells in order of their centroid's score (cell_scores_batch, given by the caller); members of the best cells
    // until the budget is full (union: the best cell only, like a single bucket).
    if (!cell_scores) throw std::logic_error("select_active: a k-means layer needs its cell scores");
    const int C = o.hash.cells();
    // Cells best first (ties: the lower cell), as sort keys (with 1024 cells, sorting cell indices by their scores
    // was the largest part of selecting a sample's active set).
    t.cell_key.resize(C);
    for (int c = 0; c < C; ++c) t.cell_key[c] = best_key(cell_scores[c], static_cast<std::uint32_t>(c));
    auto cell_at = [&](int i) { return key_index(t.cell_key[i]); };
    // rank_pool: gather more than the room, then keep the best by exact score (the cell that fills the budget
    // may hold far more neurons than fit, in no useful order)
    const int room = fill_to - n_lab;  // the hot neurons already in it are ranked with the pool
    const int limit = topk && cfg_.rank_pool > 1
                          ? static_cast<int>(std::min<double>(o.size, n_lab + std::ceil(cfg_.rank_pool * room)))
                          : fill_to;
    int sorted = 0;
    auto sort_to = [&](int i) {  // sort the next chunk of cells only when needed
      if (i < sorted) return;
      const int next = std::min(C, std::max({8, 2 * sorted, i + 1}));
      // select the chunk, then sort it (keys are distinct: the order is total)
      const auto first = t.cell_key.begin() + sorted, mid = t.cell_key.begin() + next;
      if (next < C) std::nth_element(first, mid, t.cell_key.end(), std::greater<std::uint64_t>());
      std::sort(first, mid, std::greater<std::uint64_t>());
      sorted = next;
    };
    int cell = given ? given->picked.cell : 0;  // where retrieval stopped: the next near neuron is member pos of the
    int pos = given ? given->picked.pos : 0;    // cell ranked cell
    for (; !given && cell < C && (topk ? static_cast<int>(active.size()) < limit : cell < 1); ++cell) {
      sort_to(cell);
      int len;
      const std::int32_t* ids = o.tables.bucket(0, cell_at(cell), &len);
      for (pos = 0; pos < len && (!topk || static_cast<int>(active.size()) < limit); ++pos) add(ids[pos]);
      if (pos < len) break;
      pos = 0;
    }
    const int pooled = static_cast<int>(active.size()) - n_lab;
    if (!given && limit > fill_to && pooled > room) {
      t.z.resize(pooled);
      o.scores(*k_, active.data() + n_lab, pooled, h, t.z.data());
      best_first(t.z.data(), pooled, room, t.rank, t.keys);
      t.cand.assign(active.begin() + n_lab, active.end());
      active.resize(n_lab);
      for (int i = 0; i < room; ++i) active.push_back(t.cand[t.rank[i]]);
      for (int i = room; i < pooled; ++i) t.mark[t.cand[t.rank[i]]] = unmarked;  // not chosen
    }
    if (retrieval_only) return {n_lab, static_cast<int>(active.size()) - n_lab, 0, 0, cell, pos};
    add_shared();
    // near_share: part of the random negatives comes from a stratum of its own: the cells ranked just after the
    // retrieved ones (from where retrieval stopped, whole cells until it holds near_pool times the draw). A draw
    // picks uniformly among the stratum's members not yet active; the uniform run below skips the whole stratum;
    // each stratum's log Q is set by its own size (forward pass).
    // Only where the stratum is at most a quarter of the neurons left (in a small layer it would be most of them,
    // the same as uniform, and drawing from cells costs more than the uniform run). Rounded down, so that at least
    // one uniform negative stays while near_share < 1.
    const int n_near = pad && topk && cfg_.near_share > 0 && cfg_.crowd_step == 0
                           ? static_cast<int>(cfg_.near_share * std::max(0, target - static_cast<int>(active.size())))
                           : 0;
    const double want_pool = std::ceil(cfg_.near_pool * n_near);
    if (n_near > 0 && !o.cell_of.empty() &&  // (cell_of: the table exists)
        4 * want_pool <= static_cast<double>(o.size) - static_cast<double>(active.size() + n_shared)) {
      if (t.cell_mark.size() != static_cast<std::size_t>(C)) t.cell_mark.assign(C, 0);
      t.near_cells.clear();
      t.near_ends.clear();
      std::int64_t span = 0;  // members of the stratum's cells, active ones included
      for (; cell < C && span - pos < want_pool; ++cell) {
        sort_to(cell);
        int len;
        o.tables.bucket(0, cell_at(cell), &len);
        t.cell_mark[cell_at(cell)] = st;
        t.near_cells.push_back(static_cast<std::int32_t>(cell_at(cell)));
        t.near_ends.push_back(span += len);
      }
      std::int64_t in_active = 0;  // labels, hot, retrieved and shared neurons that lie in the stratum's cells
      for (std::int32_t r : active) in_active += o.cell_of[r] != kNoCell && t.cell_mark[o.cell_of[r]] == st;
      if (shared)
        for (std::int32_t c : t.near_cells) in_active += ws.shared_in_cell[c];
      const std::int64_t pool = span - in_active;
      // when fewer neurons lie outside the stratum than the uniform run should draw, the stratum draws the rest
      const std::int64_t room = target - static_cast<std::int64_t>(active.size());
      const std::int64_t far =
          static_cast<std::int64_t>(o.size) - static_cast<std::int64_t>(active.size() + n_shared) - pool;
      int take = static_cast<int>(std::min<std::int64_t>(pool, std::max<std::int64_t>(n_near, room - far)));
      Rng rng(mix(rng_seed, kStreamNear));
      // uniform without replacement: draw members, again for those already active. Each draw is two dependent
      // cache misses (the cell's id list, then the id's mark), so a round draws all it still needs and prefetches
      // both before it looks. A small or crowded stratum (or one that is still short after a few rounds) lists
      // its members not yet active instead and draws the rest from that list.
      int k = 0;
      for (int round = 0; k < take && round < 8 && span > 8LL * take; ++round) {
        const int n = take - k;
        t.cand.resize(n);
        t.near_at.resize(n);  // the drawn members' offsets in the table's id array
        int len;
        const std::int32_t* base = o.tables.bucket(0, 0, &len);  // the id array starts with cell 0's list
        for (int i = 0; i < n; ++i) {
          const std::int64_t u = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(span)));
          const std::size_t c = static_cast<std::size_t>(
              std::upper_bound(t.near_ends.begin(), t.near_ends.end(), u) - t.near_ends.begin());
          const std::int32_t* ids = o.tables.bucket(0, static_cast<std::uint32_t>(t.near_cells[c]), &len);
          const std::int32_t* at = ids + (u - (c ? t.near_ends[c - 1] : 0));
          t.near_at[i] = static_cast<std::int32_t>(at - base);
          __builtin_prefetch(at);
        }
        for (int i = 0; i < n; ++i) {
          t.cand[i] = base[t.near_at[i]];
          __builtin_prefetch(&t.mark[t.cand[i]]);
        }
        for (int i = 0; i < n && k < take; ++i)
          if (!taken(t.cand[i])) {
            add(t.cand[i]);
            ++k;
          }
      }
      if (k < take) {
        t.cand.clear();
        for (std::int32_t c : t.near_cells) {
          int len;
          const std::int32_t* ids = o.tables.bucket(0, static_cast<std::uint32_t>(c), &len);
          for (int i = 0; i < len; ++i)
            if (!taken(ids[i])) t.cand.push_back(ids[i]);
        }
        const std::int64_t nc = static_cast<std::int64_t>(t.cand.size());
        for (std::int64_t i = 0; k < take && i < nc; ++i, ++k) {  // partial Fisher-Yates
          std::swap(t.cand[i], t.cand[i + static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(nc - i)))]);
          add(t.cand[i]);
        }
      }
      take = k;
      near = {take, static_cast<int>(pool)};
    }
  } else if (given) {
    add_shared();
  } else {
    const float* q = h;
    if (cfg_.mips) {
      t.q.resize(o.hdim);
      query_vector(o, h, t.q.data());
      q = t.q.data();
    }
    const int tables = o.hash.L();
    t.hscratch.resize(o.hash.scratch_size());
    t.codes.resize(tables);
    o.hash.bucket_codes(*k_, q, t.codes.data(), t.hscratch.data());
    if (!topk) {
      for (int tb = 0; tb < tables; ++tb) {
        int len;
        const std::int32_t* ids = o.tables.bucket(tb, t.codes[tb], &len);
        for (int i = 0; i < len; ++i) add(ids[i]);
      }
    } else {
      // Count how many tables return each neuron; keep the most frequent (first seen on ties).
      if (t.count.size() != static_cast<std::size_t>(o.size)) t.count.assign(o.size, 0u);
      for (std::int32_t r : active) t.count[r] = 0;
      t.cand.clear();
      for (int tb = 0; tb < tables; ++tb) {
        int len;
        const std::int32_t* ids = o.tables.bucket(tb, t.codes[tb], &len);
        for (int i = 0; i < len; ++i) {
          const std::int32_t r = ids[i];
          if (t.mark[r] != st) {
            t.mark[r] = st;
            t.count[r] = 1;
            t.cand.push_back(r);
          } else {
            ++t.count[r];
          }
        }
      }
      const int want = std::max(0, fill_to - static_cast<int>(active.size()));  // after the labels and hot neurons
      const int nc = static_cast<int>(t.cand.size());
      t.rank.resize(nc);
      std::iota(t.rank.begin(), t.rank.end(), 0);
      const int keep = std::min(want, nc);
      auto more = [&](std::int32_t a, std::int32_t b) {
        const std::uint32_t ca = t.count[t.cand[a]], cb = t.count[t.cand[b]];
        return ca > cb || (ca == cb && a < b);
      };
      if (keep < nc) std::partial_sort(t.rank.begin(), t.rank.begin() + keep, t.rank.end(), more);
      for (int i = 0; i < keep; ++i) active.push_back(t.cand[t.rank[i]]);
      for (int i = keep; i < nc; ++i) t.mark[t.cand[t.rank[i]]] = unmarked;  // not chosen
    }
    if (retrieval_only) return {n_lab, static_cast<int>(active.size()) - n_lab};
    add_shared();
  }
  // (counted as if the shared neurons were in `active`, between the sample's own neurons and its random ones)
  const int retrieved = static_cast<int>(active.size()) + n_shared - n_lab - near.first;
  // Random neurons: walk a fixed permutation from a random start (the original's Mode 4). union: pad to
  // min_active when fewer than pad_below were found; topk: the random share plus any shortfall.
  const std::int64_t want = topk ? target : std::min<std::int64_t>(cfg_.min_active, o.size);
  if (pad && (topk || static_cast<int>(active.size()) < cfg_.pad_below)) {
    Rng rng(rng_seed);
    std::int64_t p = static_cast<std::int64_t>(rng.below(o.size));
    const bool strata = near.second > 0;
    for (std::int64_t walked = 0; static_cast<std::int64_t>(active.size()) < want && walked < o.size; ++walked) {
      if (!strata || o.cell_of[p] == kNoCell || t.cell_mark[o.cell_of[p]] != st) add(static_cast<std::int32_t>(p));
      if (++p == o.size) p = 0;
    }
  }
  t.n_labels += n_lab;
  t.n_retrieved += retrieved;
  t.n_random += static_cast<std::int64_t>(active.size()) + n_shared - n_lab - retrieved;
  Picked picked{n_lab, retrieved, near.first, near.second};
  picked.shared = n_shared;
  return picked;
}

std::vector<std::int32_t> Network::hot_neurons(bool inference) {
  std::lock_guard<std::mutex> lock(mu_);
  settle_crowd();
  const Layer& o = layers_.back();
  std::vector<std::int32_t> ids = inference ? inference_hot() : o.hot;
  for (auto& r : ids) r = o.id_of(r);
  return ids;
}

std::vector<std::vector<std::int32_t>> Network::output_cells() const {
  std::lock_guard<std::mutex> lock(mu_);
  const Layer& o = layers_.back();
  if (!o.sparse || o.hash.kind() != HashKind::Kmeans) throw std::invalid_argument("the output layer has no k-means cells");
  std::vector<std::vector<std::int32_t>> cells(static_cast<std::size_t>(o.tables.nbuckets()));
  for (std::size_t b = 0; b < cells.size(); ++b) {
    int len;
    const std::int32_t* ids = o.tables.bucket(0, static_cast<std::uint32_t>(b), &len);
    for (int i = 0; i < len; ++i) cells[b].push_back(o.id_of(ids[i]));
  }
  return cells;
}

std::vector<std::int32_t> Network::active_set(const Csr& x, std::int64_t row, const std::int32_t* labels,
                                              int n_labels, std::uint64_t salt, bool pad) {
  std::lock_guard<std::mutex> lock(mu_);
  settle_crowd();
  validate_batch(x, nullptr);
  if (row < 0 || row >= x.rows) throw std::invalid_argument("row out of range");
  for (int i = 0; i < n_labels; ++i)
    if (labels[i] < 0 || labels[i] >= this->n_labels()) throw std::invalid_argument("label out of range");
  std::vector<std::vector<float>> h;
  hidden_batch(Csr{x.indptr + row, x.indices, x.data, 1}, h);  // the one row (indptr offsets stay absolute)
  std::vector<std::int32_t> active;
  // single-threaded call: thread slot 0
  const Layer& o = layers_.back();
  std::vector<float> cs;
  cell_scores_batch(o, h.back().data(), 1, cs);
  select_active(o, h.back().data(), labels, n_labels, mix(cfg_.seed, kStreamProbe, salt), active, *ws_, pad, 0, nullptr,
                cs.empty() ? nullptr : cs.data());
  for (auto& r : active) r = o.id_of(r);
  return active;
}

float Network::train_batch(const Csr& x, const Csr& y) {
  std::lock_guard<std::mutex> lock(mu_);
  validate_batch(x, &y);
  const std::int64_t B = x.rows;
  if (B == 0) return 0.f;
  Workspace& ws = *ws_;
  const int nh = static_cast<int>(layers_.size()) - 1;
  Layer& o = layers_.back();
  if (ws.batch < B || ws.H.size() != static_cast<std::size_t>(nh)) {
    ws.H.assign(nh, {});
    ws.D.assign(nh, {});
    for (int l = 0; l < nh; ++l) {
      ws.H[l].assign(static_cast<std::size_t>(B) * layers_[l].size, 0.f);
      ws.D[l].assign(static_cast<std::size_t>(B) * layers_[l].size, 0.f);
    }
    ws.dH.assign(static_cast<std::size_t>(B) * o.in_dim, 0.f);
    ws.active.resize(B);
    ws.dz.resize(B);
    ws.loss.resize(B);
    ws.has_label.resize(B);
    ws.first_random.resize(B);
    ws.random_weight.resize(B);
    ws.first.resize(B);
    ws.batch = B;
  }
  for (auto& t : ws.pt) t.t_hash = t.t_fwd = t.t_bwd = 0, t.n_labels = t.n_retrieved = t.n_random = 0;

  if (crowd() && step_ - crowd_settled_ >= kCrowdPending) settle_crowd();
  auto t0 = Clock::now();
  const bool catch_up = cfg_.adam_catchup && !cfg_.dense_adam;
  if (catch_up) prepare_idle_sums(step_ + 1);  // the idle steps of this batch's update (step_ + 1)
  hidden_layers(x, ws.H, catch_up);  // every hidden layer for the whole batch
  if (o.sparse && cfg_.hot_neurons > 0) {
    const int d = o.in_dim;
    hot_hsum_.resize(d, 0.0);
    for (std::int64_t s = 0; s < B; ++s)
      for (int c = 0; c < d; ++c) hot_hsum_[c] += ws.H[nh - 1][s * d + c];
    hot_hcount_ += B;
  }
  times_.forward += since(t0);
  if (o.sparse) output_sparse(x, y);  // per sample: active set, logits, softmax, gradient into ws.dH
  else output_dense(y);               // the whole batch: logits, softmax, gradient into ws.dH
  // back through the hidden layers (ReLU, then the dense layers' transposed products), batched
  t0 = Clock::now();
  for (int l = nh - 1; l >= 0; --l) {
    const Layer& layer = layers_[l];
    const float* dh = l == nh - 1 ? ws.dH.data() : ws.dX.data();
    const float* h = ws.H[l].data();
    float* d = ws.D[l].data();
    const std::int64_t n = B * layer.size;
    for (std::int64_t i = 0; i < n; ++i) d[i] = h[i] > 0.f ? dh[i] : 0.f;
    if (l > 0) {
      ws.dX.resize(static_cast<std::size_t>(B) * layer.in_dim);
      dense_backward(layer, layer.weights_f32(), d, B, ws.dX.data());
    }
  }
  times_.backward += since(t0);

  const auto t_upd = Clock::now();
  ++step_;
  for (int l = nh; l >= 0; --l) apply_adam(layers_[l], l, x);
  times_.update += since(t_upd);

  samples_ += B;
  counts_.samples += B;
  for (auto& t : ws.pt) {
    counts_.labels += t.n_labels;
    counts_.retrieved += t.n_retrieved;
    counts_.random += t.n_random;
  }
  maybe_rehash();

  double loss = 0;
  int counted = 0;
  for (std::int64_t s = 0; s < B; ++s)
    if (ws.has_label[s]) {
      loss += ws.loss[s];
      ++counted;
    }
  return counted ? static_cast<float>(loss / counted) : 0.f;
}

// Softmax cross-entropy of one sample over logits z[0..m) whose labels sit at slots[0..nl) (each with an equal
// share of the target): returns the loss and writes dz = d loss / d z, scaled by inv_b (the batch mean).
static float softmax_xent(const Kernels& k, const float* z, int m, const int* slots, int nl, float inv_b, float* dz) {
  float zmax = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < m; ++i) zmax = std::max(zmax, z[i]);
  const float zsum = k.exp_sum(z, m, zmax, dz);  // >= 1: the largest term is exp(0)
  const float log_z = zmax + std::log(zsum), scale = inv_b / zsum;
  for (int i = 0; i < m; ++i) dz[i] *= scale;
  double loss = 0;
  const float share = 1.f / static_cast<float>(nl);
  for (int i = 0; i < nl; ++i) {
    loss -= share * (z[slots[i]] - log_z);
    dz[slots[i]] -= share * inv_b;
  }
  return static_cast<float>(loss);
}

// batch_shared: every sample's labels, hot and retrieved neurons (a first pass of select_active, left in ws.active),
// and their union (ws.shared), capped at batch_shared neurons: those picked by the most samples (then the lower
// row), in row order. Each sample then takes the shared neurons after its own, so that each of them gets every
// sample's share of the softmax, as in a full softmax. The batch's retrieved sets overlap heavily (at 200k labels
// after 2 epochs, 128 samples x 500 retrieved neurons made a union of about 850), so this costs far less than it
// seems.
void Network::batch_shared(const Layer& o, const Csr& y, std::int64_t B, int C) {
  Workspace& ws = *ws_;
  const int nh = static_cast<int>(layers_.size()) - 1;
  const std::size_t words = (static_cast<std::size_t>(o.size) + 63) / 64;
  if (ws.sharing)
    for (std::int32_t r : ws.shared) ws.shared_pos[r] = -1;  // the previous batch's
  ws.shared_bit.resize(words);
  // The union as a bitmap: each thread sets the bits of the samples it selected for (its own 25 KB bitmap at 200k
  // neurons, in L1/L2), then the bitmaps are OR-ed word by word; its set bits, in order, are the union sorted by row.
  // (Counting picks per neuron on one thread was a serial pass of random increments over a 200k-entry array.)
#pragma omp parallel num_threads(threads_)
  {
    std::vector<std::uint64_t>& bits = ws.pt[omp_get_thread_num()].union_bits;
    bits.assign(words, 0);
#pragma omp for schedule(dynamic, 4)
    for (std::int64_t s = 0; s < B; ++s) {
      ws.first[s] = select_active(o, row_ptr(ws.H[nh - 1], s, o.in_dim), y.indices + y.indptr[s],
                                  static_cast<int>(y.indptr[s + 1] - y.indptr[s]), 0, ws.active[s], ws, true, 0,
                                  nullptr, ws.cell_scores.empty() ? nullptr : ws.cell_scores.data() + s * C, true);
      for (std::int32_t r : ws.active[s]) set_bit(bits.data(), r);
    }  // (implied barrier: every bitmap is complete)
    const int nt = omp_get_num_threads();  // (the bitmaps of this region's threads; any others are stale)
#pragma omp for schedule(static)
    for (std::size_t w = 0; w < words; ++w) {
      std::uint64_t u = 0;
      for (int t = 0; t < nt; ++t) u |= ws.pt[t].union_bits[w];
      ws.shared_bit[w] = u;
    }
  }
  ws.shared.clear();
  for (std::size_t w = 0; w < words; ++w)
    for (std::uint64_t u = ws.shared_bit[w]; u; u &= u - 1)
      ws.shared.push_back(static_cast<std::int32_t>(w * 64 + static_cast<std::size_t>(__builtin_ctzll(u))));
  const std::size_t cap = static_cast<std::size_t>(cfg_.batch_shared);
  if (ws.shared.size() > cap) {  // keep those picked by the most samples (then the lower row), in row order
    ws.picks.resize(o.size, 0);  // zero between batches
    for (std::int64_t s = 0; s < B; ++s)
      for (std::int32_t r : ws.active[s]) ++ws.picks[r];
    std::sort(ws.shared.begin(), ws.shared.end(), [&](std::int32_t a, std::int32_t b) {
      return ws.picks[a] > ws.picks[b] || (ws.picks[a] == ws.picks[b] && a < b);
    });
    for (std::int32_t r : ws.shared) ws.picks[r] = 0;
    ws.shared.resize(cap);
    std::sort(ws.shared.begin(), ws.shared.end());
    std::fill(ws.shared_bit.begin(), ws.shared_bit.end(), 0);
    for (std::int32_t r : ws.shared) set_bit(ws.shared_bit.data(), r);
  }
  if (!o.cell_of.empty()) {
    ws.shared_in_cell.assign(C, 0);
    for (std::int32_t r : ws.shared)
      if (o.cell_of[r] != kNoCell) ++ws.shared_in_cell[o.cell_of[r]];
  }
}

// LSH-sparse output layer, sample by sample: the active set, its logits and softmax, and the gradient of the last
// hidden layer's output (ws.dH).
void Network::output_sparse(const Csr& x, const Csr& y) {
  Workspace& ws = *ws_;
  const std::int64_t B = x.rows;
  const int nh = static_cast<int>(layers_.size()) - 1;
  const Layer& o = layers_.back();
  const float inv_b = 1.f / static_cast<float>(B);
  const std::uint64_t batch_seed = mix(cfg_.seed, kStreamBatch, static_cast<std::uint64_t>(step_));
  const bool per_sample_padding = cfg_.padding == "sample";
  const bool crowd_on = crowd();
  const auto t_cells = Clock::now();
  cell_scores_batch(o, ws.H[nh - 1].data(), B, ws.cell_scores);  // the whole batch's k-means cell scores at once
  const int C = o.hash.cells();
  times_.hash += since(t_cells);
  const auto t_region = Clock::now();
  const bool share = cfg_.batch_shared > 0 && cfg_.select == "topk";
  int nsp = 0;  // batch_shared: the shared neurons, padded to whole tiles
  if (share) {
    batch_shared(o, y, B, C);
    nsp = shared_logits(o, ws.H[nh - 1].data(), B);
  }
  ws.sharing = share;
#pragma omp parallel num_threads(threads_)
  {
    auto& t = ws.pt[omp_get_thread_num()];
    std::vector<int> slots;
#pragma omp for schedule(dynamic, 4)
    for (std::int64_t s = 0; s < B; ++s) {
      const float* hl = row_ptr(ws.H[nh - 1], s, o.in_dim);
      const std::int32_t* lab = y.indices + y.indptr[s];
      const int nl = static_cast<int>(y.indptr[s + 1] - y.indptr[s]);
      auto t1 = Clock::now();
      std::vector<std::int32_t>& act = ws.active[s];
      Retrieval first{nullptr, 0, {}};
      if (share) {
        t.given.assign(act.begin(), act.end());  // the first pass left it in act
        first = {t.given.data(), static_cast<int>(t.given.size()), ws.first[s]};
      }
      const Picked picked =
          select_active(o, hl, lab, nl, per_sample_padding ? mix(batch_seed, static_cast<std::uint64_t>(s)) : batch_seed,
                        act, ws, true, 0, nullptr, ws.cell_scores.empty() ? nullptr : ws.cell_scores.data() + s * C,
                        false, share ? &first : nullptr, share ? &ws.shared : nullptr);
      auto t2 = Clock::now();
      // The sample's softmax runs over its own neurons that are not shared (act[0, own_end)), then the batch's
      // shared neurons (batch_shared: their logits, biases included, from the batch's product in ws.Zs), then its
      // random negatives (act[own_end, end)). Softmax position i is act[i] below own_end, shared[i - own_end] below
      // first_random, act[i - ns] from there.
      const int ns = picked.shared, na = static_cast<int>(act.size()), m = na + ns;
      const int first_random = picked.labels + picked.retrieved, first_far = first_random + picked.near;
      const int own_end = first_random - ns;
      t.z.resize(m);
      o.gather_dot(*k_, act.data(), own_end, hl, t.z.data());
      o.gather_dot(*k_, act.data() + own_end, na - own_end, hl, t.z.data() + first_random);
      // topk: the random negatives stand for every neuron neither a label nor retrieved; weighting each by
      // (those neurons / random ones) makes the active softmax estimate the full one (sampled softmax's log Q).
      // near_share: the first picked.near of them stand for the near stratum alone (picked.near_pool neurons), the
      // rest for every neuron in neither.
      const float log_q_near =
          picked.near > 0 ? static_cast<float>(std::log(static_cast<double>(picked.near_pool) / picked.near)) : 0.f;
      const float log_q = cfg_.select == "topk" && m > first_far
                              ? static_cast<float>(std::log(static_cast<double>(o.size - first_random - picked.near_pool) /
                                                            (m - first_far)))
                              : 0.f;
      for (int i = 0; i < own_end; ++i) t.z[i] += o.b[act[i]];
      if (ns) std::memcpy(t.z.data() + own_end, ws.Zs.data() + s * nsp, sizeof(float) * ns);
      for (int i = first_random; i < m; ++i) t.z[i] += o.b[act[i - ns]] + (i >= first_far ? log_q : log_q_near);
      ws.first_random[s] = own_end;
      if (crowd_on) {
        // a random negative's own update takes its true share of the softmax where the batch draws each crowd row
        // less than once on average (a rare log-Q weighted spike would swamp the row's Adam state), and the log-Q
        // weighted share (an unbiased estimate of its full gradient) where it draws each one more often
        ws.random_weight[s] =
            B * static_cast<double>(m - first_random) < static_cast<double>(o.size - first_random) ? std::exp(-log_q) : 1.f;
        if (!crowd_steps_.empty() && !o.own.empty()) {  // the rises not yet applied
          crowd_pending(hl, t.g);
          for (int i = 0; i < m; ++i) {
            const std::int32_t r = i < own_end ? act[i] : i < first_random ? ws.shared[i - own_end] : act[i - ns];
            if (o.own[r] == 1) t.z[i] += t.g[risen_through(o, r) - crowd_settled_];
          }
        }
      }
      // the softmax's gradient at every position: the sample's dz (kept until the update, parallel to act) where
      // nothing is shared, else the thread's scratch (the shared part goes to ws.Zs, so that dz stays the size of
      // the active set)
      std::vector<float>& dz = ws.dz[s];
      std::vector<float>& dzall = ns ? t.dz : dz;
      dzall.resize(m);
      ws.has_label[s] = nl > 0;
      if (nl == 0) {  // no target: the sample contributes no gradient
        std::fill(dzall.begin(), dzall.end(), 0.f);
        ws.loss[s] = 0.f;
      } else {
        // a label is shared, or among the sample's own neurons (select_active adds them first, deduplicated)
        slots.resize(nl);
        for (int i = 0; i < nl; ++i) {
          const std::int32_t lbl = o.row_of(lab[i]);
          const std::int32_t pos = ns ? ws.shared_pos[lbl] : -1;
          int j = 0;
          if (pos >= 0) j = own_end + pos;
          else
            while (j < own_end && act[j] != lbl) ++j;
          slots[i] = j;
        }
        ws.loss[s] = softmax_xent(*k_, t.z.data(), m, slots.data(), nl, inv_b, dzall.data());
      }
      auto t3 = Clock::now();
      if (ns) {  // the shared neurons' part of dh (and of their gradients) is one product after the loop
        float* dzs = ws.Zs.data() + s * nsp;  // the sample's logits were read above
        std::memcpy(dzs, dzall.data() + own_end, sizeof(float) * ns);
        std::fill(dzs + ns, dzs + nsp, 0.f);
        dz.resize(na);
        std::copy_n(dzall.begin(), own_end, dz.begin());
        std::copy(dzall.begin() + first_random, dzall.end(), dz.begin() + own_end);
      }
      float* dh = row_ptr(ws.dH, s, o.in_dim);
      std::fill(dh, dh + o.in_dim, 0.f);
      o.gather_axpy(*k_, act.data(), dz.data(), na, dh);
      auto t4 = Clock::now();
      t.t_fwd += std::chrono::duration<double>(t3 - t2).count();
      t.t_hash += std::chrono::duration<double>(t2 - t1).count();
      t.t_bwd += std::chrono::duration<double>(t4 - t3).count();
    }
  }
  // Apportion the parallel region's wall time to its phases by their share of thread time.
  const double region = since(t_region);
  if (share) {
    const auto t_dh = Clock::now();
    shared_backward(o, B, nsp);
    times_.backward += since(t_dh);
  }
  double th = 0, tf = 0, tb = 0;
  for (auto& t : ws.pt) {
    th += t.t_hash;
    tf += t.t_fwd;
    tb += t.t_bwd;
  }
  const double tot = th + tf + tb;
  if (tot > 0) {
    times_.hash += region * th / tot;
    times_.forward += region * tf / tot;
    times_.backward += region * tb / tot;
  }
}

// Dense output layer (sparsity 1): the batch's logits as one matrix product, softmax per sample, and the gradient
// of the last hidden layer's output as another product (ws.dH).
void Network::output_dense(const Csr& y) {
  Workspace& ws = *ws_;
  const std::int64_t B = y.rows;
  const int nh = static_cast<int>(layers_.size()) - 1;
  const Layer& o = layers_.back();
  const int n = o.size;
  const float inv_b = 1.f / static_cast<float>(B);
  auto t0 = Clock::now();
  const float* W = dense_weights(o, ws.wconv);
  ws.Z.resize(static_cast<std::size_t>(B) * n);
  dense_forward(o, W, ws.H[nh - 1].data(), B, ws.Z.data());
  // each row of Z becomes d loss / d logits in place
#pragma omp parallel num_threads(threads_)
  {
    std::vector<int> slots;
    std::vector<float> z(n);
#pragma omp for schedule(static)
    for (std::int64_t s = 0; s < B; ++s) {
      float* zs = ws.Z.data() + s * n;
      const int nl = static_cast<int>(y.indptr[s + 1] - y.indptr[s]);
      ws.has_label[s] = nl > 0;
      if (nl == 0) {
        std::fill(zs, zs + n, 0.f);
        ws.loss[s] = 0.f;
        continue;
      }
      slots.assign(y.indices + y.indptr[s], y.indices + y.indptr[s + 1]);
      std::copy(zs, zs + n, z.begin());
      ws.loss[s] = softmax_xent(*k_, z.data(), n, slots.data(), nl, inv_b, zs);
    }
  }
  auto t1 = Clock::now();
  dense_backward(o, W, ws.Z.data(), B, ws.dH.data());
  times_.forward += std::chrono::duration<double>(t1 - t0).count();
  times_.backward += since(t1);
}

// adam_catchup: dense Adam moves an idle row every step by its momentum; sparse Adam owes it those steps and takes
// them in closed form at the row's next update. The forward pass reads each input row of the batch as it will be
// after those owed steps (the update's starting point), so the hidden layer and every gradient of the batch see the
// weights dense Adam would have. Reading them stale cost 0.002-0.003 P@1 on a 200k-label set. Writes, per entry
// [a, e) of x, its row's owed step sum (0: none). Output rows are read as they are: bringing the sampled ones up to
// date before their logits made no measurable difference.
void Network::input_idle_steps(const Csr& x, std::int64_t a, std::int64_t e, float* c) const {
  const Layer& in = layers_.front();
  for (std::int64_t i = a; i < e; ++i) {
    const std::int64_t last = in.last[x.indices[i]];  // 0: never updated (m = v = 0)
    c[i - a] = last > 0 && last < step_ ? idle_step(step_ - last).c : 0.f;
  }
}

// Every hidden layer for the batch: the input layer row by row (a sparse row times the feature-major weights; with
// catch_up, each row read with its owed idle steps applied), then each dense hidden layer as one matrix product;
// ReLU. The rows are dealt out a few at a time, since their lengths differ (in two fixed halves one thread waited
// for the other), and each row's owed steps are worked out by the thread that reads it.
void Network::hidden_layers(const Csr& x, std::vector<std::vector<float>>& H, bool catch_up) const {
  const int nh = static_cast<int>(layers_.size()) - 1;
  const std::int64_t n = x.rows;
  const Layer& L0 = layers_[0];
  const float eps = static_cast<float>(cfg_.eps);
  catch_up = catch_up && !L0.last.empty();  // (empty until the first update: nothing owed)
  std::vector<float>& idle_c = ws_->idle_c;
  if (catch_up) idle_c.resize(x.indptr[n]);
#pragma omp parallel for num_threads(threads_) schedule(dynamic, 4)
  for (std::int64_t s = 0; s < n; ++s) {
    float* h0 = row_ptr(H[0], s, L0.size);
    const std::int64_t a = x.indptr[s], e = x.indptr[s + 1];
    std::memcpy(h0, L0.b.data(), sizeof(float) * L0.size);
    if (catch_up) {
      input_idle_steps(x, a, e, idle_c.data() + a);
      L0.gather_axpy_idle(*k_, x.indices + a, x.data + a, idle_c.data() + a, static_cast<int>(e - a), eps, h0);
    } else {
      L0.gather_axpy(*k_, x.indices + a, x.data + a, static_cast<int>(e - a), h0);
    }
    for (int j = 0; j < L0.size; ++j) h0[j] = std::max(h0[j], 0.f);
  }
  for (int l = 1; l < nh; ++l) {
    const Layer& layer = layers_[l];
    float* h = H[l].data();
    dense_forward(layer, layer.weights_f32(), H[l - 1].data(), n, h);
    for (std::int64_t i = 0; i < n * layer.size; ++i) h[i] = std::max(h[i], 0.f);
  }
}

// A dense layer's weights as one fp32 matrix (row stride ld): the parameters, or for a bf16 layer a copy in buf.
const float* Network::dense_weights(const Layer& layer, std::vector<float>& buf) const {
  if (!layer.bf16) return layer.weights_f32();
  buf.resize(static_cast<std::size_t>(layer.rows()) * layer.ld);
#pragma omp parallel for num_threads(threads_) schedule(static)
  for (std::int64_t r = 0; r < layer.rows(); ++r) k_->from_bf16(layer.param16(Layer::kWeights, r), buf.data() + r * layer.ld, layer.cols());
  return buf.data();
}

namespace {
int round_up(int n, int to) { return (n + to - 1) / to * to; }

// M (rows x cols, row stride ld) with its columns padded with zeros to a multiple of kTile (the gemm kernel's
// unit): M itself when they already are, else a copy in buf. Returns the matrix and its row stride.
std::pair<const float*, int> padded_cols(const float* M, std::int64_t rows, int cols, std::int64_t ld,
                                         std::vector<float>& buf) {
  const int cp = round_up(cols, kTile);
  if (cp == cols) return {M, static_cast<int>(ld)};
  buf.assign(static_cast<std::size_t>(rows) * cp, 0.f);
  for (std::int64_t r = 0; r < rows; ++r) std::copy(M + r * ld, M + r * ld + cols, buf.begin() + r * cp);
  return {buf.data(), cp};
}
}  // namespace

// Y (B x size) = X (B x in_dim) W^T + b for a neuron-major layer: W transposed once (in_dim x size, padded to
// kTile columns), then one product, split by column blocks across threads.
void Network::dense_forward(const Layer& layer, const float* W, const float* X, std::int64_t B, float* Y) const {
  const int d = layer.in_dim, n = layer.size, np = round_up(n, kTile);
  Workspace& ws = *ws_;
  ws.wt.assign(static_cast<std::size_t>(d) * np, 0.f);
  ws.yp.resize(static_cast<std::size_t>(B) * np);
  float* Wt = ws.wt.data();
  float* Yp = ws.yp.data();
  constexpr int kCols = 4 * kTile;  // columns per task
  const int tasks = (np + kCols - 1) / kCols;
#pragma omp parallel num_threads(threads_)
  {
#pragma omp for schedule(static)
    for (int j = 0; j < n; ++j)
      for (int k = 0; k < d; ++k) Wt[static_cast<std::int64_t>(k) * np + j] = W[j * layer.ld + k];
#pragma omp for schedule(static)
    for (int t = 0; t < tasks; ++t) {
      const int c0 = t * kCols, w = std::min(kCols, np - c0);
      k_->gemm(X, d, static_cast<int>(B), Wt + c0, np, d, w, Yp + c0, np);
      for (std::int64_t s = 0; s < B; ++s)
        for (int c = c0; c < std::min(c0 + w, n); ++c) Y[s * n + c] = Yp[s * np + c] + layer.b[c];
    }
  }
}

// dX (B x in_dim) = D (B x size) W, split by blocks of 8 samples across threads.
void Network::dense_backward(const Layer& layer, const float* W, const float* D, std::int64_t B, float* dX) const {
  const int d = layer.in_dim, n = layer.size, dp = round_up(d, kTile);
  Workspace& ws = *ws_;
  const auto [Wp, ldw] = padded_cols(W, n, d, layer.ld, ws.wpad);
  if (dp != d) ws.yp.resize(static_cast<std::size_t>(B) * dp);
  float* out = dp == d ? dX : ws.yp.data();
  const std::int64_t blocks = (B + 7) / 8;
#pragma omp parallel for num_threads(threads_) schedule(static)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t s0 = blk * 8;
    const int rows = static_cast<int>(std::min<std::int64_t>(8, B - s0));
    k_->gemm(D + s0 * n, n, rows, Wp, ldw, n, dp, out + s0 * dp, dp);
    if (dp != d)
      for (std::int64_t s = s0; s < s0 + rows; ++s) std::copy(out + s * dp, out + s * dp + d, dX + s * d);
  }
}

// batch_shared: the three products over the shared neurons run by chunks of kSharedChunk of them, so that a chunk of
// their gathered weights (or of their logit gradients) stays in cache while every sample of the batch uses it. Every
// element is still one sum in a fixed order, whatever the thread count. The weights are gathered a chunk at a time
// where a product needs them and the gradients formed a chunk at a time where Adam takes them, so that the union's
// size (tens of thousands of neurons in the first batches) costs no memory beyond its logits.
constexpr int kSharedChunk = 256;

// The fp32 weights of the shared neurons rows[0, kk) as rows of dp floats, zero-padded.
static void gather_rows(const Kernels& k, const Network::Layer& o, const std::int32_t* rows, int kk, int dp, float* out) {
  const int d = o.cols();
  for (int j = 0; j < kk; ++j) {
    float* wj = out + static_cast<std::size_t>(j) * dp;
    const float* w = o.row(Network::Layer::kWeights, rows[j], wj, k);  // bf16: converted into wj
    if (w != wj) std::memcpy(wj, w, sizeof(float) * d);
    std::fill(wj + d, wj + dp, 0.f);
  }
}

// Resizes a per-batch buffer whose contents are all rewritten: when it must grow, the old block is freed before
// the new one is taken (a vector's own growth copies, holding both at once at the peak); when it is four times too
// large (the union of the first batches is tens of times that of later ones), it is given back.
static void resize_for_overwrite(std::vector<float>& v, std::size_t n) {
  if (n > v.capacity() || v.capacity() > 4 * n + (std::size_t(1) << 18)) std::vector<float>().swap(v);
  v.resize(n);
}

// batch_shared: the shared neurons' logits for the whole batch, ws.Zs (B x nsp) = H W_S^T + b_S, with W_S their
// weights; ws.shared_pos maps each shared row to its column. Each chunk is its gathered rows of W_S times H^T (d x Bp,
// ws.HT), transposed into Zs. Returns nsp, the shared count padded to whole tiles.
int Network::shared_logits(const Layer& o, const float* H, std::int64_t B) {
  Workspace& ws = *ws_;
  const int d = o.in_dim, dp = round_up(d, kTile), n = static_cast<int>(ws.shared.size()), np = round_up(n, kTile);
  const int Bp = round_up(static_cast<int>(B), kTile);
  if (ws.shared_pos.size() != static_cast<std::size_t>(o.size)) ws.shared_pos.assign(o.size, -1);
  resize_for_overwrite(ws.Zs, static_cast<std::size_t>(B) * np);
  ws.HT.resize(static_cast<std::size_t>(d) * Bp);
  const int chunks = (n + kSharedChunk - 1) / kSharedChunk;
#pragma omp parallel num_threads(threads_)
  {
#pragma omp for schedule(static) nowait
    for (int j = 0; j < n; ++j) ws.shared_pos[ws.shared[j]] = j;
#pragma omp for schedule(static)
    for (int k = 0; k < d; ++k) {
      float* row = ws.HT.data() + static_cast<std::size_t>(k) * Bp;
      for (std::int64_t s = 0; s < B; ++s) row[s] = H[s * d + k];
      std::fill(row + B, row + Bp, 0.f);
    }
    std::vector<float> W(static_cast<std::size_t>(kSharedChunk) * dp);  // a chunk's weights
    std::vector<float> T(static_cast<std::size_t>(kSharedChunk) * Bp);  // its logits, chunk x Bp
    std::vector<float> bias(kSharedChunk);                               // its neurons' biases
#pragma omp for schedule(dynamic, 1)
    for (int c = 0; c < chunks; ++c) {
      const int k0 = c * kSharedChunk, kk = std::min(kSharedChunk, n - k0);
      gather_rows(*k_, o, ws.shared.data() + k0, kk, dp, W.data());
      k_->gemm(W.data(), dp, kk, ws.HT.data(), Bp, d, Bp, T.data(), Bp);
      for (int j = 0; j < kk; ++j) bias[j] = o.b[ws.shared[k0 + j]];
      for (std::int64_t s = 0; s < B; ++s) {
        float* z = ws.Zs.data() + s * np + k0;
        for (int j = 0; j < kk; ++j) z[j] = T[static_cast<std::size_t>(j) * Bp + s] + bias[j];
      }
    }
#pragma omp for schedule(static)
    for (std::int64_t s = 0; s < B; ++s) std::fill(ws.Zs.data() + s * np + n, ws.Zs.data() + (s + 1) * np, 0.f);
  }
  return np;
}

// batch_shared: the shared neurons' part of the last hidden layer's gradient, dH += dZs W_S (dZs: their logits'
// gradients, written over ws.Zs), by groups of 32 samples; each thread gathers a chunk of W_S once for all its groups,
// and every sample adds the chunks' products in chunk order.
void Network::shared_backward(const Layer& o, std::int64_t B, int nsp) {
  Workspace& ws = *ws_;
  const int d = o.in_dim, dp = round_up(d, kTile), n = static_cast<int>(ws.shared.size());
  constexpr int kGroup = 32;
  const std::int64_t groups = (B + kGroup - 1) / kGroup;
#pragma omp parallel num_threads(threads_)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const std::int64_t g0 = groups * t / nt, g1 = groups * (t + 1) / nt;  // this thread's groups
    std::vector<float> out(static_cast<std::size_t>(kGroup) * dp), W;
    if (g0 < g1) W.resize(static_cast<std::size_t>(kSharedChunk) * dp);
    for (int k0 = 0; k0 < n && g0 < g1; k0 += kSharedChunk) {
      const int kk = std::min(kSharedChunk, n - k0);
      gather_rows(*k_, o, ws.shared.data() + k0, kk, dp, W.data());
      for (std::int64_t g = g0; g < g1; ++g) {
        const std::int64_t s0 = g * kGroup;
        const int rows = static_cast<int>(std::min<std::int64_t>(kGroup, B - s0));
        k_->gemm(ws.Zs.data() + s0 * nsp + k0, nsp, rows, W.data(), dp, kk, dp, out.data(), dp);
        for (int r = 0; r < rows; ++r) k_->axpy(ws.dH.data() + (s0 + r) * d, 1.f, out.data() + r * dp, d);
      }
    }
  }
}

// The bias gradients of the rows whose logit gradients are the M columns of A (K samples x M, row stride lda; the
// A of gemm_tn): out[r] = sum over the samples of A[k][r], in sample order, as every other gradient sum.
static void column_sums(const float* A, int lda, int M, std::int64_t K, float* out) {
  std::fill(out, out + M, 0.f);
  for (std::int64_t k = 0; k < K; ++k)
    for (int r = 0; r < M; ++r) out[r] += A[k * lda + r];
}

// Gradient and Adam step of every row of a dense layer: G = D^T X (row j's gradient sum_s D[s][j] X[s]; bias
// gradient sum_s D[s][j]), in blocks of kTile rows split across threads.
void Network::dense_update(Layer& layer, int li, const float* D, const float* X, std::int64_t B) {
  const int d = layer.in_dim, n = layer.size, dp = round_up(d, kTile);
  Workspace& ws = *ws_;
  const float lr_t = static_cast<float>(adam_lr(step_));
  const auto [Xp, ldx] = padded_cols(X, B, d, d, ws.wpad);
  const std::int64_t blocks = (n + kTile - 1) / kTile;
#pragma omp parallel num_threads(threads_)
  {
    std::vector<float> G(static_cast<std::size_t>(kTile) * dp), gb(kTile);
#pragma omp for schedule(static)
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      const std::int64_t j0 = blk * kTile;
      const int w = static_cast<int>(std::min<std::int64_t>(kTile, n - j0));
      k_->gemm_tn(D + j0, n, w, Xp, ldx, static_cast<int>(B), dp, G.data(), dp);
      column_sums(D + j0, n, w, B, gb.data());
      for (int r = 0; r < w; ++r) adam_row(layer, li, j0 + r, G.data() + static_cast<std::size_t>(r) * dp, gb[r], 0, lr_t);
    }
  }
}

// Gradients are formed here, row by row, from the per-sample coefficients (no gradient buffers, no
// atomics, a fixed summation order: deterministic for any thread count), then Adam updates each row.
// Only rows that the batch touched are updated unless dense_adam reproduces the original's full sweep.
void Network::apply_adam(Layer& layer, int li, const Csr& x) {
  Workspace& ws = *ws_;
  const std::int64_t B = x.rows;
  const int nh = static_cast<int>(layers_.size()) - 1;
  const float b1 = static_cast<float>(cfg_.beta1), b2 = static_cast<float>(cfg_.beta2);
  const float eps = static_cast<float>(cfg_.eps);
  const float lr_t = static_cast<float>(adam_lr(step_));
  const int cols = layer.cols();

  if (!layer.input && !layer.sparse) {  // dense hidden or output layer: every row, gradients by matrix products
    const float* D = li < nh ? ws.D[li].data() : ws.Z.data();
    dense_update(layer, li, D, ws.H[li - 1].data(), B);
    return;
  }

  // Transpose the batch's (row, sample, coefficient) triples to row-major order by counting sort.
  // Output layer: rows are active neurons, coefficients dz, sample vectors H_last.
  // Input layer: rows are input features, coefficients the feature values, sample vectors D_0.
  // In parallel by row range: every thread reads all triples in sample order and counts and places only those of
  // its own rows, so each row's entries stay in sample order (the same for any thread count) and the random
  // accesses to the per-row arrays are split between the threads.
  const std::int64_t nrows = layer.rows();
  const bool crowd = !layer.input && this->crowd();
  // batch_shared: the shared rows have no entries here (they are not in act); their gradients are products over
  // the batch, formed a chunk at a time in the update below
  const bool sharing = !layer.input && ws.sharing;
  ws.count.resize(nrows);
  if (ws.slot.size() != static_cast<std::size_t>(nrows)) ws.slot.assign(nrows, -1);
  auto for_each_triple = [&](auto&& fn) {
    if (layer.input) {
      for (std::int64_t s = 0; s < B; ++s)
        for (std::int64_t i = x.indptr[s]; i < x.indptr[s + 1]; ++i) fn(x.indices[i], s, x.data[i]);
    } else {
      for (std::int64_t s = 0; s < B; ++s) {
        const auto& act = ws.active[s];
        const auto& dz = ws.dz[s];
        if (!ws.has_label[s]) continue;
        // crowd_step: a random negative's own gradient is its true share of the softmax, not the log-Q weighted
        // one that stands for the whole crowd in the softmax and the hidden layer's gradient (the crowd's step
        // covers the rest)
        // (batch_shared: the shared rows are not in act)
        const std::size_t fr = crowd ? static_cast<std::size_t>(ws.first_random[s]) : act.size();
        const float rw = ws.random_weight[s];
        for (std::size_t i = 0; i < act.size(); ++i) fn(act[i], s, i < fr ? dz[i] : dz[i] * rw);
      }
    }
  };
  // per thread (from index 1): touched rows and entries of its range, then their prefix sums
  std::vector<std::int64_t> nt_rows(threads_ + 1, 0), nt_entries(threads_ + 1, 0);
  ws.tfill.resize(nrows);
#pragma omp parallel num_threads(threads_)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const std::int64_t lo = nrows * t / nt, hi = nrows * (t + 1) / nt;
    std::fill(ws.count.begin() + lo, ws.count.begin() + hi, 0);
    std::int64_t entries = 0, rows = 0;
    for_each_triple([&](std::int32_t r, std::int64_t, float) {
      if (r >= lo && r < hi) {
        ++ws.count[r];
        ++entries;
      }
    });
    for (std::int64_t r = lo; r < hi; ++r) rows += ws.count[r] != 0;
    nt_rows[t + 1] = rows;
    nt_entries[t + 1] = entries;
#pragma omp barrier
#pragma omp single
    {
      for (int u = 0; u < nt; ++u) {
        nt_rows[u + 1] += nt_rows[u];
        nt_entries[u + 1] += nt_entries[u];
      }
      ws.touched.resize(nt_rows[nt]);
      ws.tstart.resize(nt_rows[nt] + 1);
      ws.tstart[nt_rows[nt]] = nt_entries[nt];
      ws.tsample.resize(nt_entries[nt]);
      ws.tcoef.resize(nt_entries[nt]);
    }  // (implied barrier)
    // touched rows in increasing order: the update then walks memory forwards (hardware prefetch helps)
    std::int64_t i = nt_rows[t], acc = nt_entries[t];
    for (std::int64_t r = lo; r < hi; ++r) {
      if (!ws.count[r]) continue;
      ws.touched[i] = static_cast<std::int32_t>(r);
      ws.tstart[i] = acc;
      ws.slot[r] = static_cast<std::int32_t>(i);
      ws.tfill[r] = acc;  // where the row's next entry goes
      acc += ws.count[r];
      ++i;
    }
    for_each_triple([&](std::int32_t r, std::int64_t s, float c) {
      if (r >= lo && r < hi) {
        const std::int64_t pos = ws.tfill[r]++;
        ws.tsample[pos] = static_cast<std::int32_t>(s);
        ws.tcoef[pos] = c;
      }
    });
  }
  const std::vector<float>& V = layer.input ? ws.D[0] : ws.H[nh - 1];  // per-sample vectors of length cols
  const bool catchup = cfg_.adam_catchup && !cfg_.dense_adam;
  if ((catchup || crowd) && layer.last.empty()) layer.last.assign(nrows, 0);
  const std::int64_t ntouched = static_cast<std::int64_t>(ws.touched.size());
  // crowd_step: the crowd's step this batch; rows that are labels or retrieved join the rows with their own state
  // (2: joined in this batch); a row that is only a random negative and has never joined is not updated
  if (crowd) {
    crowd_step();
    if (layer.own.empty()) layer.own.assign(nrows, 0);
    for (std::int64_t s = 0; s < B; ++s)
      if (ws.has_label[s])
        for (int i = 0; i < ws.first_random[s]; ++i) {
          std::uint8_t& f = layer.own[ws.active[s][i]];
          if (!f) f = 2;
        }
    if (sharing)
      for (std::int32_t r : ws.shared)
        if (!layer.own[r]) layer.own[r] = 2;
  }
  // batch_shared: the shared rows' gradients G = dZs^T H (dZs: ws.Zs, B x nsp) and their column sums; each row's
  // sums run over the samples in order, as the other rows' do
  const int nshared = sharing ? static_cast<int>(ws.shared.size()) : 0, dp = round_up(cols, kTile);
  const int nsp = round_up(nshared, kTile), shared_chunks = (nshared + kSharedChunk - 1) / kSharedChunk;
  const auto [Hp, ldh] = sharing ? padded_cols(V.data(), B, cols, cols, ws.wpad) : std::pair<const float*, int>{};
#pragma omp parallel num_threads(threads_)
  {
    std::vector<float> g(crowd ? 3 * cols + 1 : cols);  // crowd_step: gradient, then rise_row's scratch
    // Adam step of row r with gradient gr and bias gradient gb
    auto step_row = [&](std::int64_t r, const float* gr, float gb) {
      if (crowd) {
        if (!layer.own[r]) return;  // in the crowd: it moves with it, which is no move relative to it
        // relative to the crowd, a row with its own state rises by every crowd step since its last update
        const std::int64_t since = layer.own[r] == 2 ? step_ - 1 : risen_through(layer, r);
        layer.own[r] = 1;
        rise_row(layer, r, since, g.data() + cols);  // g has room: cols, then cols + 1 + cols
      }
      adam_row(layer, li, r, gr, gb, catchup ? step_ - 1 - layer.last[r] : 0, lr_t);
      if (catchup || crowd) layer.last[r] = step_;
    };
    // gradient of row r from its slot's (sample, coefficient) entries (none: zero gradient), then Adam
    auto update = [&](std::int64_t r, std::int64_t slot) {
      float gb = 0;
      if (slot >= 0) {
        const std::int64_t e0 = ws.tstart[slot], ne = ws.tstart[slot + 1] - e0;
        k_->gather_sum(V.data(), cols, ws.tsample.data() + e0, ws.tcoef.data() + e0, static_cast<int>(ne), cols,
                       g.data());
        for (std::int64_t e = e0; e < e0 + ne; ++e) gb += ws.tcoef[e];
      } else {
        std::fill(g.begin(), g.begin() + cols, 0.f);
      }
      step_row(r, g.data(), gb);
    };
    if (sharing) {
      std::vector<float> G(static_cast<std::size_t>(kSharedChunk) * dp), gbs(kSharedChunk);
#pragma omp for schedule(dynamic, 1) nowait
      for (int c = 0; c < shared_chunks; ++c) {
        const int k0 = c * kSharedChunk, kk = std::min(kSharedChunk, nshared - k0);
        column_sums(ws.Zs.data() + k0, nsp, kk, B, gbs.data());
        k_->gemm_tn(ws.Zs.data() + k0, nsp, kk, Hp, ldh, static_cast<int>(B), dp, G.data(), dp);
        for (int j = 0; j < kk; ++j) step_row(ws.shared[k0 + j], G.data() + static_cast<std::size_t>(j) * dp, gbs[j]);
      }
    }
    if (!cfg_.dense_adam) {
#pragma omp for schedule(dynamic, 64)
      for (std::int64_t i = 0; i < ntouched; ++i) {
        if (i + 2 < ntouched) {
          const std::int64_t nr = ws.touched[i + 2];
          const std::int64_t bytes = layer.ld * (layer.bf16 ? 2 : 4);
          for (const Layer::Part part : {Layer::kWeights, Layer::kMoment1, Layer::kMoment2}) {
            const char* p = layer.bf16 ? reinterpret_cast<const char*>(layer.param16(part, nr))
                                   : reinterpret_cast<const char*>(layer.param(part, nr));
            for (std::int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 1);
          }
          if (!layer.input) {  // the row's bias and its Adam moments: three more random reads otherwise
            __builtin_prefetch(&layer.b[nr], 1);
            __builtin_prefetch(&layer.mb[nr], 1);
            __builtin_prefetch(&layer.vb[nr], 1);
          }
          if (catchup || crowd) __builtin_prefetch(&layer.last[nr], 1);
        }
        update(ws.touched[i], i);
      }
    } else {
      // the original: every weight gets an Adam step each batch, zero gradient where untouched
#pragma omp for schedule(static)
      for (std::int64_t r = 0; r < nrows; ++r) {
        if (sharing && has_bit(ws.shared_bit.data(), r)) continue;  // updated above
        const std::int32_t sl = ws.slot[r];  // a row is touched iff touched[slot[r]] == r (slot may be stale)
        update(r, sl >= 0 && sl < ntouched && ws.touched[sl] == r ? sl : -1);
      }
    }
  }
  if (layer.input) {  // input-layer biases: dense, gradient = sum of D_0 over the batch
    std::vector<float> gb(layer.size, 0.f);
    for (std::int64_t s = 0; s < B; ++s) k_->axpy(gb.data(), 1.f, ws.D[0].data() + s * layer.size, layer.size);
    k_->adam(layer.b.data(), layer.mb.data(), layer.vb.data(), gb.data(), layer.size, lr_t, b1, b2, eps);
  }
}

bool Network::crowd() const {
  return cfg_.crowd_step > 0 && !cfg_.dense_adam && layers_.back().sparse;
}

const float* Network::crowd_at(std::int64_t step) const {
  return crowd_steps_.data() + (step - crowd_settled_) * (layers_.back().in_dim + 1);
}

// crowd_step: full softmax gives every output neuron an Adam step each batch. Those outside the active sets (the
// crowd) have gradients nearly proportional to one vector, the batch's last hidden outputs weighted by the crowd's
// share of each sample's softmax (its random negatives estimate it), and Adam's step does not depend on that
// scale: one state, that of the mean crowd neuron, stands for all of them. Softmax is unchanged when every neuron
// moves alike, so the crowd stays put and the rows with their own state rise by (a share of) its step instead.
// Appends the cumulative step through this step to crowd_steps_.
void Network::crowd_step() {
  Workspace& ws = *ws_;
  const Layer& o = layers_.back();
  const int nh = static_cast<int>(layers_.size()) - 1;
  const int cols = o.in_dim, cw = cols + 1;
  if (crowd_m_.empty()) {
    crowd_m_.assign(cw, 0.f);
    crowd_v_.assign(cw, 0.f);
  }
  if (crowd_steps_.empty()) {  // nothing pending: the cumulative step starts at zero
    crowd_settled_ = step_ - 1;
    crowd_steps_.assign(cw, 0.f);
  }
  std::vector<float> g(cw, 0.f);
  for (std::int64_t s = 0; s < ws.batch; ++s) {
    if (!ws.has_label[s]) continue;
    const auto& dz = ws.dz[s];
    const int fr = ws.first_random[s], m = static_cast<int>(dz.size());
    if (m <= fr) continue;
    double mass = 0;  // the crowd's share of the sample's softmax, times 1 / batch
    for (int i = fr; i < m; ++i) mass += dz[i];
    const std::int64_t crowd = o.size - fr - (ws.sharing ? static_cast<std::int64_t>(ws.shared.size()) : 0);
    const float a = static_cast<float>(mass / static_cast<double>(crowd));  // per crowd neuron
    k_->axpy(g.data(), a, ws.H[nh - 1].data() + s * cols, cols);
    g[cols] += a;
  }
  const float b1 = static_cast<float>(cfg_.beta1), b2 = static_cast<float>(cfg_.beta2);
  const float eps = static_cast<float>(cfg_.eps);
  const float lr_t = static_cast<float>(cfg_.crowd_step * adam_lr(step_));
  const std::size_t base = crowd_steps_.size();
  crowd_steps_.resize(base + cw);
  const float* prev = crowd_steps_.data() + base - cw;
  float* cur = crowd_steps_.data() + base;
  for (int d = 0; d < cw; ++d) {
    crowd_m_[d] = b1 * crowd_m_[d] + (1 - b1) * g[d];
    crowd_v_[d] = b2 * crowd_v_[d] + (1 - b2) * g[d] * g[d];
    cur[d] = prev[d] + lr_t * crowd_m_[d] / (std::sqrt(crowd_v_[d]) + eps);
  }
}

// The pending rises' contribution to the logits of a sample with last hidden output h: out[k] for the rows last
// risen through step crowd_settled_ + k (so the forward pass sees the weights the model has).
void Network::crowd_pending(const float* h, std::vector<float>& out) const {
  const int cols = layers_.back().in_dim;
  const std::int64_t n = step_ - crowd_settled_;
  out.assign(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)) + 1, 0.f);
  if (n <= 0) return;
  const float* c1 = crowd_at(step_);
  for (std::int64_t k = 0; k < n; ++k) {
    const float* c0 = crowd_at(crowd_settled_ + k);
    float z = c1[cols] - c0[cols];
    for (int d = 0; d < cols; ++d) z += (c1[d] - c0[d]) * h[d];
    out[k] = z;
  }
}

// The step through which a row with its own state has risen (its last update, or the last settle).
std::int64_t Network::risen_through(const Layer& o, std::int64_t r) const { return std::max(o.last[r], crowd_settled_); }

// Row r of the output layer rises by the crowd's steps after step `since` through this one (weights and bias).
// scratch: 2 * in_dim + 1 floats.
void Network::rise_row(Layer& o, std::int64_t r, std::int64_t since, float* scratch) {
  const int cols = o.in_dim;
  const float* c1 = crowd_at(step_);
  const float* c0 = crowd_at(since);
  float* rise = scratch;
  for (int d = 0; d <= cols; ++d) rise[d] = c1[d] - c0[d];
  if (o.bf16) {
    float* buf = scratch + cols + 1;
    const float* wr = o.row(Layer::kWeights, r, buf, *k_);
    if (wr != buf) std::copy(wr, wr + cols, buf);
    k_->axpy(buf, 1.f, rise, cols);
    o.set_row(Layer::kWeights, r, buf, *k_);
  } else {
    k_->axpy(o.w(r), 1.f, rise, cols);
  }
  o.b[r] += rise[cols];
}

void Network::settle_crowd() {
  if (crowd_steps_.empty()) return;
  Layer& o = layers_.back();
  if (crowd_settled_ < step_ && !o.own.empty()) {
#pragma omp parallel num_threads(threads_)
    {
      std::vector<float> scratch(2 * o.in_dim + 1);
#pragma omp for schedule(static)
      for (std::int64_t r = 0; r < o.size; ++r)
        if (o.own[r] == 1 && risen_through(o, r) < step_) rise_row(o, r, risen_through(o, r), scratch.data());
    }
  }
  crowd_settled_ = step_;
  crowd_steps_.assign(o.in_dim + 1, 0.f);  // only differences matter: restart the cumulative step at zero
}

// Adam step of row r (and its bias, except on the input layer) with gradient g, gb, after `idle` steps without an
// update (adam_catchup; 0 = none): fp32, or bf16 with stochastic rounding.
void Network::adam_row(Layer& layer, int li, std::int64_t r, const float* g, float gb, std::int64_t idle, float lr_t) {
  const float b1 = static_cast<float>(cfg_.beta1), b2 = static_cast<float>(cfg_.beta2);
  const float eps = static_cast<float>(cfg_.eps);
  const int cols = layer.cols();
  const IdleStep is = idle > 0 ? idle_step(idle) : IdleStep{0.f, 1.f, 1.f};
  if (layer.bf16) {
    // stochastic rounding's random bits: a pure function of (seed, step, row), as every random choice here
    const auto seed = static_cast<std::uint32_t>(mix(cfg_.seed, kStreamRounding + li, static_cast<std::uint64_t>(step_)) ^
                                                 (static_cast<std::uint64_t>(r) * 0x9e3779b97f4a7c15ull >> 32));
    k_->adam_bf16(layer.param16(Layer::kWeights, r), layer.param16(Layer::kMoment1, r), layer.param16(Layer::kMoment2, r), g,
                  cols, lr_t, b1, b2, eps, is.c, is.d1, is.d2, seed);
  } else if (idle > 0) {
    k_->adam_after_idle(layer.w(r), layer.m(r), layer.v(r), g, cols, lr_t, b1, b2, eps, is.c, is.d1, is.d2);
  } else {
    k_->adam(layer.w(r), layer.m(r), layer.v(r), g, cols, lr_t, b1, b2, eps);
  }
  if (layer.input) return;  // the input layer's biases are dense: updated once for the batch (apply_adam)
  if (idle > 0) k_->adam_after_idle(&layer.b[r], &layer.mb[r], &layer.vb[r], &gb, 1, lr_t, b1, b2, eps, is.c, is.d1, is.d2);
  else k_->adam(&layer.b[r], &layer.mb[r], &layer.vb[r], &gb, 1, lr_t, b1, b2, eps);
}

// Adam's bias-corrected step size at step s (>= 1). Tabulated (two pow() per step were a measurable share of a
// small network's batch): the table grows with the steps until the bias corrections have converged, after which
// every step size is the last entry.
double Network::adam_lr(std::int64_t s) const {
  if (s < static_cast<std::int64_t>(lr_table_.size())) return lr_table_[s];
  if (lr_converged_) return lr_table_.back();
  for (std::int64_t t = static_cast<std::int64_t>(lr_table_.size()); t <= s; ++t) {
    const double d = static_cast<double>(t);
    lr_table_.push_back(t == 0 ? 0.0 : cfg_.lr * std::sqrt(1 - std::pow(cfg_.beta2, d)) / (1 - std::pow(cfg_.beta1, d)));
    if (t > 1 && std::pow(cfg_.beta2, d) < 1e-12 && std::pow(cfg_.beta1, d) < 1e-12) {
      lr_converged_ = true;
      return lr_table_.back();
    }
  }
  return lr_table_[s];
}

// With zero gradients, Adam's step i after a row's last update moves it by lr_i * ratio^i * m / sqrt(v), with
// ratio = beta1 / sqrt(beta2) (eps neglected). idle_sums_[k] = sum over the k idle steps before step `now`
// (steps now-k .. now-1) of lr_s * ratio^(s - last): S_k = ratio * (lr_(now-k) + S_(k-1)), S_0 = 0.
void Network::prepare_idle_sums(std::int64_t now) {
  const double ratio = cfg_.beta1 / std::sqrt(cfg_.beta2);
  idle_now_ = now;
  idle_sums_.assign(kIdleTable, 0.0);
  for (int k = 1; k < kIdleTable && k < now; ++k) idle_sums_[k] = ratio * (adam_lr(now - k) + idle_sums_[k - 1]);
  if (idle_decay1_.empty()) {  // beta^k: the same for every step
    idle_decay1_.resize(kIdleTable);
    idle_decay2_.resize(kIdleTable);
    for (int k = 0; k < kIdleTable; ++k) {
      idle_decay1_[k] = static_cast<float>(std::pow(cfg_.beta1, k));
      idle_decay2_[k] = static_cast<float>(std::pow(cfg_.beta2, k));
    }
  }
}

Network::IdleStep Network::idle_step(std::int64_t idle) const {
  if (idle < kIdleTable) return {static_cast<float>(idle_sums_[idle]), idle_decay1_[idle], idle_decay2_[idle]};
  const double k = static_cast<double>(idle);
  return {static_cast<float>(idle_step_sum(idle)), static_cast<float>(std::pow(cfg_.beta1, k)),
          static_cast<float>(std::pow(cfg_.beta2, k))};
}

double Network::idle_step_sum(std::int64_t idle) const {
  if (idle < kIdleTable) return idle_sums_[idle];
  // Idle longer than the table: the terms right after the last update dominate (ratio^300 ~ 1e-14). Once the
  // bias corrections have converged (beta2^s < 1e-9) every lr_s is cfg.lr: a geometric series.
  const double ratio = cfg_.beta1 / std::sqrt(cfg_.beta2);
  const std::int64_t last = idle_now_ - 1 - idle;
  if (std::pow(cfg_.beta2, static_cast<double>(last + 1)) < 1e-9) return cfg_.lr * ratio / (1 - ratio);
  double sum = 0, w = 1;
  for (std::int64_t i = 1; i <= 300; ++i) sum += adam_lr(last + i) * (w *= ratio);
  return sum;
}

void Network::maybe_rehash() {
  const bool rebuild = samples_ >= next_rebuild_;
  const bool rehash = rebuild || samples_ >= next_rehash_;
  if (!rehash) return;
  const double growth = cfg_.schedule == "exponential" ? cfg_.schedule_growth : 1.0;
  // The paper's schedule: each interval is `growth` times the previous one; the shipped code's is fixed.
  while (next_rehash_ <= samples_) {
    rehash_interval_ *= growth;
    next_rehash_ += rehash_interval_;
  }
  if (rebuild)
    while (next_rebuild_ <= samples_) {
      rebuild_interval_ *= growth;
      next_rebuild_ += rebuild_interval_;
    }
  const auto t0 = Clock::now();
  settle_crowd();
  for (Layer& layer : layers_)
    if (layer.sparse) rehash_layer(layer, rebuild);
  if (layers_.back().sparse && cfg_.hot_neurons > 0 && hot_hcount_ > 0) choose_hot(layers_.back());
  times_.rehash += since(t0);
}

// hot_neurons: the rows scoring highest on the mean last hidden output since the last choice. Early in training
// every sample's best-scoring neurons are the same few frequent labels, spread over many k-means cells whose
// centroids hide them; scoring this short list exactly finds them for every sample.
void Network::choose_hot(Layer& o) {
  o.hot = best_on_mean(o, hot_hsum_, hot_hcount_);
  std::fill(hot_hsum_.begin(), hot_hsum_.end(), 0.0);
  hot_hcount_ = 0;
}

// Sparse inference's hot list. Late in training the list goes stale between rehashes: the frequent labels' rows,
// which outscore the rest for many rows, take large Adam steps every few batches (at 100k labels after 10 epochs,
// 46 batches after its choice the list shared 117 of 256 neurons with the best on the mean hidden output by the
// current weights). Inference ranks the neurons again on the mean hidden output accumulated since the last choice,
// once per step it is asked at (there, with uniformly seeded cells, the rows whose top-1 was retrieved went from
// 90.6 to 93.6%, sparse P@1 from 0.299 to 0.304). Training's list is left alone, so evaluating does not change
// what training does.
const std::vector<std::int32_t>& Network::inference_hot() {
  const Layer& o = layers_.back();
  // chosen at this step, off, or unused (select: union ignores the list)
  if (hot_hcount_ == 0 || o.hot.empty() || cfg_.select != "topk") return o.hot;
  if (hot_inference_step_ != step_) {
    hot_inference_ = best_on_mean(o, hot_hsum_, hot_hcount_);
    hot_inference_step_ = step_;
  }
  return hot_inference_;
}

// The hot_neurons rows scoring highest on the mean hidden output hsum / count, best first.
std::vector<std::int32_t> Network::best_on_mean(const Layer& o, const std::vector<double>& hsum,
                                                std::int64_t count) const {
  const int d = o.in_dim;
  std::vector<float> hm(d);
  for (int c = 0; c < d; ++c) hm[c] = static_cast<float>(hsum[c] / static_cast<double>(count));
  const std::int64_t N = o.size;
  std::vector<float> z(N);
  constexpr std::int64_t kChunk = 1024;
#pragma omp parallel num_threads(threads_)
  {
    std::vector<std::int32_t> ids(kChunk);
#pragma omp for schedule(static)
    for (std::int64_t c0 = 0; c0 < N; c0 += kChunk) {
      const int n = static_cast<int>(std::min(kChunk, N - c0));
      for (int i = 0; i < n; ++i) ids[i] = static_cast<std::int32_t>(c0 + i);
      o.scores(*k_, ids.data(), n, hm.data(), z.data() + c0);
    }
  }
  const std::int64_t n_hot = std::min<std::int64_t>(cfg_.hot_neurons, N);
  std::vector<std::int32_t> rank;
  std::vector<std::uint64_t> keys;
  best_first(z.data(), N, n_hot, rank, keys);
  rank.resize(n_hot);
  return rank;
}

void Network::rehash_layer(Layer& layer, bool new_functions) {
  const std::size_t li = static_cast<std::size_t>(&layer - layers_.data());
  const LayerSpec& s = cfg_.layers[li];
  const bool kmeans = layer.hash.kind() == HashKind::Kmeans;
  if (new_functions) {
    ++rebuild_count_;
    if (!kmeans)
      layer.hash = HashFamily(parse_hash_kind(s.hash), s.K, s.L, layer.hdim, s.range_pow, cfg_.dwta_compat_shift,
                          mix(cfg_.seed, kStreamHashFunctions + li, static_cast<std::uint64_t>(rebuild_count_)));
  }
  const std::int64_t N = layer.size;
  if (cfg_.mips) {
    // Mean weight row (blocks summed in a fixed order: the same for any thread count) and the largest norm.
    const int d = layer.in_dim;
    const std::int64_t nblk = (N + 1023) / 1024;
    std::vector<double> part(static_cast<std::size_t>(nblk) * d, 0.0);
#pragma omp parallel num_threads(threads_)
    {
      std::vector<float> buf(d);
#pragma omp for schedule(static)
      for (std::int64_t blk = 0; blk < nblk; ++blk)
        for (std::int64_t r = blk * 1024; r < std::min(N, (blk + 1) * 1024); ++r) {
          const float* w = layer.row(Layer::kWeights, r, buf.data(), *k_);
          for (int c = 0; c < d; ++c) part[blk * d + c] += w[c];
        }
    }
    layer.wmean.assign(d, 0.f);
    for (int c = 0; c < d; ++c) {
      double sum = 0;
      for (std::int64_t blk = 0; blk < nblk; ++blk) sum += part[blk * d + c];
      layer.wmean[c] = static_cast<float>(sum / static_cast<double>(N));
    }
    double max2 = 0;
#pragma omp parallel num_threads(threads_) reduction(max : max2)
    {
      std::vector<float> buf(d);
#pragma omp for schedule(static)
      for (std::int64_t r = 0; r < N; ++r) {
        const float* w = layer.row(Layer::kWeights, r, buf.data(), *k_);
        double n2 = static_cast<double>(layer.b[r]) * layer.b[r];
        for (int c = 0; c < d; ++c) n2 += static_cast<double>(w[c] - layer.wmean[c]) * (w[c] - layer.wmean[c]);
        max2 = std::max(max2, n2);
      }
    }
    layer.inv_norm = max2 > 0 ? static_cast<float>(1.0 / (std::sqrt(max2) * (1 + 1e-6))) : 1.f;
  }
  const bool reseed = kmeans && (new_functions || !layer.cells_seeded);
  if (kmeans) refine_cells(layer, reseed ? 3 : 1, reseed);
  // Insert in a fresh random order each time, so FIFO buckets keep a random subset, not the highest ids.
  std::vector<std::int32_t>& order = layer.order;
  order.resize(N);
  std::iota(order.begin(), order.end(), 0);
  Rng rng(mix(cfg_.seed, kStreamInsertOrder + li, static_cast<std::uint64_t>(rehash_count_)));
  for (std::int64_t i = N - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
  // codes are table-major, in insertion order, so each table's build streams through them
  const int nt = layer.hash.L();
  layer.codes.resize(static_cast<std::size_t>(N) * nt);
  // hashed in row order (the weights stream from memory; in insertion order every row was a cache miss), then
  // each table's codes are put in insertion order
  std::vector<std::uint32_t> by_row(static_cast<std::size_t>(N) * nt);
  // the cells seeded at construction are from the untrained weights: until the first rebuild, trained neurons move
  // far from them, and every centroid is scored (restricting them then cost sparse P@1 at 10k labels)
  if (kmeans && !reseed && rebuild_count_ > 0 && layer.hash.cells() > kNearCells && !layer.cell_of.empty())
    assign_near(layer, by_row.data());
  else
    hash_rows(layer, by_row.data());
#pragma omp parallel for num_threads(threads_) schedule(static)
  for (std::int64_t i = 0; i < N; ++i)
    for (int t = 0; t < nt; ++t) layer.codes[t * N + i] = by_row[t * N + order[i]];
  layer.tables.build(layer.codes.data(), N, order.data(), mix(cfg_.seed, kStreamTableFill + li, rehash_count_), threads_);
  layer.index_cells();
  ++rehash_count_;
}

void Network::hash_rows(const Layer& layer, std::uint32_t* codes) const {
  const std::int64_t N = layer.size, blocks = (N + kBlock - 1) / kBlock;
  const int D = layer.hdim;
#pragma omp parallel num_threads(threads_)
  {
    std::vector<float> P(static_cast<std::size_t>(kBlock) * D);
#pragma omp for schedule(static)
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      const std::int64_t i0 = blk * kBlock;
      const int n = static_cast<int>(std::min<std::int64_t>(kBlock, N - i0));
      for (int i = 0; i < n; ++i) hash_vector(layer, i0 + i, P.data() + static_cast<std::size_t>(i) * D);
      layer.hash.codes_rows(*k_, P.data(), n, codes + i0, N);
    }
  }
}

// Between rebuilds a neuron moves little from one rehash to the next, and so do the centroids (one update from
// their members), so its most similar centroid is among the kNearCells centroids most similar to its current
// cell's. Scoring those instead of every centroid makes the rehash's assignment pass cells / kNearCells times
// cheaper (8x at 256 cells, 32x at 1024). Rebuilds re-seed the centroids and score every one. Each neuron's code
// depends only on its own vector and cell, so the result is the same for any thread count.
void Network::assign_near(const Layer& layer, std::uint32_t* codes) const {
  const int C = layer.hash.cells(), D = layer.hdim, T = std::min(C, kNearCells);
  const std::int64_t N = layer.size;
  const float* cent = layer.hash.centroids().data();
  // each cell's neighbours: itself first, then the most similar centroids (ties: the lower cell)
  std::vector<std::int32_t> near(static_cast<std::size_t>(C) * T);
#pragma omp parallel num_threads(threads_)
  {
    std::vector<float> sim(C);
    std::vector<std::int32_t> idx(C);
#pragma omp for schedule(static)
    for (int c = 0; c < C; ++c) {
      for (int j = 0; j < C; ++j) sim[j] = j == c ? std::numeric_limits<float>::infinity()
                                                 : k_->dot(cent + static_cast<std::size_t>(c) * D,
                                                           cent + static_cast<std::size_t>(j) * D, D);
      std::iota(idx.begin(), idx.end(), 0);
      std::partial_sort(idx.begin(), idx.begin() + T, idx.end(),
                        [&](std::int32_t a, std::int32_t b) { return sim[a] > sim[b] || (sim[a] == sim[b] && a < b); });
      std::copy_n(idx.begin(), T, near.begin() + static_cast<std::ptrdiff_t>(c) * T);
    }
  }
#pragma omp parallel num_threads(threads_)
  {
    std::vector<float> v(D), z(T);
#pragma omp for schedule(static, kBlock)
    for (std::int64_t r = 0; r < N; ++r) {
      hash_vector(layer, r, v.data());
      const std::uint32_t cur = layer.cell_of[r];
      if (cur == kNoCell) {  // in no cell (not expected with k-means): every centroid
        layer.hash.codes_rows(*k_, v.data(), 1, codes + r, N);
        continue;
      }
      const std::int32_t* ids = near.data() + static_cast<std::size_t>(cur) * T;
      k_->gather_dot(cent, D, ids, T, v.data(), D, z.data());
      int best = 0;
      for (int j = 1; j < T; ++j)
        if (z[j] > z[best] || (z[j] == z[best] && ids[j] < ids[best])) best = j;
      codes[r] = static_cast<std::uint32_t>(ids[best]);
    }
  }
}

// k-means++ seeds (D^2 sampling by angular distance) among a random sample of 16 neurons per cell. Once some
// labels have been trained, their neurons stand far out from the mass of neurons that have barely moved from
// their initialisation (most of them, in a large layer). Seeds drawn uniformly are nearly all from that mass, so
// the trained neurons crowd into a few cells, or sit as stray members of cells of untrained ones, whose centroids
// hide them. At 100k labels after 10 epochs (2000 candidates) the top-20 recall went from 0.81 to 0.93 with these
// seeds, sparse P@1 from 0.299 to 0.311 (dense 0.340 / 0.341). The sample keeps the cost small (16 C^2 dot
// products; seeding from the whole layer found no better cells). More cells than neurons: the extra cells keep a
// zero centroid and stay empty.
void Network::seed_cells(const Layer& layer, float* cent) const {
  const std::size_t li = static_cast<std::size_t>(&layer - layers_.data());
  const int C = layer.hash.cells(), D = layer.hdim;
  const std::int64_t N = layer.size;
  Rng rng(mix(cfg_.seed, kStreamCellSeeds + li, static_cast<std::uint64_t>(rebuild_count_)));
  const std::int64_t m = std::min<std::int64_t>(N, 16 * static_cast<std::int64_t>(C));
  std::vector<std::int32_t> pick(N);
  std::iota(pick.begin(), pick.end(), 0);
  std::vector<float> V(static_cast<std::size_t>(m) * D);
  for (std::int64_t i = 0; i < m; ++i) {  // the sample: distinct random neurons, as unit vectors
    std::swap(pick[i], pick[i + rng.below(N - i)]);
    float* v = V.data() + i * D;
    hash_vector(layer, pick[i], v);
    const float n2 = k_->dot(v, v, D);
    if (n2 > 0.f)
      for (int c = 0; c < D; ++c) v[c] /= std::sqrt(n2);
  }
  const int k = static_cast<int>(std::min<std::int64_t>(C, m));
  std::vector<double> dist(m, std::numeric_limits<double>::infinity());  // to the nearest seed so far: 1 - cos
  std::int64_t chosen = 0;  // the first seed: the sample's first neuron (a random one)
  for (int s = 0; s < k; ++s) {
    if (s > 0) {
      double total = 0;
      for (std::int64_t i = 0; i < m; ++i) total += dist[i] * dist[i];
      if (total > 0) {  // D^2 sampling; the seeds so far have distance 0 and are not drawn again
        double u = rng.uniform() * total;
        chosen = m - 1;
        for (std::int64_t i = 0; i < m; ++i)
          if ((u -= dist[i] * dist[i]) < 0) {
            chosen = i;
            break;
          }
      } else {
        chosen = s;  // every sampled vector coincides with a seed: any other will do
      }
    }
    const float* c = V.data() + chosen * D;
    std::copy_n(c, D, cent + static_cast<std::size_t>(s) * D);
    for (std::int64_t i = 0; i < m; ++i)
      dist[i] = std::min(dist[i], std::max(0.0, 1.0 - static_cast<double>(k_->dot(V.data() + i * D, c, D))));
  }
}

// Spherical k-means of the neurons' hash vectors. reseed: seed the centroids (seed_cells), then `iterations`
// rounds of assign + update; otherwise `iterations` updates from the cells' current members (the last rehash's
// assignment, today's weights), so a regular rehash costs one assignment pass.
void Network::refine_cells(Layer& layer, int iterations, bool reseed) {
  const int C = layer.hash.cells(), D = layer.hdim;
  const std::int64_t N = layer.size;
  std::vector<float> cent(static_cast<std::size_t>(C) * D, 0.f);
  if (reseed) {
    seed_cells(layer, cent.data());
    layer.hash.set_centroids(cent.data());
    layer.cells_seeded = true;
  }
  // Each cell's centroid: the mean direction of its members. The rows stream in order (reading them cell by cell
  // was a cache miss per row), summed in kParts fixed row ranges, then the ranges in order: the same sums for any
  // thread count.
  auto update = [&] {
    std::vector<std::int32_t> cell_of(N, -1);
    for (int cell = 0; cell < C; ++cell) {
      int len;
      const std::int32_t* ids = layer.tables.bucket(0, static_cast<std::uint32_t>(cell), &len);
      for (int j = 0; j < len; ++j) cell_of[ids[j]] = cell;
    }
    constexpr int kParts = 8;
    std::vector<double> part(static_cast<std::size_t>(kParts) * C * D, 0.0);
    std::vector<std::int64_t> members(static_cast<std::size_t>(kParts) * C, 0);
#pragma omp parallel num_threads(threads_)
    {
      std::vector<float> v(D);
#pragma omp for schedule(static)
      for (int pi = 0; pi < kParts; ++pi)
        for (std::int64_t r = N * pi / kParts; r < N * (pi + 1) / kParts; ++r) {
          const std::int32_t cell = cell_of[r];
          if (cell < 0) continue;
          hash_vector(layer, r, v.data());
          double* sum = part.data() + (static_cast<std::size_t>(pi) * C + cell) * D;
          for (int c = 0; c < D; ++c) sum[c] += v[c];
          ++members[static_cast<std::size_t>(pi) * C + cell];
        }
    }
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (int cell = 0; cell < C; ++cell) {
      float* out = cent.data() + static_cast<std::size_t>(cell) * D;
      std::int64_t count = 0;
      for (int pi = 0; pi < kParts; ++pi) count += members[static_cast<std::size_t>(pi) * C + cell];
      if (count == 0) {  // an empty cell keeps its centroid
        std::copy_n(layer.hash.centroids().data() + static_cast<std::size_t>(cell) * D, D, out);
        continue;
      }
      for (int c = 0; c < D; ++c) {
        double sum = 0;
        for (int pi = 0; pi < kParts; ++pi) sum += part[(static_cast<std::size_t>(pi) * C + cell) * D + c];
        out[c] = static_cast<float>(sum);
      }
    }
    layer.hash.set_centroids(cent.data());
  };
  for (int it = 0; it < iterations; ++it) {
    if (reseed) {  // assign every neuron to its cell (identity order: only the membership matters here)
      std::vector<std::int32_t> ident(N);
      std::iota(ident.begin(), ident.end(), 0);
      std::vector<std::uint32_t> codes(N);
      hash_rows(layer, codes.data());
      layer.tables.build(codes.data(), N, ident.data(), 0, threads_);
    }
    update();
  }
}

// Hidden activations of every row: H[l] is rows x layer l's size.
void Network::hidden_batch(const Csr& x, std::vector<std::vector<float>>& H) const {
  const int nh = static_cast<int>(layers_.size()) - 1;
  H.assign(nh, {});
  for (int l = 0; l < nh; ++l) H[l].assign(static_cast<std::size_t>(x.rows) * layers_[l].size, 0.f);
  hidden_layers(x, H);
}

namespace {
constexpr std::int32_t kNoId = std::numeric_limits<std::int32_t>::max();
// insert (score, id) into a row's sorted top-k list (best first; ties to the lower id)
inline void topk_insert(int k, float* sc, std::int32_t* id, float v, std::int32_t j) {
  if (!(v > sc[k - 1] || (v == sc[k - 1] && j < id[k - 1]))) return;
  int p = k - 1;
  while (p > 0 && (v > sc[p - 1] || (v == sc[p - 1] && j < id[p - 1]))) {
    sc[p] = sc[p - 1];
    id[p] = id[p - 1];
    --p;
  }
  sc[p] = v;
  id[p] = j;
}
}  // namespace

// Exact top-k over every output neuron for n rows of last-hidden activations H (ids are neuron ids).
void Network::topk_dense(const float* H, std::int64_t n, int k, std::int32_t* out_ids, float* out_scores) const {
  const Layer& o = layers_.back();
  const int dim = o.in_dim;
  const float ninf = -std::numeric_limits<float>::infinity();
  std::fill(out_scores, out_scores + n * k, ninf);
  std::fill(out_ids, out_ids + n * k, kNoId);
  // every neuron scored, in tiles of kTile neurons (a small GEMM per tile), per-thread top-k merged
  const std::int64_t ntiles = (o.size + kTile - 1) / kTile;
  std::vector<std::vector<float>> tsc(threads_);
  std::vector<std::vector<std::int32_t>> tid(threads_);
#pragma omp parallel num_threads(threads_)
  {
    const int me = omp_get_thread_num();
    auto& sc = tsc[me];
    auto& id = tid[me];
    sc.assign(static_cast<std::size_t>(n) * k, ninf);
    id.assign(static_cast<std::size_t>(n) * k, kNoId);
    std::vector<float> Wt(static_cast<std::size_t>(dim) * kTile), out(static_cast<std::size_t>(n) * kTile), buf(dim);
#pragma omp for schedule(dynamic, 16)
    for (std::int64_t tile = 0; tile < ntiles; ++tile) {
      const std::int64_t j0 = tile * kTile;
      const int w = static_cast<int>(std::min<std::int64_t>(kTile, o.size - j0));
      for (int c = 0; c < kTile; ++c) {
        const float* wr = c < w ? o.row(Layer::kWeights, j0 + c, buf.data(), *k_) : nullptr;
        for (int d = 0; d < dim; ++d) Wt[d * kTile + c] = wr ? wr[d] : 0.f;
      }
      k_->score_tile(H, dim, static_cast<int>(n), Wt.data(), dim, out.data());
      for (std::int64_t s = 0; s < n; ++s)
        for (int c = 0; c < w; ++c)
          topk_insert(k, sc.data() + s * k, id.data() + s * k, out[s * kTile + c] + o.b[j0 + c],
                      o.id_of(static_cast<std::int32_t>(j0 + c)));
    }
  }
  for (int t = 0; t < threads_; ++t)
    for (std::int64_t s = 0; s < n; ++s)
      for (int i = 0; i < k; ++i)
        if (tid[t][s * k + i] != kNoId) topk_insert(k, out_scores + s * k, out_ids + s * k, tsc[t][s * k + i], tid[t][s * k + i]);
}

void Network::predict_topk(const Csr& x, int k, bool sparse, std::int32_t* out_ids, float* out_scores) {
  std::lock_guard<std::mutex> lock(mu_);
  settle_crowd();
  validate_batch(x, nullptr);
  const Layer& o = layers_.back();
  if (k < 1 || k > o.size) throw std::invalid_argument("k must be in [1, n_labels]");
  const std::int64_t n = x.rows;
  if (n == 0) return;
  const int nh = static_cast<int>(layers_.size()) - 1;
  const int dim = o.in_dim;
  std::vector<std::vector<float>> H;
  hidden_batch(x, H);
  const std::vector<float>& Hl = H[nh - 1];
  if (!sparse || !o.sparse) {
    topk_dense(Hl.data(), n, k, out_ids, out_scores);
    return;
  }
  for (std::int64_t i = 0; i < n * k; ++i) {
    out_scores[i] = -std::numeric_limits<float>::infinity();
    out_ids[i] = kNoId;
  }
  // LSH-sparse: score only the retrieved neurons (select: union pads them like training; topk fills its budget
  // from the hot list and the tables, no random neurons).
  const bool pad = cfg_.select != "topk";
  const std::vector<std::int32_t>& hot = inference_hot();
  const int C = o.hash.cells();
  std::vector<float> cs;
  for (std::int64_t c0 = 0; c0 < n; c0 += kScoreChunk) {  // cell scores a chunk of rows at a time
    const std::int64_t c1 = std::min(n, c0 + kScoreChunk);
    cell_scores_batch(o, Hl.data() + c0 * dim, c1 - c0, cs);
#pragma omp parallel num_threads(threads_)
    {
      std::vector<std::int32_t> act;
      std::vector<float> z;
#pragma omp for schedule(dynamic, 8)
      for (std::int64_t s = c0; s < c1; ++s) {
        const float* h = Hl.data() + s * dim;
        select_active(o, h, nullptr, 0, mix(cfg_.seed, kStreamInference, static_cast<std::uint64_t>(s)), act, *ws_,
                      pad, cfg_.inference_neurons(), &hot, cs.empty() ? nullptr : cs.data() + (s - c0) * C);
        z.resize(act.size());
        o.gather_dot(*k_, act.data(), static_cast<int>(act.size()), h, z.data());
        for (std::size_t i = 0; i < act.size(); ++i)
          topk_insert(k, out_scores + s * k, out_ids + s * k, z[i] + o.b[act[i]], o.id_of(act[i]));
      }
    }
  }
  for (std::int64_t i = 0; i < n * k; ++i)
    if (out_ids[i] == kNoId) out_ids[i] = -1;  // fewer than k retrieved
}

LshStats Network::lsh_stats(const Csr& x, int k, int budget) {
  std::lock_guard<std::mutex> lock(mu_);
  settle_crowd();
  validate_batch(x, nullptr);
  const Layer& o = layers_.back();
  if (k < 1 || k > o.size) throw std::invalid_argument("k must be in [1, n_labels]");
  LshStats st;
  const std::int64_t n = x.rows;
  st.rows = n;
  if (n == 0) return st;
  const int nh = static_cast<int>(layers_.size()) - 1;
  std::vector<std::vector<float>> H;
  hidden_batch(x, H);
  const float* Hl = H[nh - 1].data();
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n) * k);
  std::vector<float> scores(ids.size());
  topk_dense(Hl, n, k, ids.data(), scores.data());
  const std::vector<std::int32_t>& hot = inference_hot();
  double cand = 0, hit = 0, top1 = 0;
  const int C = o.hash.cells();
  std::vector<float> cs;
  for (std::int64_t c0 = 0; c0 < n; c0 += kScoreChunk) {
    const std::int64_t c1 = std::min(n, c0 + kScoreChunk);
    cell_scores_batch(o, Hl + c0 * o.in_dim, c1 - c0, cs);
#pragma omp parallel num_threads(threads_) reduction(+ : cand, hit, top1)
    {
      std::vector<std::int32_t> act;
      auto& t = ws_->pt[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 8)
      for (std::int64_t s = c0; s < c1; ++s) {
        select_active(o, Hl + s * o.in_dim, nullptr, 0, 0, act, *ws_, false,
                      budget > 0 ? budget : cfg_.inference_neurons(), &hot, cs.empty() ? nullptr : cs.data() + (s - c0) * C);
        cand += static_cast<double>(act.size());
        if (!o.sparse) {  // a dense layer scores every neuron
          hit += k;
          top1 += 1;
          continue;
        }
        for (int i = 0; i < k; ++i) {  // the chosen rows are exactly the marked ones
          const bool in = t.mark[o.row_of(ids[s * k + i])] == t.stamp;
          hit += in;
          if (i == 0) top1 += in;
        }
      }
    }
  }
  st.candidates = cand / static_cast<double>(n);
  st.recall = hit / (static_cast<double>(n) * k);
  st.top1 = top1 / static_cast<double>(n);
  return st;
}

// ---- save / load ------------------------------------------------------------------------------------
// File layout (format 5): magic, format, meta length, meta (JSON), XXH64 of these header bytes, counters,
// then per layer the weights and Adam moments (fp32 whatever the precision), biases, each row's last Adam step,
// the hash tables of sparse layers (and k-means centroids), then crowd_step's state (the crowd's Adam moments,
// which output rows have their own state; rises are applied before saving), then an XXH64 checksum of every byte before it. load() checks the checksum before it touches the network, then the values themselves.
namespace {
// XXH64 (the public xxHash algorithm), streaming: the checksum is computed while writing.
class Xxh64 {
 public:
  void update(const void* data, std::size_t n) {
    if (n == 0) return;  // data may be null (an empty array)
    const auto* p = static_cast<const unsigned char*>(data);
    total_ += n;
    if (fill_ + n < 32) {
      std::memcpy(buf_ + fill_, p, n);
      fill_ += n;
      return;
    }
    if (fill_) {
      const std::size_t take = 32 - fill_;
      std::memcpy(buf_ + fill_, p, take);
      stripe(buf_);
      p += take;
      n -= take;
      fill_ = 0;
    }
    for (; n >= 32; p += 32, n -= 32) stripe(p);
    std::memcpy(buf_, p, n);
    fill_ = n;
  }
  std::uint64_t digest() const {
    std::uint64_t h;
    if (total_ >= 32) {
      h = rotl(v_[0], 1) + rotl(v_[1], 7) + rotl(v_[2], 12) + rotl(v_[3], 18);
      for (std::uint64_t v : v_) h = (h ^ round(0, v)) * P1 + P4;
    } else {
      h = P5;  // seed 0
    }
    h += total_;
    const unsigned char* p = buf_;
    std::size_t n = fill_;
    for (; n >= 8; p += 8, n -= 8) h = rotl(h ^ round(0, read64(p)), 27) * P1 + P4;
    if (n >= 4) {
      std::uint32_t k;
      std::memcpy(&k, p, 4);
      h = rotl(h ^ (static_cast<std::uint64_t>(k) * P1), 23) * P2 + P3;
      p += 4;
      n -= 4;
    }
    for (; n; ++p, --n) h = rotl(h ^ (*p * P5), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
  }

 private:
  static constexpr std::uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL,
                                 P3 = 0x165667B19E3779F9ULL, P4 = 0x85EBCA77C2B2AE63ULL, P5 = 0x27D4EB2F165667C5ULL;
  static std::uint64_t rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  static std::uint64_t round(std::uint64_t acc, std::uint64_t in) { return rotl(acc + in * P2, 31) * P1; }
  static std::uint64_t read64(const unsigned char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);  // little-endian hosts only (x86-64), like the rest of the file format
    return v;
  }
  void stripe(const unsigned char* p) {
    for (int i = 0; i < 4; ++i) v_[i] = round(v_[i], read64(p + 8 * i));
  }
  std::uint64_t v_[4] = {P1 + P2, P2, 0, 0ULL - P1};
  unsigned char buf_[32] = {};
  std::size_t fill_ = 0;
  std::uint64_t total_ = 0;
};

// Writes through the checksum.
struct Out {
  std::ofstream f;
  Xxh64 h;
  void write(const void* p, std::size_t n) {
    f.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    h.update(p, n);
  }
};
template <class T>
void put(Out& o, const T& v) { o.write(&v, sizeof(T)); }
void put_array(Out& o, const float* p, std::uint64_t n) {
  put(o, n);
  o.write(p, n * sizeof(float));
}
template <class T>
void get(std::ifstream& f, T& v, const std::string& path) {
  if (!f.read(reinterpret_cast<char*>(&v), sizeof(T))) throw std::runtime_error(path + ": truncated model file");
}
// Non-finite values (and negative second moments, which Adam takes the root of) make every later
// prediction garbage: refuse them with the file name.
void check_values(const float* p, std::size_t n, bool second_moments, const std::string& path, const char* what) {
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i]) || (second_moments && p[i] < 0))
      throw std::runtime_error(path + ": " + what + " hold an invalid value (" + std::to_string(p[i]) + " at index " +
                               std::to_string(i) + "); the model file is corrupt");
}
void get_array(std::ifstream& f, float* p, std::uint64_t n, const std::string& path, const char* what,
               bool second_moments = false) {
  std::uint64_t m;
  get(f, m, path);
  if (m != n)
    throw std::runtime_error(path + ": " + what + " has " + std::to_string(m) + " values, this network expects " +
                             std::to_string(n) + " (different configuration)");
  if (!f.read(reinterpret_cast<char*>(p), static_cast<std::streamsize>(n * sizeof(float))))
    throw std::runtime_error(path + ": truncated model file");
  check_values(p, n, second_moments, path, what);
}
std::string read_header(std::ifstream& f, const std::string& path) {
  if (!f) throw std::runtime_error(path + ": cannot open model file");
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0)
    throw std::runtime_error(path + ": not a SLIDE model file");
  std::uint32_t fmt;
  get(f, fmt, path);
  if (fmt != kFormat)
    throw std::runtime_error(path + ": model file format " + std::to_string(fmt) + ", this build reads " +
                             std::to_string(kFormat) + " (retrain, or load it with the version that wrote it)");
  std::uint64_t len;
  get(f, len, path);
  if (len > (1u << 30)) throw std::runtime_error(path + ": corrupt model header");
  std::string meta(len, '\0');
  if (!f.read(meta.data(), static_cast<std::streamsize>(len))) throw std::runtime_error(path + ": truncated model file");
  // the header has its own checksum, so that reading the metadata alone never trusts damaged bytes
  Xxh64 h;
  h.update(magic, 8);
  h.update(&fmt, sizeof fmt);
  h.update(&len, sizeof len);
  h.update(meta.data(), meta.size());
  std::uint64_t stored;
  get(f, stored, path);
  if (stored != h.digest()) throw std::runtime_error(path + ": checksum mismatch in the model header (corrupt file)");
  return meta;
}
// The stored checksum against the bytes before it; returns the payload size (file size minus the checksum).
std::uint64_t verify_checksum(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error(path + ": cannot open model file");
  const auto size = static_cast<std::uint64_t>(f.tellg());
  if (size < 8 + 4 + 8 + 8 + 8) throw std::runtime_error(path + ": truncated model file");
  const std::uint64_t payload = size - 8;
  f.seekg(0);
  Xxh64 h;
  std::vector<char> buf(1 << 20);
  for (std::uint64_t left = payload; left;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size()));
    if (!f.read(buf.data(), static_cast<std::streamsize>(n))) throw std::runtime_error(path + ": cannot read model file");
    h.update(buf.data(), n);
    left -= n;
  }
  std::uint64_t stored;
  get(f, stored, path);
  if (stored != h.digest())
    throw std::runtime_error(path + ": checksum mismatch, the model file is corrupt (damaged or truncated on disk)");
  return payload;
}
// fsync a file or a directory (a rename is durable once its directory is synced).
void sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error(path + ": cannot open to sync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw std::runtime_error(path + ": fsync failed (disk full or I/O error?)");
}
}  // namespace

void Network::save(const std::string& path, const std::string& meta) {
  std::lock_guard<std::mutex> lock(mu_);
  settle_crowd();
  // a hidden temporary beside the file (slide.training.protocol removes one a killed run left)
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string tmp = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + "." +
                          path.substr(slash == std::string::npos ? 0 : slash + 1) + ".tmp";
  auto discard = [&tmp](const std::string& why) {
    std::remove(tmp.c_str());
    throw std::runtime_error(why);
  };
  {
    Out o;
    o.f.open(tmp, std::ios::binary | std::ios::trunc);
    if (!o.f) throw std::runtime_error(tmp + ": cannot write model file");
    o.write(kMagic, 8);
    put(o, kFormat);
    put(o, static_cast<std::uint64_t>(meta.size()));
    o.write(meta.data(), meta.size());
    put(o, o.h.digest());  // the header's checksum (read_header)
    put(o, step_);
    put(o, samples_);
    put(o, rehash_count_);
    put(o, rebuild_count_);
    put(o, next_rehash_);
    put(o, next_rebuild_);
    put(o, rehash_interval_);
    put(o, rebuild_interval_);
    for (const Layer& layer : layers_) {
      // parameter blocks as whole matrices: w, then m, then v (row-major, unpadded, fp32 in every precision)
      std::vector<float> buf(layer.cols());
      for (const Layer::Part part : {Layer::kWeights, Layer::kMoment1, Layer::kMoment2}) {
        put(o, static_cast<std::uint64_t>(layer.rows()) * layer.cols());
        for (std::int64_t r = 0; r < layer.rows(); ++r) o.write(layer.row(part, r, buf.data(), *k_), sizeof(float) * layer.cols());
      }
      put_array(o, layer.b.data(), layer.b.size());
      put_array(o, layer.mb.data(), layer.mb.size());
      put_array(o, layer.vb.data(), layer.vb.size());
      // adam_catchup: each row's last update step (empty until the layer's first sparse update)
      put(o, static_cast<std::uint64_t>(layer.last.size()));
      if (!layer.last.empty()) o.write(layer.last.data(), layer.last.size() * sizeof(std::int64_t));
      if (layer.sparse) {  // the tables as they are: built from the weights of the last rehash, not the current ones
        put(o, static_cast<std::uint64_t>(layer.tables.N()));
        o.write(layer.tables.offsets(), layer.tables.offsets_size() * sizeof(std::uint32_t));
        o.write(layer.tables.ids(), static_cast<std::size_t>(layer.tables.L()) * layer.tables.N() * sizeof(std::int32_t));
        if (layer.hash.kind() == HashKind::Kmeans) put_array(o, layer.hash.centroids().data(), layer.hash.centroids().size());
      }
    }
    {  // crowd_step (empty when off or before the first batch)
      put_array(o, crowd_m_.data(), crowd_m_.size());
      put_array(o, crowd_v_.data(), crowd_v_.size());
      const auto& own = layers_.back().own;
      put(o, static_cast<std::uint64_t>(own.size()));
      if (!own.empty()) o.write(own.data(), own.size());
    }
    {  // hot_neurons (empty when off or before the first choice)
      const auto& hot = layers_.back().hot;
      put(o, static_cast<std::uint64_t>(hot.size()));
      if (!hot.empty()) o.write(hot.data(), hot.size() * sizeof(std::int32_t));
      put(o, static_cast<std::uint64_t>(hot_hsum_.size()));
      if (!hot_hsum_.empty()) o.write(hot_hsum_.data(), hot_hsum_.size() * sizeof(double));
      put(o, hot_hcount_);
    }
    const std::uint64_t sum = o.h.digest();
    o.f.write(reinterpret_cast<const char*>(&sum), sizeof(sum));
    errno = 0;
    o.f.close();
    // a full disk or a file size limit: leave neither a partial temporary nor a changed file
    const int err = errno;  // before building the message, whose allocations may set it
    if (o.f.fail()) discard(path + ": write failed (" + (err ? std::strerror(err) : "disk full?") +
                            "); the file there, if any, is unchanged");
  }
  sync_path(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    discard(path + ": cannot rename " + tmp + " onto it (" + std::strerror(err) + ")");
  }
  sync_path(dir);
}

std::string Network::read_meta(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return read_header(f, path);
}

std::string Network::load(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  {  // header first: a file of another format gets that message rather than a checksum mismatch
    std::ifstream f(path, std::ios::binary);
    read_header(f, path);
  }
  const std::uint64_t payload = verify_checksum(path);
  std::ifstream f(path, std::ios::binary);
  std::string meta = read_header(f, path);
  std::int64_t step, samples, rehashes, rebuilds;
  double next_rehash, next_rebuild, rehash_interval, rebuild_interval;
  get(f, step, path);
  get(f, samples, path);
  get(f, rehashes, path);
  get(f, rebuilds, path);
  get(f, next_rehash, path);
  get(f, next_rebuild, path);
  get(f, rehash_interval, path);
  get(f, rebuild_interval, path);
  // What training can produce: every step sees >= 1 sample, the next rehash and rebuild lie ahead.
  if (step < 0 || samples < step || rehashes < 0 || rebuilds < 0 || !std::isfinite(next_rehash) ||
      !std::isfinite(next_rebuild) || !(rehash_interval >= 1) || !(rebuild_interval >= 1) ||
      !std::isfinite(rehash_interval) || !std::isfinite(rebuild_interval) ||
      !(next_rehash > static_cast<double>(samples)) || !(next_rebuild > static_cast<double>(samples)))
    throw std::runtime_error(path + ": impossible training counters (step " + std::to_string(step) + ", samples " +
                             std::to_string(samples) + ", rehashes " + std::to_string(rehashes) + ", rebuilds " +
                             std::to_string(rebuilds) + "); the model file is corrupt");
  for (Layer& layer : layers_) {
    const std::uint64_t n = static_cast<std::uint64_t>(layer.rows()) * layer.cols();
    const char* what[Layer::kParts] = {"weights", "Adam first moments", "Adam second moments"};
    std::vector<float> buf(layer.cols());
    for (const Layer::Part part : {Layer::kWeights, Layer::kMoment1, Layer::kMoment2}) {
      std::uint64_t m;
      get(f, m, path);
      if (m != n)
        throw std::runtime_error(path + ": " + what[part] + " have " + std::to_string(m) +
                                 " values, this network expects " + std::to_string(n) + " (different configuration)");
      for (std::int64_t r = 0; r < layer.rows(); ++r) {
        if (!f.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(sizeof(float) * layer.cols())))
          throw std::runtime_error(path + ": truncated model file");
        check_values(buf.data(), static_cast<std::size_t>(layer.cols()), part == Layer::kMoment2, path, what[part]);
        layer.set_row(part, r, buf.data(), *k_);
      }
    }
    get_array(f, layer.b.data(), layer.b.size(), path, "biases");
    get_array(f, layer.mb.data(), layer.mb.size(), path, "bias first moments");
    get_array(f, layer.vb.data(), layer.vb.size(), path, "bias second moments", true);
    {  // adam_catchup: each row's last update step
      std::uint64_t nl;
      get(f, nl, path);
      if (nl != 0 && nl != static_cast<std::uint64_t>(layer.rows()))
        throw std::runtime_error(path + ": Adam update steps of the wrong size (corrupt file?)");
      layer.last.assign(nl, 0);
      if (nl && !f.read(reinterpret_cast<char*>(layer.last.data()), static_cast<std::streamsize>(nl * sizeof(std::int64_t))))
        throw std::runtime_error(path + ": truncated model file");
      for (std::int64_t s : layer.last)
        if (s < 0 || s > step) throw std::runtime_error(path + ": Adam update step outside [0, step] (corrupt file?)");
    }
    if (layer.sparse) {
      std::uint64_t n;
      get(f, n, path);
      if (n != static_cast<std::uint64_t>(layer.size)) throw std::runtime_error(path + ": hash tables of the wrong size");
      std::vector<std::uint32_t> off(layer.tables.offsets_size());
      std::vector<std::int32_t> ids(static_cast<std::size_t>(layer.tables.L()) * n);
      if (!f.read(reinterpret_cast<char*>(off.data()), static_cast<std::streamsize>(off.size() * sizeof(std::uint32_t))) ||
          !f.read(reinterpret_cast<char*>(ids.data()), static_cast<std::streamsize>(ids.size() * sizeof(std::int32_t))))
        throw std::runtime_error(path + ": truncated model file");
      // validate before use: a corrupt file must not index out of bounds later
      const std::int64_t nb = layer.tables.nbuckets();
      for (int t = 0; t < layer.tables.L(); ++t) {
        const std::uint32_t* o = off.data() + static_cast<std::int64_t>(t) * (nb + 1);
        if (o[0] != 0 || o[nb] > n) throw std::runtime_error(path + ": corrupt hash tables");
        for (std::int64_t b = 0; b < nb; ++b)
          if (o[b + 1] < o[b]) throw std::runtime_error(path + ": corrupt hash tables");
      }
      for (std::int32_t id : ids)
        if (id < 0 || id >= layer.size) throw std::runtime_error(path + ": corrupt hash tables");
      layer.tables.restore(static_cast<std::int64_t>(n), off.data(), ids.data());
      layer.index_cells();
      if (layer.hash.kind() == HashKind::Kmeans) {  // the centroids are learned: stored, not recreated
        std::vector<float> cent(layer.hash.centroids().size());
        get_array(f, cent.data(), cent.size(), path, "k-means centroids");
        for (float v : cent)
          if (!std::isfinite(v)) throw std::runtime_error(path + ": non-finite k-means centroid");
        layer.hash.set_centroids(cent.data());
        layer.cells_seeded = true;
      }
    }
  }
  std::vector<float> cm, cv;
  std::vector<std::uint8_t> own;
  {  // crowd_step
    const std::uint64_t cw = static_cast<std::uint64_t>(layers_.back().in_dim) + 1;
    for (auto* a : {&cm, &cv}) {
      std::uint64_t n;
      get(f, n, path);
      if (n != 0 && n != cw) throw std::runtime_error(path + ": crowd Adam state of the wrong size (corrupt file?)");
      a->resize(n);
      if (n && !f.read(reinterpret_cast<char*>(a->data()), static_cast<std::streamsize>(n * sizeof(float))))
        throw std::runtime_error(path + ": truncated model file");
      check_values(a->data(), n, a == &cv, path, "crowd Adam state");
    }
    std::uint64_t n;
    get(f, n, path);
    if (n != 0 && n != static_cast<std::uint64_t>(layers_.back().size))
      throw std::runtime_error(path + ": crowd flags of the wrong size (corrupt file?)");
    own.resize(n);
    if (n && !f.read(reinterpret_cast<char*>(own.data()), static_cast<std::streamsize>(n)))
      throw std::runtime_error(path + ": truncated model file");
    for (std::uint8_t b : own)
      if (b > 1) throw std::runtime_error(path + ": crowd flag not 0 or 1 (corrupt file?)");
  }
  std::vector<std::int32_t> hot;
  std::vector<double> hsum;
  std::int64_t hcount;
  {  // hot_neurons
    const Layer& o = layers_.back();
    std::uint64_t n;
    get(f, n, path);
    if (n > static_cast<std::uint64_t>(o.size)) throw std::runtime_error(path + ": hot neuron list too long (corrupt file?)");
    hot.resize(n);
    if (n && !f.read(reinterpret_cast<char*>(hot.data()), static_cast<std::streamsize>(n * sizeof(std::int32_t))))
      throw std::runtime_error(path + ": truncated model file");
    for (std::int32_t r : hot)
      if (r < 0 || r >= o.size) throw std::runtime_error(path + ": hot neuron outside the output layer (corrupt file?)");
    get(f, n, path);
    if (n != 0 && n != static_cast<std::uint64_t>(o.in_dim))
      throw std::runtime_error(path + ": mean hidden output of the wrong size (corrupt file?)");
    hsum.resize(n);
    if (n && !f.read(reinterpret_cast<char*>(hsum.data()), static_cast<std::streamsize>(n * sizeof(double))))
      throw std::runtime_error(path + ": truncated model file");
    get(f, hcount, path);
    for (double v : hsum)
      if (!std::isfinite(v)) throw std::runtime_error(path + ": non-finite mean hidden output (corrupt file?)");
    if (hcount < 0 || hcount > samples) throw std::runtime_error(path + ": impossible hidden output count (corrupt file?)");
  }
  if (static_cast<std::uint64_t>(f.tellg()) != payload)
    throw std::runtime_error(path + ": unexpected data after the model (corrupt file?)");
  layers_.back().hot = std::move(hot);
  hot_hsum_ = std::move(hsum);
  hot_hcount_ = hcount;
  hot_inference_step_ = -1;  // another state: its own inference list
  crowd_m_ = std::move(cm);
  crowd_v_ = std::move(cv);
  layers_.back().own = std::move(own);
  crowd_steps_.clear();
  crowd_settled_ = step;
  step_ = step;
  samples_ = samples;
  next_rehash_ = next_rehash;
  next_rebuild_ = next_rebuild;
  rehash_interval_ = rehash_interval;
  rebuild_interval_ = rebuild_interval;
  // The hash functions are not stored: recreate those of the last rebuild from the seed.
  for (std::size_t li = 0; li < layers_.size(); ++li) {
    Layer& layer = layers_[li];
    if (!layer.sparse || layer.hash.kind() == HashKind::Kmeans) continue;
    const LayerSpec& sp = cfg_.layers[li];
    layer.hash = HashFamily(parse_hash_kind(sp.hash), sp.K, sp.L, layer.hdim, sp.range_pow, cfg_.dwta_compat_shift,
                        mix(cfg_.seed, kStreamHashFunctions + li, static_cast<std::uint64_t>(rebuilds)));
  }
  rehash_count_ = rehashes;
  rebuild_count_ = rebuilds;
  return meta;
}

}  // namespace slide
