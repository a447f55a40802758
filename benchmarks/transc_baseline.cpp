// transc_detail::measure_baseline (transc.hpp); flags in benchmarks/CMakeLists.txt.
#define LOSSBENCH_TRANSC_MEASURE measure_baseline
#include "transc_measure.hpp"
