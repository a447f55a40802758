// transc_detail::measure_avx2 (transc.hpp); flags in benchmarks/CMakeLists.txt.
#define LOSSBENCH_TRANSC_MEASURE measure_avx2
#include "transc_measure.hpp"
