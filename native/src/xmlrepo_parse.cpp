// XMLRepository text parser and writer (see xmlrepo_parse.hpp for the accepted format and the errors).
// One pass over the text, no per-token allocation; numbers via std::from_chars (locale-free).
#include "xmlrepo_parse.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

namespace slide::data {
namespace {

constexpr uint64_t kIndexCap = uint64_t(1) << 40;  // stop accumulating digits beyond this (overflow guard)

inline bool is_space(char c) { return c == ' ' || c == '\t'; }
inline bool is_digit(char c) { return static_cast<unsigned char>(c - '0') < 10; }

// A short, printable, single-line excerpt of the offending text for error messages.
std::string quote(const char* b, const char* e) {
  std::string out = "'";
  size_t n = 0;
  for (const char* p = b; p < e; ++p, ++n) {
    if (n == 40) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char tmp[8];
      std::snprintf(tmp, sizeof tmp, "\\x%02x", c);
      out += tmp;
    }
  }
  return out + "'";
}

const char* token_end(const char* p, const char* e) {
  while (p < e && !is_space(*p)) ++p;
  return p;
}

// Line sources: next(b, e) yields [b, e) without the '\n'; false at the end of the input.
class BufferLines {
 public:
  BufferLines(const char* d, size_t n) : p_(d), end_(d + n), size_(n) {}
  bool next(const char*& b, const char*& e) {
    if (p_ >= end_) return false;
    const auto* nl = static_cast<const char*>(std::memchr(p_, '\n', static_cast<size_t>(end_ - p_)));
    b = p_;
    e = nl ? nl : end_;
    p_ = nl ? nl + 1 : end_;
    return true;
  }
  int64_t bytes() const { return static_cast<int64_t>(size_); }

 private:
  const char* p_;
  const char* end_;
  size_t size_;
};

// Reads the file in 4 MiB blocks (memory stays flat for multi-GB files); grows for longer lines.
class FileLines {
 public:
  FileLines(FILE* f, std::string name) : f_(f), name_(std::move(name)), buf_(size_t(1) << 22) {}
  bool next(const char*& b, const char*& e) {
    for (;;) {
      char* base = buf_.data();
      const auto* nl = static_cast<const char*>(std::memchr(base + scanned_, '\n', end_ - scanned_));
      if (nl) {
        b = base + begin_;
        e = nl;
        begin_ = scanned_ = static_cast<size_t>(nl - base) + 1;
        return true;
      }
      scanned_ = end_;
      if (eof_) {
        if (begin_ == end_) return false;
        b = base + begin_;
        e = base + end_;
        begin_ = scanned_ = end_;
        return true;
      }
      const size_t keep = end_ - begin_;  // the partial line moves to the front
      if (begin_ > 0 && keep > 0) std::memmove(base, base + begin_, keep);
      begin_ = 0;
      scanned_ = end_ = keep;
      if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);
      const size_t got = std::fread(buf_.data() + end_, 1, buf_.size() - end_, f_);
      if (got == 0) {
        if (std::ferror(f_)) throw std::runtime_error(name_ + ": read error: " + std::strerror(errno));
        eof_ = true;
      }
      end_ += got;
      bytes_ += static_cast<int64_t>(got);
    }
  }
  int64_t bytes() const { return bytes_; }

 private:
  FILE* f_;
  std::string name_;
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0, scanned_ = 0;
  bool eof_ = false;
  int64_t bytes_ = 0;
};

class Parser {
 public:
  Parser(std::string name, int64_t expect_features, int64_t expect_labels)
      : name_(std::move(name)), expect_features_(expect_features), expect_labels_(expect_labels) {}

  // Reserve the value arrays from the input size so that they are not regrown and copied (~15 bytes per
  // "index:value" in real files; labels are rarer). Untouched capacity costs address space only.
  void reserve_for(size_t bytes) {
    out_.indices.reserve(bytes / 12);
    out_.data.reserve(bytes / 12);
    out_.labels.reserve(bytes / 48);
  }

