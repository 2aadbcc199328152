// The SLIDE network's options, declared once. Each row gives the option's name, C++ type, default, allowed
// values ("a|b|c"; "" = any value in the range), range [lo, hi] (open ends marked by LO_OPEN / HI_OPEN) and a
// one-line description. From this list come NetConfig's members and defaults, the checks of the
// Network constructor, the bindings' conversion of a Python dict, and the table exported to Python
// (slide._native.OPTIONS), which documents slide.Network and is tested against the pipeline's config schema.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace slide {

constexpr double kInf = std::numeric_limits<double>::infinity();
enum OptionFlags : unsigned { kClosed = 0, kLoOpen = 1, kHiOpen = 2, kNullable = 4 };

// X(name, type, default, choices, lo, hi, flags, doc)
#define SLIDE_NETWORK_OPTIONS(X)                                                                                     \
  X(select, std::string, "topk", "union|topk", 0, 0, kClosed,                                                         \
    "how the output layer's active set is chosen: topk = a budget of min_active neurons (labels, then the "          \
    "retrieved neurons best first, then random_share random ones); union = every id in the sample's buckets, padded " \
    "at random below pad_below (the original's Mode 4)")                                                             \
  X(min_active, int, 1000, "", 0, kInf, kClosed,                                                                      \
    "topk: active neurons per sample, labels included; union: random padding fills the active set up to this many")  \
  X(pad_below, int, 1500, "", 0, kInf, kClosed, "union: pad only when the tables retrieved fewer neurons than this")  \
  X(random_share, double, 0.5, "", 0, 1, kClosed,                                                                     \
    "topk: share of the budget given to random negatives in training, each weighted (log Q) to stand for the "        \
    "neurons not retrieved")                                                                                         \
  X(near_share, double, 0.5, "", 0, 1, kHiOpen,                                                                       \
    "topk with k-means cells (and crowd_step 0): share of the random negatives drawn instead from the cells ranked "  \
    "just after the retrieved ones (a stratum of at least near_pool times as many neurons), each weighted (log Q) "   \
    "for its own stratum; the rest stay uniform over every other neuron; only where the stratum is at most a "     \
    "quarter of the neurons not yet active; 0 = all uniform")                                                        \
  X(near_pool, double, 32, "", 1, kInf, kClosed,                                                                      \
    "near_share: the near stratum is whole cells holding at least this many times the neurons drawn from it")        \
  X(rank_pool, double, 1, "", 1, kInf, kClosed,                                                                      \
    "topk with k-means cells: take this many times the room from the best cells, score them exactly and keep the "   \
    "best (1 = the cells' members in cell order, unscored)")                                                        \
  X(batch_shared, int, 65536, "", 0, kInf, kClosed,                                                                   \
    "topk: the neurons the tables and the hot list retrieve for any sample of the batch (labels included), up to "   \
    "this many (those picked by the most samples first), join every sample's active set, so that each takes every " \
    "sample's share of the softmax, as in a full softmax; 0 = off")                                                 \
  X(hot_neurons, int, 256, "", 0, kInf, kClosed,                                                                      \
    "topk: a short list of this many output neurons, those scoring highest on the mean hidden output (chosen at "    \
    "every rehash), is scored exactly for every sample; its best quarter (at most an eighth of the budget) joins "   \
    "the active set before the tables fill the rest (sparse inference: the list chosen again on the current "     \
    "weights); 0 = off")                                                                                             \
  X(mips, bool, true, "", 0, 0, kClosed,                                                                              \
    "hash neurons for maximum inner product (centred weights, bias and a norm coordinate), not their weights alone") \
  X(inference, std::string, "dense", "dense|sparse", 0, 0, kClosed,                                                   \
    "predict_topk's default: dense = score every output neuron; sparse = only the neurons the tables retrieve")      \
  X(inference_budget, int, 0, "", 0, kInf, kClosed,                                                                   \
    "sparse inference with topk: neurons retrieved and scored per row; 0 = 2 x min_active")                          \
  X(bucket_size, int, 128, "", 1, kInf, kClosed, "ids one LSH bucket holds (DWTA/SimHash tables)")                    \
  X(replacement, std::string, "fifo", "fifo|reservoir", 0, 0, kClosed,                                                \
    "which id a full bucket drops: the oldest (fifo) or a random one (reservoir)")                                   \
  X(padding, std::string, "sample", "batch|sample", 0, 0, kClosed,                                                    \
    "sample: each sample pads with its own random run of neurons (what the original intends); batch: the samples "    \
    "of a batch share one run (what it does in practice)")                                                           \
  X(rehash, std::int64_t, 6400, "", 1, kInf, kClosed, "samples between re-inserting every neuron (same functions)")   \
  X(rebuild, std::int64_t, 128000, "", 1, kInf, kClosed, "samples between new hash functions")                        \
  X(schedule, std::string, "fixed", "fixed|exponential", 0, 0, kClosed,                                               \
    "rehash/rebuild intervals: fixed (the shipped code) or growing by schedule_growth (the paper)")                  \
  X(schedule_growth, double, 1.1, "", 1, kInf, kClosed, "exponential schedule: each interval is this times the last") \
  X(dense_adam, bool, false, "", 0, 0, kClosed, "give every weight an Adam step each batch (the original's sweep)")   \
  X(adam_catchup, bool, true, "", 0, 0, kClosed,                                                                      \
    "sparse Adam: at its next update an idle row first takes in closed form the momentum steps dense Adam takes "   \
    "while it is idle; the forward pass reads input rows with those steps applied")                                 \
  X(crowd_step, double, 0, "", 0, 1, kClosed,                                                                        \
    "sparse Adam closer to full softmax's: the output neurons outside a batch's active sets all take one normalised " \
    "step, tracked once for all; each neuron that has been a label or retrieved rises relative to them by this "      \
    "share of it; 0 = off")                                                                                          \
  X(dwta_compat_shift, bool, false, "", 0, 0, kClosed, "the shipped code's overlapping DWTA bucket index")            \
  X(precision, std::string, "fp32", "fp32|bf16", 0, 0, kClosed,                                                       \
    "storage of the input and output layers' weights and Adam moments: fp32, or bfloat16 (half the memory and "       \
    "bytes moved; computed in fp32, stochastic rounding on store)")                                                  \
  X(lr, double, 1e-3, "", 0, kInf, kLoOpen, "Adam learning rate")                                                     \
  X(beta1, double, 0.9, "", 0, 1, kHiOpen, "Adam first-moment decay")                                                 \
  X(beta2, double, 0.999, "", 0, 1, kHiOpen, "Adam second-moment decay")                                              \
  X(eps, double, 1e-8, "", 0, kInf, kLoOpen, "Adam epsilon")                                                          \
  X(init_std, double, 0.01, "", 0, kInf, kClosed, "standard deviation of the initial weights (the original: 0.01)")   \
  X(init_bias_std, double, kNullDouble, "", 0, kInf, kNullable,                                                       \
    "standard deviation of the initial biases; null = init_std (the original draws both from one normal)")           \
  X(init_truncated, bool, false, "", 0, 0, kClosed, "redraw initial weights beyond 2 sd (TensorFlow's truncated_normal)") \
  X(seed, std::uint64_t, 0, "", 0, kInf, kClosed, "seed of every random choice (initialisation, hashing, sampling)")   \
  X(threads, int, 0, "", 0, 1024, kClosed, "OpenMP threads; 0 = OpenMP's default")                                   \
  X(hugepages, std::string, "auto", "auto|on|off", 0, 0, kClosed,                                                     \
    "back the large arrays with huge pages: auto = when available, on = required, off = never")                      \
  X(isa, std::string, "auto", "auto|avx512_bf16|avx512|avx2|scalar", 0, 0, kClosed,                                   \
    "kernel instruction set: auto = the best this CPU runs; avx512_bf16 differs from avx512 only with precision "    \
    "bf16 (its dot products round the activations to bf16)")

// A null default of a floating option (init_bias_std): resolved by the Network constructor.
constexpr double kNullDouble = std::numeric_limits<double>::quiet_NaN();

struct OptionInfo {
  const char* name;
  const char* type;  // "int", "float", "bool", "str"
  const char* choices;
  double lo, hi;
  unsigned flags;
  const char* doc;
};

// An option's allowed values, "a|b|c" -> {"a", "b", "c"} ("" -> none: any value in the range).
inline std::vector<std::string> split_choices(const char* choices) {
  std::vector<std::string> out;
  for (std::string c = choices; !c.empty();) {
    const std::size_t bar = c.find('|');
    out.push_back(c.substr(0, bar));
    c = bar == std::string::npos ? "" : c.substr(bar + 1);
  }
  return out;
}

template <class T>
constexpr const char* option_type() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, std::string>) return "str";
  else if constexpr (std::is_integral_v<T>) return "int";
  else return "float";
}

}  // namespace slide
