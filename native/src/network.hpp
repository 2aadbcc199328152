// The SLIDE network: sparse input -> dense ReLU hidden layers -> output layer whose active neurons per
// sample come from LSH tables (plus the true labels, padded with random neurons), softmax over the
// active set, Adam. Gradients are accumulated per batch without locks and applied deterministically.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "alloc.hpp"
#include "kernels.hpp"
#include "lsh.hpp"
#include "options.hpp"

namespace slide {

struct LayerSpec {
  int size = 0;
  std::string hash = "dwta";        // dwta | srp | kmeans
  int K = 0, L = 0, range_pow = 0;  // 0 = auto: chosen from the layer size and the active-set budget
  double sparsity = 1.0;            // 1 = dense layer (every neuron active); < 1 = LSH active sets
};

// A layer entry's missing keys take LayerSpec's defaults above; the layers a network gets when none are given:
// hidden layers are dense (their hash settings unused, kept for the
// original's configuration files); the output layer keeps 0.5% of its neurons active, from k-means cells.
inline LayerSpec default_layer(bool output) {
  return output ? LayerSpec{0, "kmeans", 0, 0, 0, 0.005} : LayerSpec{0, "dwta", 2, 20, 6, 1.0};
}

// Resolve `auto` (0) K, L and range_pow of a sparse layer of s.size neurons with a budget of min_active.
void resolve_auto(LayerSpec& s, int min_active);

struct NetConfig {
  std::int64_t n_features = 0;
  std::vector<LayerSpec> layers;  // hidden layers, then the output layer
  // Every other option, with its default and meaning: options.hpp (one declaration per option).
#define SLIDE_OPTION_MEMBER(name, T, dflt, choices, lo, hi, flags, doc) T name = dflt;
  SLIDE_NETWORK_OPTIONS(SLIDE_OPTION_MEMBER)
#undef SLIDE_OPTION_MEMBER
  int inference_neurons() const { return inference_budget > 0 ? inference_budget : 2 * min_active; }
  double bias_std() const { return std::isnan(init_bias_std) ? init_std : init_bias_std; }
  bool bf16() const { return precision == "bf16"; }
};

// The option table (options.hpp) in declaration order, for the bindings and their users.
const std::vector<OptionInfo>& network_options();
// Throw std::invalid_argument naming the first option outside its allowed values or range.
void check_options(const NetConfig& cfg);

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

// Where the output layer's active neurons came from, summed over the samples trained so far.
struct ActiveCounts {
  std::int64_t samples = 0, labels = 0, retrieved = 0, random = 0;
};

// Retrieval quality of the output layer's tables on some rows (no labels, no random neurons).
struct LshStats {
  std::int64_t rows = 0;
  double candidates = 0;  // mean retrieved neurons per row
  double recall = 0;      // mean share of the row's dense top-k (by score) among them
  double top1 = 0;        // share of rows whose dense top-1 is among them
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
  // Candidates per row and recall of the dense top-k by the tables alone.
  // budget: neurons retrieved per row with select: topk (0 = the inference budget).
  LshStats lsh_stats(const Csr& x, int k, int budget = 0);
  void save(const std::string& path, const std::string& meta);
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
  const ActiveCounts& active_counts() const { return counts_; }
  // The output layer's resolved LSH settings (after `auto`): K, L, range_pow.
  const LayerSpec& output_spec() const { return cfg_.layers.back(); }
  // k-means output layer: the neuron ids of each cell, in the table's order (empty before the first rehash)
  std::vector<std::vector<std::int32_t>> output_cells() const;
  // hot_neurons: the list training scores (chosen at the last rehash), or sparse inference's (inference_hot)
  std::vector<std::int32_t> hot_neurons(bool inference);
  // LSH occupancy of the output layer: non-empty buckets and stored ids over all tables.
  void table_stats(std::int64_t* nonempty, std::int64_t* stored) const;
  std::int64_t n_labels() const;
  // Read-only views of the parameters (tests compare them against a numpy reference).
  void weight_shape(int layer, std::int64_t* rows, std::int64_t* cols) const;
  void copy_weights(int layer, float* out);
  void copy_bias(int layer, float* out);  // in neuron-id order
  int num_layers() const { return static_cast<int>(cfg_.layers.size()); }

  struct Layer;
  struct Workspace;

