// The driver of golden/generators/family.hpp.
#include "family.hpp"

#include <algorithm>
#include <cmath>

namespace lossbench::golden {

std::string_view to_string(Kind k) {
  switch (k) {
    case Kind::typical: return "typical";
    case Kind::wide: return "wide";
    case Kind::ties: return "ties";
    case Kind::threshold: return "threshold";
    case Kind::special: return "special";
    case Kind::subnormal: return "subnormal";
    case Kind::extreme: return "extreme";
    case Kind::cancel: return "cancel";
    case Kind::large: return "large";
  }
  return "?";
}

void apply(CaseBuilder& b, const Option& o) {
  for (const auto& [name, value] : o.params) b.param(name, value);
}

Values generic(Gen& g, DType dt, Kind k, std::size_t n, double scale) {
  switch (k) {
    case Kind::wide: return wide(g.rng, n, dt);
    case Kind::ties: return grid(g.rng, n, {-1.0 * scale, -0.5 * scale, 0.0, 0.5 * scale, scale});
    case Kind::special: {
      Values v = normal(g.rng, n, scale);
      sprinkle(g.rng, v, special_values(dt), 0.3);
      return v;
    }
    case Kind::subnormal: {
      Values v(n);
      const auto fmt = format_of(dt);
      for (auto& x : v)
        x = g.rng.sign() *
            std::ldexp(1.0 + std::ldexp(static_cast<double>(g.rng.below(4)), -2),
                       static_cast<int>(g.rng.range(fmt.emin - fmt.precision + 1, fmt.emin + 1)));
      return v;
    }
    default: return normal(g.rng, n, scale);
  }
}

namespace {

void emit(Gen& g, const Family& f, DType dt, const std::string& red, const Option& o,
          const Shape& shape, Kind kind, bool with_grad_output) {
  CaseBuilder b = g.start(dt, red);
  apply(b, o);
  f.make(g, b, o, shape, kind);
  b.note("values: " + std::string(to_string(kind)));
  if (with_grad_output) {
    if (red != "none") {
      b.grad_output({}, {g.rng.uniform(-2.0, 2.0)});
      b.note("grad_output given");
    } else if (auto s = f.none_shape(o, shape)) {
      b.grad_output(*s, normal(g.rng, count(*s)));
      b.note("grad_output given");
    }
  }
  g.emit(std::move(b));
}

}  // namespace

void drive(Gen& g, const Family& f) {
  const auto reds = g.reductions();
  std::vector<DType> dts = g.dtypes();
  if (!f.dtypes.empty())
    dts.erase(std::remove_if(dts.begin(), dts.end(),
                             [&](DType d) {
                               return std::find(f.dtypes.begin(), f.dtypes.end(), d) ==
                                      f.dtypes.end();
                             }),
              dts.end());
  std::size_t i = 0;
  switch (g.group) {
    case Group::smoke:
      if (g.large()) return;
      for (DType dt : dts)
        for (const auto& red : reds)
          emit(g, f, dt, red, f.options[i++ % f.options.size()], f.smoke_shape, Kind::typical,
               false);
      return;
    case Group::reference:
      if (g.large()) return;
      for (DType dt : dts)
        for (const auto& red : reds)
          for (const auto& o : f.options) {
            // float64 and float32 get two shapes per combination, 16-bit dtypes one.
            const int per = dt == DType::float64 || dt == DType::float32 ? 2 : 1;
            for (int k = 0; k < per; ++k) {
              const Shape& s = f.shapes[i % f.shapes.size()];
              const Kind kind = i % 3 == 2 ? Kind::wide : Kind::typical;
              emit(g, f, dt, red, o, s, kind, i % 4 == 3);
              ++i;
            }
          }
      return;
    case Group::special:
      if (g.large()) return;
      for (DType dt : dts)
        for (Kind kind : f.special_kinds) {
          const Shape& s = f.shapes[1 + i % (f.shapes.size() - 1)];
          emit(g, f, dt, reds[i % reds.size()], f.options[i % f.options.size()], s, kind, false);
          ++i;
        }
      for (const Shape& s : f.empty_shapes)
        for (const auto& red : reds) {
          emit(g, f, DType::float32, red, f.options[i % f.options.size()], s, Kind::typical, false);
          ++i;
        }
      return;
    case Group::hard:
      if (!g.large()) {
        for (Kind kind : f.hard_kinds)
          for (DType dt : dts) {
            emit(g, f, dt, reds[i % reds.size()], f.options[i % f.options.size()], f.hard_shape,
                 kind, false);
            ++i;
          }
        for (const Shape& s : f.large_shapes) {
          emit(g, f, dts[std::min<std::size_t>(1, dts.size() - 1)], "mean",
               f.options[i++ % f.options.size()], s, Kind::large, false);
          if (count(s) < 5000)
            emit(g, f, DType::float64, "sum", f.options[i++ % f.options.size()], s, Kind::large,
                 false);
        }
      } else {
        for (const Shape& s : f.huge_shapes)
          for (DType dt : dts)
            for (const auto& red : reds) {
              if (red == "none") continue;
              emit(g, f, dt, red, f.options[i++ % f.options.size()], s, Kind::large, false);
            }
      }
      return;
    case Group::error:
      if (!g.large() && f.errors) f.errors(g);
      return;
  }
}

}  // namespace lossbench::golden
