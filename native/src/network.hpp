// The SLIDE network: sparse input -> dense ReLU hidden layers -> output layer whose active neurons per
// sample come from LSH tables (plus the true labels, padded with random neurons), softmax over the
// active set, Adam. Gradients are accumulated per batch without locks and applied deterministically.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "alloc.hpp"
#include "kernels.hpp"
#include "lsh.hpp"

namespace slide {

struct LayerSpec {
  int size = 0;
  std::string hash = "dwta";  // dwta | srp
  int K = 1, L = 1, range_pow = 1;
  double sparsity = 1.0;      // 1 = dense layer (every neuron active); < 1 = LSH active sets
};

struct NetConfig {
  std::int64_t n_features = 0;
  std::vector<LayerSpec> layers;  // hidden layers, then the output layer
  int bucket_size = 128;
  std::string replacement = "fifo";
  int min_active = 1000, pad_below = 1500;
  // Where padding starts: "batch" = one random start shared by the batch (what the original does in
  // practice: it reseeds rand() with time(NULL) per sample, so all samples within a second share it);
  // "sample" = an independent start per sample.
  std::string padding = "sample";
  std::int64_t rehash = 6400, rebuild = 128000;  // in samples
  std::string schedule = "fixed";                 // fixed | exponential
  double schedule_growth = 1.1;                   // exponential: each interval is this times the last
  bool dense_adam = false, dwta_compat_shift = false;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  // Initialisation. The original: weights and biases N(0, 0.01). The pipeline's shared init (model.init_std):
  // weights truncated at 2 sd (as TensorFlow's truncated_normal), zero biases.
  double init_std = 0.01, init_bias_std = 0.01;
  bool init_truncated = false;
  std::uint64_t seed = 0;
  int threads = 0;  // 0 = OpenMP default
  std::string hugepages = "auto", isa = "auto";
};

// Borrowed CSR views (numpy arrays from Python, no copies).
struct Csr {
  const std::int64_t* indptr;
  const std::int32_t* indices;
  const float* data;  // may be null for label matrices
  std::int64_t rows;
};

struct PhaseTimes {  // cumulative seconds of wall time
  double hash = 0, forward = 0, backward = 0, update = 0, rehash = 0;
};

class Network {
 public:
  explicit Network(const NetConfig& cfg);
  ~Network();
  // One optimiser step on a batch; returns the mean cross-entropy over samples that have labels.
  float train_batch(const Csr& x, const Csr& y);
  // Top-k labels (and scores) per row; sparse = score only the LSH-retrieved neurons.
  void predict_topk(const Csr& x, int k, bool sparse, std::int32_t* out_ids, float* out_scores);
  // Active neurons of the output layer for one sample, as training would pick them (tests, diagnostics).
  std::vector<std::int32_t> active_set(const Csr& x, std::int64_t row, const std::int32_t* labels, int n_labels,
                                       std::uint64_t salt, bool pad = true);
  void save(const std::string& path, const std::string& meta) const;
  // Load weights, optimiser state and counters saved by a network of identical configuration; returns meta.
  std::string load(const std::string& path);
  static std::string read_meta(const std::string& path);

  const NetConfig& config() const { return cfg_; }
  const char* isa() const { return k_->name; }
  int threads() const { return threads_; }
  std::int64_t step() const { return step_; }
  std::int64_t samples_seen() const { return samples_; }
  std::int64_t rehashes() const { return rehash_count_; }
  std::int64_t rebuilds() const { return rebuild_count_; }
  const PhaseTimes& times() const { return times_; }
  // LSH occupancy of the output layer: non-empty buckets and stored ids over all tables.
  void table_stats(std::int64_t* nonempty, std::int64_t* stored) const;
  std::int64_t n_labels() const;
  // Read-only views of the parameters (tests compare them against a numpy reference).
  void weight_shape(int layer, std::int64_t* rows, std::int64_t* cols) const;
  void copy_weights(int layer, float* out) const;
  void copy_bias(int layer, float* out) const;  // in neuron-id order
  int num_layers() const { return static_cast<int>(cfg_.layers.size()); }

  struct Layer;
  struct Workspace;

 private:
  void validate_batch(const Csr& x, const Csr* y) const;
  void hidden_forward(const Csr& x, std::int64_t row, float* const* h) const;
  void select_active(const Layer& o, const float* h, const std::int32_t* labels, int n_labels, std::uint64_t rng_seed,
                     std::vector<std::int32_t>& active, Workspace& ws, bool pad = true) const;
  void rehash_layer(Layer& layer, bool new_functions);
  void maybe_rehash();
  void apply_adam(Layer& layer, int layer_index, const Csr& x);

  NetConfig cfg_;
  const Kernels* k_;
  PagePolicy pages_;
  int threads_;
  std::vector<Layer> layers_;
  std::int64_t step_ = 0, samples_ = 0, rehash_count_ = 0, rebuild_count_ = 0;
  double next_rehash_ = 0, next_rebuild_ = 0, rehash_interval_ = 0, rebuild_interval_ = 0;
  PhaseTimes times_;
  std::unique_ptr<Workspace> ws_;
  // One call at a time per network: calls release the GIL and share the per-thread workspaces.
  mutable std::mutex mu_;
};

}  // namespace slide
