// Large arrays on 2 MB hugepages when reserved, else transparent hugepages (madvise), else plain pages.
// The original SLIDE aborts when hugepages are missing. Here `hugepages: auto` falls back and reports what it
// got (THP only where the kernel's mode gives it), `on` fails with a clear error, `off` asks for no huge page.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace slide {

enum class PagePolicy { Auto, On, Off };
enum class PageKind { Hugetlb = 0, Thp = 1, Plain = 2 };

PagePolicy parse_page_policy(const std::string& s);
const char* page_kind_name(PageKind k);

// Totals over every live HugeArray, by the kind of pages it got (for Network.info()).
struct PageStats {
  std::size_t bytes[3] = {0, 0, 0};
};
PageStats page_stats();
// The most bytes mapped from reserved hugepages at once in this process (Linux's VmHWM leaves them out).
std::size_t hugetlb_peak_bytes();

// Zero-initialised, 64-byte aligned, movable, not copyable. Untouched pages cost no memory (mmap).
template <class T>
class HugeArray {
 public:
  HugeArray() = default;
  HugeArray(std::size_t n, PagePolicy policy) { allocate(n, policy); }
  ~HugeArray() { release(); }
  HugeArray(const HugeArray&) = delete;
  HugeArray& operator=(const HugeArray&) = delete;
  HugeArray(HugeArray&& o) noexcept { swap(o); }
  HugeArray& operator=(HugeArray&& o) noexcept {
    if (this != &o) { release(); swap(o); }
    return *this;
  }
  void allocate(std::size_t n, PagePolicy policy);
  void release();
  T* data() { return p_; }
  const T* data() const { return p_; }
  std::size_t size() const { return n_; }
  T& operator[](std::size_t i) { return p_[i]; }
  const T& operator[](std::size_t i) const { return p_[i]; }
  PageKind kind() const { return kind_; }

 private:
  void swap(HugeArray& o) noexcept {
    std::swap(p_, o.p_); std::swap(n_, o.n_); std::swap(bytes_, o.bytes_); std::swap(kind_, o.kind_);
  }
  T* p_ = nullptr;
  std::size_t n_ = 0, bytes_ = 0;
  PageKind kind_ = PageKind::Plain;
};

// Untyped implementation shared by all HugeArray<T>.
void* huge_alloc(std::size_t bytes, PagePolicy policy, std::size_t* mapped, PageKind* kind);
void huge_free(void* p, std::size_t mapped, PageKind kind);

template <class T>
void HugeArray<T>::allocate(std::size_t n, PagePolicy policy) {
  release();
  if (n == 0) return;
  p_ = static_cast<T*>(huge_alloc(n * sizeof(T), policy, &bytes_, &kind_));
  n_ = n;
}

template <class T>
void HugeArray<T>::release() {
  if (p_) huge_free(p_, bytes_, kind_);
  p_ = nullptr;
  n_ = bytes_ = 0;
}

}  // namespace slide