 private:
  void validate_batch(const Csr& x, const Csr* y) const;
  // `active` is the labels, then the neurons from the tables, then random ones; returns the first two counts.
  // budget: the topk budget (0 = min_active). inference_hot: the hot list of sparse inference and lsh_stats
  // (inference_hot()); nullptr: training's.
  struct Picked {
    int labels, retrieved;
    int near = 0, near_pool = 0;  // near_share: negatives drawn from the near stratum, and the stratum's size
    int cell = 0, pos = 0;        // k-means: where retrieval stopped (member pos of the cell ranked cell)
    int shared = 0;               // batch_shared: the batch's shared neurons in its softmax (not in the active set)
  };
  // batch_shared: a sample's first pass (retrieval_only): its labels, hot and retrieved neurons, and where it stopped
  struct Retrieval {
    const std::int32_t* ids;
    int n;
    Picked picked;
  };
  // retrieval_only: stop after the labels, hot and retrieved neurons (batch_shared's first pass). given: start from
  // such a first pass instead of retrieving again. shared: neurons every sample of the batch takes after its own.
  Picked select_active(const Layer& o, const float* h, const std::int32_t* labels, int n_labels, std::uint64_t rng_seed,
                    std::vector<std::int32_t>& active, Workspace& ws, bool pad = true, int budget = 0,
                       const std::vector<std::int32_t>* inference_hot = nullptr,
                       const float* cell_scores = nullptr, bool retrieval_only = false,
                       const Retrieval* given = nullptr, const std::vector<std::int32_t>* shared = nullptr) const;
  // k-means output layer: the cell scores of n last hidden outputs (n x cells), one blocked product; else empty.
  void cell_scores_batch(const Layer& o, const float* H, std::int64_t n, std::vector<float>& out) const;
  void hidden_batch(const Csr& x, std::vector<std::vector<float>>& H) const;
  // Training, one batch: every hidden layer, then the output layer sparse (per sample) or dense (batched).
  void hidden_layers(const Csr& x, std::vector<std::vector<float>>& H, bool catch_up = false) const;
  void output_sparse(const Csr& x, const Csr& y);
  void batch_shared(const Layer& o, const Csr& y, std::int64_t B, int C);
  int shared_logits(const Layer& o, const float* H, std::int64_t B);
  void shared_backward(const Layer& o, std::int64_t B, int nsp);
  void output_dense(const Csr& y);
  // Dense layers as matrix products over the batch (weights W: fp32, row stride ld).
  const float* dense_weights(const Layer& layer, std::vector<float>& buf) const;
  void dense_forward(const Layer& layer, const float* W, const float* X, std::int64_t B, float* Y) const;
  void dense_backward(const Layer& layer, const float* W, const float* D, std::int64_t B, float* dX) const;
  void dense_update(Layer& layer, int li, const float* D, const float* X, std::int64_t B);
  void adam_row(Layer& layer, int li, std::int64_t r, const float* g, float gb, std::int64_t idle, float lr_t);
  void topk_dense(const float* H, std::int64_t n, int k, std::int32_t* out_ids, float* out_scores) const;
  // The vector a neuron (storage row r) is hashed as: its weights, or the MIPS transform of weights and bias.
  void hash_vector(const Layer& layer, std::int64_t r, float* out) const;
  void query_vector(const Layer& layer, const float* h, float* out) const;
  void seed_cells(const Layer& layer, float* cent) const;
  void refine_cells(Layer& layer, int iterations, bool reseed);
  // codes[t * N + r]: bucket in table t of storage row r, r < N = L.size (the rows stream in order), in blocks of
  // kBlock.
  void hash_rows(const Layer& layer, std::uint32_t* codes) const;
  // k-means rehash: codes[r] = the most similar of the kNearCells centroids nearest row r's current cell's.
  void assign_near(const Layer& layer, std::uint32_t* codes) const;
  void rehash_layer(Layer& layer, bool new_functions);
  void maybe_rehash();
  void apply_adam(Layer& layer, int layer_index, const Csr& x);
  double adam_lr(std::int64_t step) const;
  void prepare_idle_sums(std::int64_t now);
  void input_idle_steps(const Csr& x, std::int64_t a, std::int64_t e, float* c) const;
  double idle_step_sum(std::int64_t idle) const;
  struct IdleStep {
    float c, d1, d2;  // summed idle step sizes, beta1^idle, beta2^idle
  };
  IdleStep idle_step(std::int64_t idle) const;
  std::vector<double> idle_sums_;
  std::int64_t idle_now_ = 0;  // the step idle_sums_ was prepared for
  mutable std::vector<double> lr_table_;  // adam_lr by step (grown on demand; calls hold mu_)
  mutable bool lr_converged_ = false;
  std::vector<float> idle_decay1_, idle_decay2_;
  // crowd_step: Adam moments of the mean gradient of the output neurons outside the active sets (in_dim weights,
  // then the bias), and the crowd's cumulative step since crowd_settled_: entry k of crowd_steps_ (in_dim + 1
  // floats) is the step through step crowd_settled_ + k. Every row that has its own state (Layer::own) has risen
  // by the crowd's steps through crowd_settled_; the rest is pending until its next update or the next settle.
  std::vector<float> crowd_m_, crowd_v_, crowd_steps_;
  bool crowd() const;
  void crowd_step();
  const float* crowd_at(std::int64_t step) const;
  void crowd_pending(const float* h, std::vector<float>& out) const;
  std::int64_t risen_through(const Layer& o, std::int64_t r) const;
  void rise_row(Layer& o, std::int64_t r, std::int64_t since, float* scratch);
  // apply every pending rise (before rehashing, inference, copies and saving: stored weights are the model's)
  void settle_crowd();
  std::int64_t crowd_settled_ = 0;
  // hot_neurons: the sum of the last hidden layer's outputs since the last rehash, and how many samples it holds
  std::vector<double> hot_hsum_;
  std::int64_t hot_hcount_ = 0;
  void choose_hot(Layer& o);
  std::vector<std::int32_t> best_on_mean(const Layer& o, const std::vector<double>& hsum, std::int64_t count) const;
  // inference's hot list: chosen again with the current weights when the network trained since the last choice
  const std::vector<std::int32_t>& inference_hot();
  std::vector<std::int32_t> hot_inference_;
  std::int64_t hot_inference_step_ = -1;  // the step hot_inference_ was chosen at (-1: none)

  NetConfig cfg_;
  const Kernels* k_;
  PagePolicy pages_;
  int threads_;
  std::vector<Layer> layers_;
  std::int64_t step_ = 0, samples_ = 0, rehash_count_ = 0, rebuild_count_ = 0;
  double next_rehash_ = 0, next_rebuild_ = 0, rehash_interval_ = 0, rebuild_interval_ = 0;
  PhaseTimes times_;
  ActiveCounts counts_;
  std::unique_ptr<Workspace> ws_;
  // One call at a time per network: calls release the GIL and share the per-thread workspaces.
  mutable std::mutex mu_;
};

}  // namespace slide
