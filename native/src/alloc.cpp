#include "alloc.hpp"

#include <sys/mman.h>

#include <atomic>
#include <fstream>
#include <new>
#include <stdexcept>

namespace slide {

namespace {
constexpr std::size_t kHuge = std::size_t(2) << 20;
#ifdef MAP_HUGE_2MB
constexpr int kHuge2mb = MAP_HUGE_2MB;
#else
constexpr int kHuge2mb = 21 << 26;  // log2(2 MB) << MAP_HUGE_SHIFT (Linux 3.8+), for older headers
#endif
std::atomic<std::size_t> g_bytes[3];
std::atomic<std::size_t> g_hugetlb_peak{0};  // reserved hugepages are not in the process's VmHWM
std::size_t round_up(std::size_t x, std::size_t a) { return (x + a - 1) / a * a; }

// The kernel's transparent hugepage mode, read once. madvise(MADV_HUGEPAGE) succeeds under every mode, but only
// "always" and "madvise" give huge pages; under "always" the kernel also gives them unasked.
enum class Thp { Always, Madvise, Never };
Thp thp_mode() {
  static const Thp mode = [] {
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string line;
    std::getline(f, line);
    if (line.find("[always]") != std::string::npos) return Thp::Always;
    if (line.find("[madvise]") != std::string::npos) return Thp::Madvise;
    return Thp::Never;  // "[never]", or a kernel (or container) without the file
  }();
  return mode;
}
}  // namespace

PagePolicy parse_page_policy(const std::string& s) {
  if (s == "auto") return PagePolicy::Auto;
  if (s == "on") return PagePolicy::On;
  if (s == "off") return PagePolicy::Off;
  throw std::invalid_argument("hugepages must be 'auto', 'on' or 'off', got '" + s + "'");
}

const char* page_kind_name(PageKind k) {
  switch (k) {
    case PageKind::Hugetlb: return "hugetlb";
    case PageKind::Thp: return "thp";
    default: return "plain";
  }
}

std::size_t hugetlb_peak_bytes() { return g_hugetlb_peak.load(); }

PageStats page_stats() {
  PageStats s;
  for (int i = 0; i < 3; ++i) s.bytes[i] = g_bytes[i].load();
  return s;
}

void* huge_alloc(std::size_t bytes, PagePolicy policy, std::size_t* mapped, PageKind* kind) {
  void* p = MAP_FAILED;
  // Small arrays are not worth a hugepage; reserved pages are scarce.
  const bool big = bytes >= kHuge;
  // No MAP_NORESERVE: without reserved pages mmap fails here (and we fall back) instead of SIGBUS later.
  // The 2 MB pool by name: where the default hugepage size is 1 GB, plain MAP_HUGETLB would take whole 1 GB pages
  // (and munmap of a length rounded to 2 MB would fail); the host check counts the 2 MB pool.
  if (policy != PagePolicy::Off && big) {
    *mapped = round_up(bytes, kHuge);
    p = mmap(nullptr, *mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | kHuge2mb,
             -1, 0);
    if (p != MAP_FAILED) *kind = PageKind::Hugetlb;
  }
  if (p == MAP_FAILED && policy == PagePolicy::On && big)
    throw std::runtime_error("hugepages: on, but " + std::to_string(*mapped >> 20) +
                             " MiB could not be mapped from the reserved hugepages (too few free in the pool: "
                             "grep Huge /proc/meminfo; reserve more with sudo sysctl -w vm.nr_hugepages=N, "
                             "or set hugepages: auto)");
  if (p == MAP_FAILED) {
    *mapped = round_up(bytes, 4096);
    p = mmap(nullptr, *mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    *kind = PageKind::Plain;
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
    if (big && policy == PagePolicy::Off) {
      madvise(p, *mapped, MADV_NOHUGEPAGE);  // off means none, also where the kernel's mode is "always"
    } else if (big && thp_mode() != Thp::Never && madvise(p, *mapped, MADV_HUGEPAGE) == 0) {
      *kind = PageKind::Thp;
    }
#endif
  }
  const std::size_t now = g_bytes[static_cast<int>(*kind)] += *mapped;
  if (*kind == PageKind::Hugetlb) {
    std::size_t peak = g_hugetlb_peak.load();
    while (now > peak && !g_hugetlb_peak.compare_exchange_weak(peak, now)) {
    }
  }
  return p;
}

void huge_free(void* p, std::size_t mapped, PageKind kind) {
  munmap(p, mapped);
  g_bytes[static_cast<int>(kind)] -= mapped;
}

}  // namespace slide
