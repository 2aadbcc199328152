// XMLRepository (Extreme Classification Repository) BoW text <-> CSR arrays. Pure C++17, no pybind.
//
// Format: a header line "N D L" (points, features, labels), then N lines "l1,l2,... f:v f:v ...";
// indices are 0-based; a point without labels has an empty label field (its line starts with a space).
//
// Accepted as real files contain them: CRLF endings, a UTF-8 BOM, trailing spaces/tabs, several spaces
// or tabs between tokens, features in any order (sorted within the row here), trailing blank lines
// after the N data lines, duplicate rows.
// Labels are a set: a label repeated within a row is dropped (first occurrence kept, order otherwise
// preserved) and counted in ParsedSplit::duplicate_labels, because P@k only asks for membership.
// Everything else that is off is an error naming "<file>:<line>: <what was expected>" on one line:
// a malformed header, a line count that differs from N, a feature index >= D, a label >= L, negative
// or malformed indices, a malformed "f:v", NaN/inf or out-of-float32-range values, a feature repeated
// within a row, an empty line among the data lines, and anything after the last feature.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace slide::data {

// invalid_argument so that pybind11 turns it into a Python ValueError.
class ParseError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct ParsedSplit {
  std::vector<int64_t> indptr;        // n + 1
  std::vector<int32_t> indices;       // feature ids, sorted within each row
  std::vector<float> data;            // feature values (finite)
  std::vector<int64_t> label_indptr;  // n + 1
  std::vector<int32_t> labels;        // label ids, unique within each row, in file order
  int64_t n_features = 0;             // D from the header
  int64_t n_labels = 0;               // L from the header
  int64_t duplicate_labels = 0;       // repeated labels dropped within rows
  int64_t bytes = 0;                  // bytes read
};

// expect_features / expect_labels < 0: not checked; otherwise the header must declare exactly that.
// `display_name` is what error messages call the file (usually its path).
ParsedSplit parse_xmlrepo_file(const std::string& path, const std::string& display_name,
                               int64_t expect_features = -1, int64_t expect_labels = -1);
ParsedSplit parse_xmlrepo_buffer(const char* data, size_t size, const std::string& display_name,
                                 int64_t expect_features = -1, int64_t expect_labels = -1);

// Writes CSR rows as XMLRepository text (LF endings). decimals < 0: shortest text that reads back as
// the same float32; otherwise fixed notation with that many decimals (real files use 6).
// Throws std::invalid_argument on inconsistent arrays and std::runtime_error on I/O failure.
void write_xmlrepo_file(const std::string& path, int64_t n_rows, const int64_t* indptr, const int32_t* indices,
                        const float* data, const int64_t* label_indptr, const int32_t* labels,
                        int64_t n_features, int64_t n_labels, int decimals);

}  // namespace slide::data