  template <class Lines>
  ParsedSplit run(Lines& lines) {
    const char *b, *e;
    if (!lines.next(b, e)) fail(1, "empty file: expected a header 'N D L' (numbers of points, features, labels)");
    parse_header(b, e);
    out_.indptr.reserve(static_cast<size_t>(std::min<int64_t>(n_rows_, 1 << 22)) + 1);
    out_.label_indptr.reserve(out_.indptr.capacity());
    out_.indptr.push_back(0);
    out_.label_indptr.push_back(0);
    int64_t line = 1, rows = 0;
    while (lines.next(b, e)) {
      ++line;
      if (rows == n_rows_) {
        // Only blank lines may follow the N data lines (editors and `echo >>` add them).
        const char* q = b;
        while (q < e && (is_space(*q) || *q == '\r')) ++q;
        if (q != e)
          fail(line, "more data lines than the N=" + std::to_string(n_rows_) + " the header declares (unexpected " +
                         quote(b, e) + ")");
        continue;
      }
      parse_row(b, e, line);
      ++rows;
    }
    if (rows < n_rows_)
      fail(line + 1, "the header declares N=" + std::to_string(n_rows_) + " data lines but the file ends after " +
                         std::to_string(rows));
    out_.n_features = n_features_;
    out_.n_labels = n_labels_;
    out_.bytes = lines.bytes();
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(int64_t line, const std::string& what) const {
    throw ParseError(name_ + ":" + std::to_string(line) + ": " + what);
  }

  // Reads an unsigned decimal at p (advancing p); false if there is no digit. Values beyond
  // kIndexCap saturate so that callers report them as out of range instead of wrapping around.
  static bool read_uint(const char*& p, const char* e, uint64_t& v) {
    const char* start = p;
    v = 0;
    while (p < e && is_digit(*p)) {
      if (v < kIndexCap) v = v * 10 + static_cast<uint64_t>(*p - '0');
      ++p;
    }
    return p != start;
  }

  void parse_header(const char* b, const char* e) {
    if (e - b >= 3 && std::memcmp(b, "\xEF\xBB\xBF", 3) == 0) b += 3;  // UTF-8 BOM
    if (e > b && e[-1] == '\r') --e;
    const char* p = b;
    uint64_t v[3];
    std::string text[3];  // as written: values beyond kIndexCap saturate in v
    for (int i = 0; i < 3; ++i) {
      while (p < e && is_space(*p)) ++p;
      const char* start = p;
      const bool ok = read_uint(p, e, v[i]);
      text[i].assign(start, p);
      if (!ok || (p < e && !is_space(*p)))
        fail(1, "malformed header " + quote(b, e) + ": expected 'N D L' (numbers of points, features, labels)");
    }
    while (p < e && is_space(*p)) ++p;
    if (p != e)
      fail(1, "malformed header " + quote(b, e) + ": expected exactly 'N D L' (numbers of points, features, labels)");
    const uint64_t max_dim = static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
    if (v[0] >= kIndexCap) fail(1, "header declares an impossible number of points " + quote(b, e));
    if (v[1] < 1 || v[1] > max_dim) fail(1, "header declares D=" + text[1] + " features; expected 1..2^31-1");
    if (v[2] < 1 || v[2] > max_dim) fail(1, "header declares L=" + text[2] + " labels; expected 1..2^31-1");
    n_rows_ = static_cast<int64_t>(v[0]);
    n_features_ = static_cast<int64_t>(v[1]);
    n_labels_ = static_cast<int64_t>(v[2]);
    if (expect_features_ >= 0 && n_features_ != expect_features_)
      fail(1, "header declares D=" + std::to_string(n_features_) + " features but n_features=" +
                  std::to_string(expect_features_) + " was expected (dataset.n_features)");
    if (expect_labels_ >= 0 && n_labels_ != expect_labels_)
      fail(1, "header declares L=" + std::to_string(n_labels_) + " labels but n_labels=" +
                  std::to_string(expect_labels_) + " was expected (dataset.n_labels)");
  }

  void parse_labels(const char* b, const char* e, int64_t line) {
    const size_t first = out_.labels.size();
    const char* p = b;
    for (;;) {
      const char* t = p;
      uint64_t v;
      const bool has_digits = read_uint(p, e, v);
      if (p < e && *p != ',') {
        if (std::memchr(b, ':', static_cast<size_t>(e - b)))
          fail(line, "malformed label list " + quote(b, e) +
                         ": expected comma-separated labels (a point without labels is a line starting with a space)");
        if (*t == '-') fail(line, "negative label " + quote(t, std::find(t, e, ',')) + ": labels are 0-based");
        fail(line, "malformed label " + quote(t, std::find(t, e, ',')) + " in " + quote(b, e) +
                       ": expected a non-negative integer");
      }
      if (!has_digits)
        fail(line, "empty label in label list " + quote(b, e) + ": expected comma-separated non-negative integers");
      if (v >= static_cast<uint64_t>(n_labels_))
        fail(line, "label " + quote(t, p) + " out of range: the header declares L=" + std::to_string(n_labels_) +
                       " labels (0.." + std::to_string(n_labels_ - 1) + ")");
      out_.labels.push_back(static_cast<int32_t>(v));
      if (p == e) break;
      ++p;  // ','
      if (p == e) fail(line, "label list " + quote(b, e) + " ends with ','; expected a label after it");
    }
    dedupe_labels(first);
  }

  // Labels are a set: drop repeats within the row, keeping the first occurrence and the file order.
  void dedupe_labels(size_t first) {
    int32_t* lab = out_.labels.data() + first;
    const size_t k = out_.labels.size() - first;
    if (k < 2) return;
    size_t w = 1;
    if (k <= 64) {
      for (size_t i = 1; i < k; ++i) {
        if (std::find(lab, lab + w, lab[i]) == lab + w) lab[w++] = lab[i];
      }
    } else {
      label_scratch_.clear();
      for (size_t i = 0; i < k; ++i) label_scratch_.emplace_back(lab[i], i);
      std::sort(label_scratch_.begin(), label_scratch_.end());  // by label, then position: keep a run's first
      keep_.assign(k, 1);
      for (size_t i = 1; i < k; ++i)
        if (label_scratch_[i].first == label_scratch_[i - 1].first) keep_[label_scratch_[i].second] = 0;
      w = 0;
      for (size_t i = 0; i < k; ++i)
        if (keep_[i]) lab[w++] = lab[i];
    }
    out_.duplicate_labels += static_cast<int64_t>(k - w);
    out_.labels.resize(first + w);
  }

  void parse_row(const char* b, const char* e, int64_t line) {
    if (e > b && e[-1] == '\r') --e;
    if (b == e)
      fail(line, "empty line: expected 'labels features' (a point without labels is a line starting with a space)");
    const char* p = token_end(b, e);
    if (p > b) parse_labels(b, p, line);

    const size_t first = out_.indices.size();
    bool sorted = true;
    int64_t prev = -1;
    for (;;) {
      while (p < e && is_space(*p)) ++p;
      if (p == e) break;
      const char* t = p;
      uint64_t idx;
      if (*p == '-') fail(line, "negative feature index in " + quote(t, token_end(t, e)) + ": indices are 0-based");
      if (!read_uint(p, e, idx) || p == e || *p != ':')
        fail(line, "malformed feature " + quote(t, token_end(t, e)) + ": expected 'index:value'");
      if (idx >= static_cast<uint64_t>(n_features_))
        fail(line, "feature index " + quote(t, p) + " out of range: the header declares D=" +
                       std::to_string(n_features_) + " features (0.." + std::to_string(n_features_ - 1) + ")");
      const char* v = ++p;
      p = token_end(p, e);
      float x;
      const auto r = std::from_chars(v, p, x);
      if (r.ec == std::errc::result_out_of_range)
        fail(line, "value " + quote(v, p) + " of feature " + std::to_string(idx) + " is out of float32 range");
      if (r.ec != std::errc() || r.ptr != p || v == p)
        fail(line, "malformed feature " + quote(t, p) + ": expected 'index:value' with a decimal number value");
      if (!std::isfinite(x))
        fail(line, "non-finite value " + quote(v, p) + " of feature " + std::to_string(idx) + ": expected a finite number");
      if (static_cast<int64_t>(idx) <= prev) sorted = false;
      prev = static_cast<int64_t>(idx);
      out_.indices.push_back(static_cast<int32_t>(idx));
      out_.data.push_back(x);
    }
    if (!sorted) sort_row(first, line);
    out_.indptr.push_back(static_cast<int64_t>(out_.indices.size()));
    out_.label_indptr.push_back(static_cast<int64_t>(out_.labels.size()));
  }

  // Features may come in any order; CSR consumers want them sorted, and a repeat is ambiguous (sum? last?).
  void sort_row(size_t first, int64_t line) {
    const size_t k = out_.indices.size() - first;
    scratch_.resize(k);
    for (size_t i = 0; i < k; ++i) scratch_[i] = {out_.indices[first + i], out_.data[first + i]};
    std::sort(scratch_.begin(), scratch_.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < k; ++i) {
      if (i > 0 && scratch_[i].first == scratch_[i - 1].first)
        fail(line, "duplicate feature index " + std::to_string(scratch_[i].first) +
                       " in the row: each feature may appear once per line");
      out_.indices[first + i] = scratch_[i].first;
      out_.data[first + i] = scratch_[i].second;
    }
  }

  std::string name_;
  int64_t expect_features_, expect_labels_;
  int64_t n_rows_ = 0, n_features_ = 0, n_labels_ = 0;
  ParsedSplit out_;
  std::vector<std::pair<int32_t, float>> scratch_;
  std::vector<std::pair<int32_t, size_t>> label_scratch_;
  std::vector<char> keep_;
};

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

}  // namespace

