#include "transc.hpp"

#include <cstdio>

#include "cpu.hpp"

namespace lossbench::bench {

std::string TranscCosts::describe() const {
  char s[160];
  std::snprintf(s, sizeof s,
                "exp %.4f, log %.4f, log1p %.4f ns per element on one core (Highway float32, %s)",
                ns.exp, ns.log, ns.log1p, target.c_str());
  return s;
}

const TranscCosts& transc_costs() {
  static const TranscCosts costs = [] {
    using opt::Isa;
    if (opt::machine_has(Isa::avx512))
      return TranscCosts{transc_detail::measure_avx512(), "avx512"};
    if (opt::machine_has(Isa::avx2)) return TranscCosts{transc_detail::measure_avx2(), "avx2"};
    return TranscCosts{transc_detail::measure_baseline(), "baseline"};
  }();
  return costs;
}

}  // namespace lossbench::bench
