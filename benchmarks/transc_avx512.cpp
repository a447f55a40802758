// transc_detail::measure_avx512 (transc.hpp); flags in benchmarks/CMakeLists.txt.
#define LOSSBENCH_TRANSC_MEASURE measure_avx512
#include "transc_measure.hpp"