ParsedSplit parse_xmlrepo_file(const std::string& path, const std::string& display_name, int64_t expect_features,
                               int64_t expect_labels) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw std::runtime_error(display_name + ": cannot open: " + std::strerror(errno));
  FileLines lines(f.get(), display_name);
  Parser parser(display_name, expect_features, expect_labels);
  if (std::fseek(f.get(), 0, SEEK_END) == 0) {
    const long size = std::ftell(f.get());
    if (size > 0) parser.reserve_for(static_cast<size_t>(size));
    std::rewind(f.get());
  }
  return parser.run(lines);
}

ParsedSplit parse_xmlrepo_buffer(const char* data, size_t size, const std::string& display_name,
                                 int64_t expect_features, int64_t expect_labels) {
  BufferLines lines(data, size);
  return Parser(display_name, expect_features, expect_labels).run(lines);
}

void write_xmlrepo_file(const std::string& path, int64_t n_rows, const int64_t* indptr, const int32_t* indices,
                        const float* data, const int64_t* label_indptr, const int32_t* labels, int64_t n_features,
                        int64_t n_labels, int decimals) {
  if (n_rows < 0 || n_features < 1 || n_labels < 1) throw std::invalid_argument("write_xmlrepo: bad dimensions");
  if (decimals > 12) throw std::invalid_argument("write_xmlrepo: at most 12 decimals");
  if (indptr[0] != 0 || label_indptr[0] != 0) throw std::invalid_argument("write_xmlrepo: indptr must start at 0");
  for (int64_t i = 0; i < n_rows; ++i) {
    if (indptr[i + 1] < indptr[i] || label_indptr[i + 1] < label_indptr[i])
      throw std::invalid_argument("write_xmlrepo: indptr must be non-decreasing");
  }
  for (int64_t j = 0; j < indptr[n_rows]; ++j)
    if (indices[j] < 0 || indices[j] >= n_features || !std::isfinite(data[j]))
      throw std::invalid_argument("write_xmlrepo: feature index out of range or non-finite value");
  for (int64_t j = 0; j < label_indptr[n_rows]; ++j)
    if (labels[j] < 0 || labels[j] >= n_labels) throw std::invalid_argument("write_xmlrepo: label out of range");

  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  if (!f) throw std::runtime_error(path + ": cannot create: " + std::strerror(errno));
  std::string out;
  out.reserve(size_t(1) << 23);
  auto flush = [&] {
    if (!out.empty() && std::fwrite(out.data(), 1, out.size(), f.get()) != out.size())
      throw std::runtime_error(path + ": write error: " + std::strerror(errno));
    out.clear();
  };
  char num[160];
  auto put_int = [&](int64_t v) {
    const auto r = std::to_chars(num, num + sizeof num, v);
    out.append(num, r.ptr);
  };
  put_int(n_rows);
  out += ' ';
  put_int(n_features);
  out += ' ';
  put_int(n_labels);
  out += '\n';
  for (int64_t i = 0; i < n_rows; ++i) {
    for (int64_t j = label_indptr[i]; j < label_indptr[i + 1]; ++j) {
      if (j > label_indptr[i]) out += ',';
      put_int(labels[j]);
    }
    // a point without labels starts with a space (so one with neither labels nor features is " ",
    // not an empty line, which the parser rejects)
    const bool has_labels = label_indptr[i] < label_indptr[i + 1];
    if (!has_labels) out += ' ';
    for (int64_t j = indptr[i]; j < indptr[i + 1]; ++j) {
      if (j > indptr[i] || has_labels) out += ' ';
      put_int(indices[j]);
      out += ':';
      const auto r = decimals < 0 ? std::to_chars(num, num + sizeof num, data[j])
                                  : std::to_chars(num, num + sizeof num, data[j], std::chars_format::fixed, decimals);
      out.append(num, r.ptr);
    }
    out += '\n';
    if (out.size() > (size_t(1) << 22)) flush();
  }
  flush();
  if (std::fflush(f.get()) != 0) throw std::runtime_error(path + ": write error: " + std::strerror(errno));
  FILE* raw = f.release();
  if (std::fclose(raw) != 0) throw std::runtime_error(path + ": write error: " + std::strerror(errno));
}

}  // namespace slide::data
