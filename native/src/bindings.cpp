// The single pybind11 bindings file of slide._native (hnswlib style): core C++ stays pybind-free.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <iterator>
#include <type_traits>

#include "network.hpp"
#include "xmlrepo_parse.hpp"

namespace py = pybind11;

// ---- SLIDE network: argument conversion -------------------------------------------------------
namespace {

// A 1-D C-contiguous array of exactly dtype T, or ValueError naming it (no silent copies on the hot path).
template <class T>
std::pair<const T*, std::int64_t> checked(const py::array& a, const char* name) {
  if (!py::isinstance<py::array_t<T>>(a) || !a.dtype().is(py::dtype::of<T>()))
    throw std::invalid_argument(std::string(name) + " must be a numpy array of dtype " +
                                std::string(py::str(py::dtype::of<T>())) + ", got " + std::string(py::str(a.dtype())));
  if (a.ndim() != 1) throw std::invalid_argument(std::string(name) + " must be 1-D");
  if (!(a.flags() & py::array::c_style)) throw std::invalid_argument(std::string(name) + " must be contiguous");
  return {static_cast<const T*>(a.data()), static_cast<std::int64_t>(a.shape(0))};
}

slide::Csr csr(const py::array& indptr, const py::array& indices, const py::array* data, const char* what) {
  const std::string w(what);
  auto p = checked<std::int64_t>(indptr, (w + " indptr").c_str());
  auto i = checked<std::int32_t>(indices, (w + " indices").c_str());
  if (p.second < 1) throw std::invalid_argument(w + " indptr must have at least one entry");
  if (p.first[p.second - 1] != i.second)
    throw std::invalid_argument(w + " indptr[-1] = " + std::to_string(p.first[p.second - 1]) + " but there are " +
                                std::to_string(i.second) + " indices");
  const float* d = nullptr;
  if (data) {
    auto v = checked<float>(*data, (w + " data").c_str());
    if (v.second != i.second)
      throw std::invalid_argument(w + " data has " + std::to_string(v.second) + " values for " +
                                  std::to_string(i.second) + " indices");
    d = v.first;
  }
  return {p.first, i.first, d, p.second - 1};
}

template <class T>
T get_or(const py::dict& c, const char* key, T dflt) {
  if (!c.contains(key) || c[key].is_none()) return dflt;
  py::object v = c[key];
  // bool is an int subclass in Python; a number is not a string: say which option has the wrong type
  const bool ok = std::is_same_v<T, bool>          ? py::isinstance<py::bool_>(v)
                  : std::is_same_v<T, std::string> ? py::isinstance<py::str>(v)
                  : std::is_integral_v<T>          ? (py::isinstance<py::int_>(v) && !py::isinstance<py::bool_>(v))
                                                   : (py::isinstance<py::float_>(v) || py::isinstance<py::int_>(v));
  if (!ok)
    throw std::invalid_argument(std::string("option '") + key + "' must be " +
                                (std::is_same_v<T, bool>          ? "a bool"
                                 : std::is_same_v<T, std::string> ? "a string"
                                 : std::is_integral_v<T>          ? "an integer"
                                                                  : "a number") +
                                ", got " + std::string(py::str(py::repr(v))));
  try {
    return v.cast<T>();
  } catch (const py::cast_error&) {
    throw std::invalid_argument(std::string("option '") + key + "' is out of range: " + std::string(py::str(v)));
  }
}

slide::LayerSpec layer_spec(const py::dict& d) {
  slide::LayerSpec s;
  if (!d.contains("size")) throw std::invalid_argument("every layer needs a size");
  s.size = get_or<int>(d, "size", 0);
  s.hash = get_or<std::string>(d, "hash", s.hash);
  // K, L, range_pow: an integer, or "auto" (0) to size them from the layer and the budget (min_active)
  auto lsh_int = [&d](const char* key, int dflt) {
    if (d.contains(key) && py::isinstance<py::str>(d[key])) {
      if (d[key].cast<std::string>() != "auto")
        throw std::invalid_argument(std::string("layer option '") + key + "' must be an integer or 'auto', got '" +
                                    d[key].cast<std::string>() + "'");
      return 0;
    }
    if (!d.contains(key) || d[key].is_none()) return dflt;
    const int v = get_or<int>(d, key, dflt);
    if (v < 1) throw std::invalid_argument(std::string("layer option '") + key + "' must be >= 1 or 'auto'");
    return v;
  };
  s.K = lsh_int("K", s.K);
  s.L = lsh_int("L", s.L);
  s.range_pow = lsh_int("range_pow", s.range_pow);
  s.sparsity = get_or<double>(d, "sparsity", s.sparsity);
  for (auto item : d) {
    const std::string k = py::str(item.first);
    if (k != "size" && k != "hash" && k != "K" && k != "L" && k != "range_pow" && k != "sparsity")
      throw std::invalid_argument("unknown layer option '" + k + "' (expected size, hash, K, L, range_pow, sparsity)");
  }
  return s;
}

py::dict layer_dict(const slide::LayerSpec& s) {
  py::dict d;
  d["hash"] = s.hash;
  auto value = [](int v) { return v ? py::object(py::int_(v)) : py::object(py::str("auto")); };
  d["K"] = value(s.K);
  d["L"] = value(s.L);
  d["range_pow"] = value(s.range_pow);
  d["sparsity"] = s.sparsity;
  return d;
}

slide::NetConfig net_config(const py::dict& c) {
  for (auto item : c) {
    const std::string k = py::str(item.first);
    const auto& opts = slide::network_options();
    if (k != "n_features" && k != "layers" &&
        std::none_of(opts.begin(), opts.end(), [&k](const slide::OptionInfo& o) { return k == o.name; }))
      throw std::invalid_argument("unknown network option '" + k + "'");
  }
  slide::NetConfig n;
  if (!c.contains("n_features") || !c.contains("layers")) throw std::invalid_argument("config needs n_features and layers");
  n.n_features = get_or<std::int64_t>(c, "n_features", 0);
  const py::list layers = c["layers"].cast<py::list>();
  for (std::size_t i = 0; i < layers.size(); ++i)
    n.layers.push_back(layer_spec(layers[i].cast<py::dict>()));
#define SLIDE_OPTION_READ(name, T, dflt, choices, lo, hi, flags, doc) n.name = get_or<T>(c, #name, n.name);
  SLIDE_NETWORK_OPTIONS(SLIDE_OPTION_READ)
#undef SLIDE_OPTION_READ
  return n;
}

}  // namespace


