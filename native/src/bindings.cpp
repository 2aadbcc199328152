// The single pybind11 bindings file of slide._native (hnswlib style): core C++ stays pybind-free.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

PYBIND11_MODULE(_native, m) {
  m.doc() = "SLIDE native core: LSH-sparse network training (C++17, OpenMP)";

  // ---- data stage: XMLRepository parser --------------------------------------------------

  // ---- SLIDE network ----------------------------------------------------------------------
}
