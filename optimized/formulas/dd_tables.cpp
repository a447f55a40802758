// The double-double exp/log tables (dd.hpp: dd_data::Tables), built once at load time in DD
// arithmetic: one copy for the scalar, FMA and AVX-512 DD kernels.
#include "dd.hpp"

namespace lossbench::opt::formulas::dd_data {
namespace {

Tables make_tables() {
  Tables t{};
  for (int j = 0; j < kTable; ++j) {
    const double c = 0.75 + (j + 0.5) * (0.75 / kTable);
    t.invc[j] = j == kOne ? 1.0 : 1.0 / c;
    // log y = 2 atanh z, z = (y - 1) / (y + 1), |z| < 0.15: 2 (z + z^3/3 + z^5/5 + ...).
    const DD y(t.invc[j]);
    const DD z = (y - DD(1.0)) / (y + DD(1.0));
    const DD z2 = z * z;
    DD term = z, sum = z;
    for (int k = 3; k < 80; k += 2) {
      term = term * z2;
      sum = sum + term / DD(static_cast<double>(k));
    }
    const DD logc = -(sum + sum);
    t.logc[j][0] = logc.hi;
    t.logc[j][1] = logc.lo;
    // 2^(j/kTable) = exp(x), x = j ln2 / kTable < 0.7: the Taylor series to x^40/40!.
    const DD x = DD(dd::kLn2Hi, dd::kLn2Lo) * DD(static_cast<double>(j) / kTable);
    DD term_e(1.0), s(1.0);
    for (int k = 1; k <= 40; ++k) {
      term_e = term_e * x / DD(static_cast<double>(k));
      s = s + term_e;
    }
    t.pow2[j][0] = s.hi;
    t.pow2[j][1] = s.lo;
  }
  return t;
}

}  // namespace

const Tables kTables = make_tables();

}  // namespace lossbench::opt::formulas::dd_data

namespace lossbench::opt::formulas {

double exp_minus_dd(double x, double y) {
  const DD r = vexp(DD(x)) - DD(y);
  return r.hi + r.lo;
}

}  // namespace lossbench::opt::formulas