PYBIND11_MODULE(_native, m) {
  m.doc() = "SLIDE native core: LSH-sparse network training (C++17, OpenMP)";

  // ---- data stage: XMLRepository parser --------------------------------------------------
  {
    namespace sd = slide::data;
    // Hands a std::vector to numpy without a copy: a capsule owns the moved-from vector.
    auto to_numpy = [](auto&& vec) {
      using V = std::decay_t<decltype(vec)>;
      auto* owned = new V(std::move(vec));
      py::capsule free_when_done(owned, [](void* p) { delete static_cast<V*>(p); });
      return py::array_t<typename V::value_type>(static_cast<py::ssize_t>(owned->size()), owned->data(),
                                                 free_when_done);
    };
    auto to_dict = [to_numpy](sd::ParsedSplit&& r) {
      py::dict d;
      d["indptr"] = to_numpy(std::move(r.indptr));
      d["indices"] = to_numpy(std::move(r.indices));
      d["data"] = to_numpy(std::move(r.data));
      d["label_indptr"] = to_numpy(std::move(r.label_indptr));
      d["labels"] = to_numpy(std::move(r.labels));
      d["n_features"] = r.n_features;
      d["n_labels"] = r.n_labels;
      d["duplicate_labels"] = r.duplicate_labels;
      d["bytes"] = r.bytes;
      return d;
    };
    m.def(
        "parse_xmlrepo",
        [to_dict](const std::string& path, const std::string& name, int64_t n_features, int64_t n_labels) {
          sd::ParsedSplit r;
          {
            py::gil_scoped_release nogil;
            r = sd::parse_xmlrepo_file(path, name, n_features, n_labels);
          }
          return to_dict(std::move(r));
        },
        py::arg("path"), py::arg("name"), py::arg("n_features") = -1, py::arg("n_labels") = -1,
        "Parse an XMLRepository text file into CSR arrays (dict). Errors: ValueError '<name>:<line>: ...'.\n"
        "n_features/n_labels >= 0 must equal the header's D/L.");
    m.def(
        "parse_xmlrepo_bytes",
        [to_dict](const py::bytes& text, const std::string& name, int64_t n_features, int64_t n_labels) {
          char* buf = nullptr;
          Py_ssize_t len = 0;
          if (PyBytes_AsStringAndSize(text.ptr(), &buf, &len) != 0) throw py::error_already_set();
          sd::ParsedSplit r;
          {
            py::gil_scoped_release nogil;  // `text` is immutable and referenced by the caller
            r = sd::parse_xmlrepo_buffer(buf, static_cast<size_t>(len), name, n_features, n_labels);
          }
          return to_dict(std::move(r));
        },
        py::arg("text"), py::arg("name"), py::arg("n_features") = -1, py::arg("n_labels") = -1,
        "parse_xmlrepo on in-memory text (tests, fuzzing).");
    using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
    using I32 = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
    using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
    m.def(
        "write_xmlrepo",
        [](const std::string& path, const I64& indptr, const I32& indices, const F32& data, const I64& label_indptr,
           const I32& labels, int64_t n_features, int64_t n_labels, int decimals) {
          const auto n = static_cast<int64_t>(indptr.size()) - 1;
          if (n < 0 || label_indptr.size() != indptr.size())
            throw std::invalid_argument("write_xmlrepo: indptr and label_indptr must have the same length >= 1");
          if (indptr.at(n) != static_cast<int64_t>(indices.size()) || indices.size() != data.size() ||
              label_indptr.at(n) != static_cast<int64_t>(labels.size()))
            throw std::invalid_argument("write_xmlrepo: indptr[-1] must equal the number of entries");
          py::gil_scoped_release nogil;
          sd::write_xmlrepo_file(path, n, indptr.data(), indices.data(), data.data(), label_indptr.data(),
                                 labels.data(), n_features, n_labels, decimals);
        },
        py::arg("path"), py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("label_indptr"),
        py::arg("labels"), py::arg("n_features"), py::arg("n_labels"), py::arg("decimals") = -1,
        "Write CSR rows as XMLRepository text to `path` (not atomic: slide.data.xmlrepo wraps it).");
  }


  // ---- SLIDE network ----------------------------------------------------------------------
  {
    using slide::Network;
    // The option table (options.hpp): name, type, default, choices, range, doc of every option.
    const slide::NetConfig defaults;
    py::dict dflt;
#define SLIDE_OPTION_DEFAULT(name, T, d, choices, lo, hi, flags, doc) dflt[#name] = py::cast(defaults.name);
    SLIDE_NETWORK_OPTIONS(SLIDE_OPTION_DEFAULT)
#undef SLIDE_OPTION_DEFAULT
    py::list table;
    for (const slide::OptionInfo& o : slide::network_options()) {
      py::dict row;
      row["name"] = o.name;
      row["type"] = o.type;
      py::object d = dflt[o.name];
      if (py::isinstance<py::float_>(d) && std::isnan(d.cast<double>())) d = py::none();
      row["default"] = d;
      row["choices"] = py::cast(slide::split_choices(o.choices));
      const bool numeric = std::string(o.type) == "int" || std::string(o.type) == "float";
      auto bound = [&o](double v) {
        return std::string(o.type) == "int" ? py::object(py::int_(static_cast<long long>(v))) : py::object(py::float_(v));
      };
      row["minimum"] = numeric ? bound(o.lo) : py::none();
      row["maximum"] = numeric && o.hi != slide::kInf ? bound(o.hi) : py::none();
      row["exclusive_minimum"] = static_cast<bool>(o.flags & slide::kLoOpen);
      row["exclusive_maximum"] = static_cast<bool>(o.flags & slide::kHiOpen);
      row["nullable"] = static_cast<bool>(o.flags & slide::kNullable);
      row["doc"] = o.doc;
      table.append(row);
    }
    m.attr("OPTIONS") = py::tuple(table);
    m.attr("DEFAULT_LAYERS") = py::make_tuple(layer_dict(slide::default_layer(false)), layer_dict(slide::default_layer(true)));
    py::list names;
    names.append("n_features");
    names.append("layers");
    for (const slide::OptionInfo& o : slide::network_options()) names.append(o.name);
    m.attr("NETWORK_OPTIONS") = py::tuple(names);
    m.def("best_isa", &slide::best_isa, "Best kernel level this CPU runs: avx512_bf16, avx512, avx2 or scalar.");
    m.def("resolve_lsh",
          [](const py::dict& spec, int min_active) {
            slide::LayerSpec s = layer_spec(spec);
            slide::resolve_auto(s, min_active);
            return py::make_tuple(s.K, s.L, s.range_pow);
          },
          py::arg("layer"), py::arg("min_active"),
          "(K, L, range_pow) of a layer spec (with its size) once 'auto' values are resolved, as Network does.");
    m.def("page_stats", [] {
      const slide::PageStats p = slide::page_stats();
      py::dict d;
      d["hugetlb"] = p.bytes[0];
      d["thp"] = p.bytes[1];
      d["plain"] = p.bytes[2];
      return d;
    }, "Bytes of live large arrays by page kind (hugetlb, thp = madvise'd, plain).");
    m.def("hugetlb_peak_bytes", &slide::hugetlb_peak_bytes,
          "The most bytes this process has had mapped from reserved hugepages at once (not in VmHWM).");

    // LSH building blocks, exposed for tests and experiments.
    py::class_<slide::HashFamily>(m, "HashFamily", "K*L LSH functions (dwta | srp) over dense dim-vectors.")
        .def(py::init([](const std::string& kind, int K, int L, int dim, int range_pow, bool compat_shift,
                         std::uint64_t seed) {
               return slide::HashFamily(slide::parse_hash_kind(kind), K, L, dim, range_pow, compat_shift, seed);
             }),
             py::arg("kind"), py::arg("K"), py::arg("L"), py::arg("dim"), py::arg("range_pow"),
             py::arg("compat_shift") = false, py::arg("seed") = 0)
        .def("codes",
             [](const slide::HashFamily& h, const py::array& vec, const std::string& isa) {
               const auto v = checked<float>(vec, "vector");
               if (v.second != h.dim())
                 throw std::invalid_argument("vector has " + std::to_string(v.second) + " values, the hash family " +
                                             std::to_string(h.dim()));
               std::vector<std::int32_t> scratch(h.scratch_size());
               py::array_t<std::uint32_t> out(h.L());
               h.bucket_codes(slide::select_kernels(isa), v.first, out.mutable_data(), scratch.data());
               return out;
             },
             py::arg("vector"), py::arg("isa") = "auto", "Bucket index of `vector` in each of the L tables.")
        .def("codes_batch",
             [](const slide::HashFamily& h, const py::array& mat, const std::string& isa) {
               // through the blocked rehashing kernels, as Network does
               if (!py::isinstance<py::array_t<float>>(mat) || !mat.dtype().is(py::dtype::of<float>()) ||
                   mat.ndim() != 2 || !(mat.flags() & py::array::c_style))
                 throw std::invalid_argument("matrix must be a C-contiguous 2-D float32 array");
               const auto n = static_cast<std::int64_t>(mat.shape(0));
               const int dim = static_cast<int>(mat.shape(1));
               if (dim != h.dim())
                 throw std::invalid_argument("matrix rows have " + std::to_string(dim) + " values, the hash family " +
                                             std::to_string(h.dim()));
               const float* m = static_cast<const float*>(mat.data());
               const slide::Kernels& k = slide::select_kernels(isa);
               py::array_t<std::uint32_t> out({static_cast<py::ssize_t>(h.L()), static_cast<py::ssize_t>(n)});
               std::uint32_t* o = out.mutable_data();
               constexpr std::int64_t kRows = 64;
               for (std::int64_t i = 0; i < n; i += kRows)
                 h.codes_rows(k, m + i * dim, static_cast<int>(std::min(kRows, n - i)), o + i, n);
               return out;
             },
             py::arg("matrix"), py::arg("isa") = "auto",
             "Codes of every row of a (n, dim) matrix as an (L, n) array, via the batched rehash kernel.")
        .def("set_centroids",
             [](slide::HashFamily& h, const py::array& mat) {
               if (h.kind() != slide::HashKind::Kmeans) throw std::invalid_argument("set_centroids: not a kmeans family");
               if (!py::isinstance<py::array_t<float>>(mat) || !mat.dtype().is(py::dtype::of<float>()) ||
                   mat.ndim() != 2 || !(mat.flags() & py::array::c_style) || mat.shape(0) != h.cells() ||
                   mat.shape(1) != h.dim())
                 throw std::invalid_argument("centroids must be a C-contiguous float32 array of shape (" +
                                             std::to_string(h.cells()) + ", " + std::to_string(h.dim()) + ")");
               h.set_centroids(static_cast<const float*>(mat.data()));
             },
             py::arg("centroids"), "k-means: set the cells' centroids (rows are normalised).")
        .def_property_readonly("centroids", [](const slide::HashFamily& h) {
               py::array_t<float> out({static_cast<py::ssize_t>(h.cells()), static_cast<py::ssize_t>(h.dim())});
               std::copy(h.centroids().begin(), h.centroids().end(), out.mutable_data());
               return out;
             });

    py::class_<slide::HashTables>(m, "HashTables", "L tables of fixed-capacity buckets (fifo | reservoir).")
        .def(py::init([](int L, int range_pow, int capacity, const std::string& replacement) {
               return slide::HashTables(L, range_pow, capacity, slide::parse_replacement(replacement),
                                        slide::PagePolicy::Off);
             }),
             py::arg("L"), py::arg("range_pow"), py::arg("capacity"), py::arg("replacement") = "fifo")
        .def("build",
             [](slide::HashTables& t, const py::array& codes, const py::array& order, std::uint64_t seed) {
               const auto c = checked<std::uint32_t>(codes, "codes (table-major, L*N)");
               const auto o = checked<std::int32_t>(order, "order");
               const std::int64_t N = o.second;
               if (c.second != N * t.L()) throw std::invalid_argument("codes must have L * len(order) entries");
               for (std::int64_t i = 0; i < c.second; ++i)
                 if (c.first[i] >= static_cast<std::uint64_t>(t.nbuckets()))
                   throw std::invalid_argument("code outside [0, 2^range_pow)");
               std::vector<char> seen(N, 0);
               for (std::int64_t i = 0; i < N; ++i) {
                 if (o.first[i] < 0 || o.first[i] >= N || seen[o.first[i]])
                   throw std::invalid_argument("order must be a permutation of 0..N-1");
                 seen[o.first[i]] = 1;
               }
               t.build(c.first, N, o.first, seed, 1);
             },
             py::arg("codes"), py::arg("order"), py::arg("seed") = 0,
             "Fill from codes[t*N + i] = bucket of the i-th inserted neuron order[i] in table t.")
        .def("bucket",
             [](const slide::HashTables& t, int table, std::uint32_t b) {
               if (table < 0 || table >= t.L() || b >= t.nbuckets()) throw std::invalid_argument("no such bucket");
               int len;
               const std::int32_t* ids = t.bucket(table, b, &len);
               return py::array_t<std::int32_t>(len, ids);
             },
             py::arg("table"), py::arg("bucket"));

    py::class_<Network>(m, "Network", "The native SLIDE network; use slide.Network from Python.")
        .def(py::init([](const py::dict& c) { return std::make_unique<Network>(net_config(c)); }), py::arg("config"))
        .def("train_batch",
             [](Network& net, const py::array& indptr, const py::array& indices, const py::array& data,
                const py::array& label_indptr, const py::array& labels) {
               slide::Csr x = csr(indptr, indices, &data, "features");
               slide::Csr y = csr(label_indptr, labels, nullptr, "labels");
               py::gil_scoped_release nogil;
               return net.train_batch(x, y);
             },
             py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("label_indptr"), py::arg("labels"),
             "One Adam step on a CSR batch; returns its mean cross-entropy.")
        .def("predict_topk",
             [](Network& net, const py::array& indptr, const py::array& indices, const py::array& data,
                const py::int_& k_arg, bool sparse) {
               slide::Csr x = csr(indptr, indices, &data, "features");
               // a Python int of any size: out of range is a ValueError, not pybind's TypeError
               const long long k_ll = PyLong_AsLongLong(k_arg.ptr());
               const bool overflow = k_ll == -1 && PyErr_Occurred();
               if (overflow) PyErr_Clear();
               if (overflow || k_ll < 1 || k_ll > net.n_labels())
                 throw std::invalid_argument("k must be in [1, " + std::to_string(net.n_labels()) + "], got " +
                                             py::str(k_arg).cast<std::string>());
               const int k = static_cast<int>(k_ll);
               py::array_t<std::int32_t> ids({static_cast<py::ssize_t>(x.rows), static_cast<py::ssize_t>(k)});
               py::array_t<float> scores({static_cast<py::ssize_t>(x.rows), static_cast<py::ssize_t>(k)});
               std::int32_t* pi = ids.mutable_data();
               float* ps = scores.mutable_data();
               {
                 py::gil_scoped_release nogil;
                 net.predict_topk(x, k, sparse, pi, ps);
               }
               return py::make_tuple(ids, scores);
             },
             py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("k"), py::arg("sparse") = false,
             "Top-k label ids and scores per row, best first; sparse=True scores only LSH-retrieved labels.")
        .def("active_set",
             [](Network& net, const py::array& indptr, const py::array& indices, const py::array& data,
                std::int64_t row, const py::array& labels, std::uint64_t salt, bool pad) {
               slide::Csr x = csr(indptr, indices, &data, "features");
               const auto lab = checked<std::int32_t>(labels, "labels");
               std::vector<std::int32_t> a;
               {
                 py::gil_scoped_release nogil;
                 a = net.active_set(x, row, lab.first, static_cast<int>(lab.second), salt, pad);
               }
               return py::array_t<std::int32_t>(static_cast<py::ssize_t>(a.size()), a.data());
             },
             py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("row"), py::arg("labels"),
             py::arg("salt") = 0, py::arg("pad") = true,
             "The output layer's active neurons for one row, as training selects them (pad=False: labels and "
             "LSH-retrieved neurons only).")
        .def("lsh_stats",
             [](Network& net, const py::array& indptr, const py::array& indices, const py::array& data, int k,
                int budget) {
               slide::Csr x = csr(indptr, indices, &data, "features");
               if (budget < 0) throw std::invalid_argument("budget must be >= 0");
               slide::LshStats s;
               {
                 py::gil_scoped_release nogil;
                 s = net.lsh_stats(x, k, budget);
               }
               py::dict d;
               d["rows"] = s.rows;
               d["candidates"] = s.candidates;
               d["recall"] = s.recall;
               d["top1"] = s.top1;
               d["k"] = k;
               return d;
             },
             py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("k") = 20, py::arg("budget") = 0,
             "Retrieval quality of the output layer's tables on these rows (no labels, no random neurons): "
             "mean candidates per row, recall of each row's dense top-k by score, share of rows whose top-1 is found.")
        .def_property_readonly("active_counts", [](const Network& net) {
               const slide::ActiveCounts& a = net.active_counts();
               py::dict d;
               d["samples"] = a.samples;
               d["labels"] = a.labels;
               d["retrieved"] = a.retrieved;
               d["random"] = a.random;
               return d;
             }, "Output-layer active neurons summed over the samples trained so far, by origin.")
        .def("output_cells", [](const Network& net) {
               py::list out;
               for (const auto& c : net.output_cells()) out.append(py::array_t<std::int32_t>(c.size(), c.data()));
               return out;
             }, "k-means output layer: the neuron ids of each cell (the table's order); raises for other layers.")
        .def("hot_neurons", [](Network& net, bool inference) {
               std::vector<std::int32_t> ids;
               {
                 py::gil_scoped_release nogil;
                 ids = net.hot_neurons(inference);
               }
               return py::array_t<std::int32_t>(static_cast<py::ssize_t>(ids.size()), ids.data());
             }, py::arg("inference") = false,
             "hot_neurons: the neuron ids of the list training scores for every sample (chosen at the last rehash, "
             "best first), or with inference=True the list sparse inference uses (chosen again on the current "
             "weights when the network has trained since); empty when off or before the first rehash.")
        .def_property_readonly("output_lsh", [](const Network& net) {
               const slide::LayerSpec& s = net.output_spec();
               py::dict d;
               d["hash"] = s.hash;
               d["K"] = s.K;
               d["L"] = s.L;
               d["range_pow"] = s.range_pow;
               return d;
             }, "The output layer's LSH settings after resolving 'auto'.")
        .def("save", [](Network& net, const std::string& path, const std::string& meta) {
               py::gil_scoped_release nogil;
               net.save(path, meta);
             }, py::arg("path"), py::arg("meta") = "")
        .def("load", [](Network& net, const std::string& path) {
               py::gil_scoped_release nogil;
               return net.load(path);
             }, py::arg("path"), "Load state saved by an identically configured network; returns its meta string.")
        .def_static("read_meta", &Network::read_meta, py::arg("path"))
        .def("weights", [](Network& net, int layer) {
               if (layer < 0 || layer >= net.num_layers()) throw std::invalid_argument("no such layer");
               std::int64_t r, c;
               net.weight_shape(layer, &r, &c);
               py::array_t<float> out({static_cast<py::ssize_t>(r), static_cast<py::ssize_t>(c)});
               net.copy_weights(layer, out.mutable_data());
               return out;
             }, py::arg("layer"), "Copy of a layer's weights (layer 0: n_features x size; others: size x in_dim).")
        .def("bias", [](Network& net, int layer) {
               if (layer < 0 || layer >= net.num_layers()) throw std::invalid_argument("no such layer");
               py::array_t<float> out(net.config().layers[layer].size);
               net.copy_bias(layer, out.mutable_data());
               return out;
             }, py::arg("layer"))
        .def_property_readonly("isa", &Network::isa)
        .def_property_readonly("threads", &Network::threads)
        .def_property_readonly("step", &Network::step)
        .def_property_readonly("samples_seen", &Network::samples_seen)
        .def_property_readonly("rehashes", &Network::rehashes)
        .def_property_readonly("rebuilds", &Network::rebuilds)
        .def_property_readonly("n_labels", &Network::n_labels)
        .def_property_readonly("times", [](const Network& net) {
               const slide::PhaseTimes& t = net.times();
               py::dict d;
               d["hash"] = t.hash;
               d["forward"] = t.forward;
               d["backward"] = t.backward;
               d["update"] = t.update;
               d["rehash"] = t.rehash;
               return d;
             }, "Cumulative wall seconds per phase of training.")
        .def_property_readonly("table_stats", [](const Network& net) {
               std::int64_t nonempty, stored;
               net.table_stats(&nonempty, &stored);
               return py::make_tuple(nonempty, stored);
             }, "(non-empty buckets, stored ids) over the output layer's tables.");
  }
}
