// Implementations: the registry, plugins (dlopen) and the reference behind the ABI.
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <utility>

#include "conformance.hpp"
#include "elements.hpp"
#include "lossbench/case.hpp"
#include "lossbench/catalog.hpp"
#include "lossbench/error.hpp"
#include "reference.hpp"

namespace lossbench::conformance {

namespace {

// ---------------------------------------------------------------- the reference

void set_error(char* error, std::size_t size, const std::string& message) {
  if (error == nullptr || size == 0) return;
  std::snprintf(error, size, "%s", message.c_str());
}

std::int32_t status_of(const Error& e) {
  return e.kind() == ErrorKind::Precision ? LB_INTERNAL_ERROR : LB_BAD_ARGUMENTS;
}

std::string_view dtype_name(std::int32_t dtype) {
  switch (dtype) {
    case LB_FLOAT64: return "float64";
    case LB_FLOAT32: return "float32";
    case LB_FLOAT16: return "float16";
    case LB_BFLOAT16: return "bfloat16";
    case LB_INT64: return "int64";
    default: return "unknown";
  }
}

ojson tensor_doc(const lb_tensor& t) {
  ojson j;
  j["dtype"] = dtype_name(t.dtype);
  auto shape = ojson::array();
  for (std::int32_t d = 0; d < t.ndim; ++d) shape.push_back(t.shape[d]);
  j["shape"] = std::move(shape);
  auto data = ojson::array();
  const std::int64_t n = tensor_numel(t);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t off = strided_offset(t, i);
    if (t.dtype == LB_INT64)
      data.push_back(load_int(t.data, off));
    else
      data.push_back(hex_string(load_float(t.data, t.dtype, off)));
  }
  j["data"] = std::move(data);
  return j;
}

// The case document of an ABI call (the reference validates it as it validates any case).
ojson call_doc(const lb_call& call) {
  ojson doc;
  doc["loss"] = call.loss ? call.loss : "";
  if (call.reduction) doc["reduction"] = call.reduction;
  ojson params = ojson::object();
  for (std::int32_t k = 0; k < call.num_params; ++k) {
    const lb_param& p = call.params[k];
    switch (p.type) {
      case LB_PARAM_NONE: params[p.name] = nullptr; break;
      case LB_PARAM_BOOL: params[p.name] = p.b != 0; break;
      case LB_PARAM_INT: params[p.name] = p.i; break;
      case LB_PARAM_FLOAT: params[p.name] = hex_string(p.f); break;
      case LB_PARAM_STRING: params[p.name] = p.s ? p.s : ""; break;
      default: throw Error(ErrorKind::Format, std::string("params.") + p.name + ": unknown type");
    }
  }
  doc["params"] = std::move(params);
  ojson inputs = ojson::object();
  for (std::int32_t k = 0; k < call.num_inputs; ++k)
    inputs[call.inputs[k].name] = tensor_doc(call.inputs[k]);
  doc["inputs"] = std::move(inputs);
  return doc;
}

bool same_shape(const lb_tensor& t, const Shape& shape) {
  if (static_cast<std::size_t>(t.ndim) != shape.size()) return false;
  for (std::size_t d = 0; d < shape.size(); ++d)
    if (t.shape[d] != shape[d]) return false;
  return true;
}

std::string tensor_shape_string(const lb_tensor& t) {
  Shape s(t.shape, t.shape + t.ndim);
  return shape_string(s);
}

// Writes a certified tensor, rounded to the destination's dtype.
void write_certified(const ref::CertifiedTensor& src, lb_tensor& dst) {
  if (dst.dtype < LB_FLOAT64 || dst.dtype > LB_BFLOAT16)
    throw Error(ErrorKind::Type, std::string(dst.name ? dst.name : "output") +
                                     ": a floating dtype is needed, not " +
                                     std::string(dtype_name(dst.dtype)));
  if (!same_shape(dst, src.shape))
    throw Error(ErrorKind::ShapeMismatch, std::string(dst.name ? dst.name : "output") + ": shape " +
                                              tensor_shape_string(dst) +
                                              " but the result has shape " +
                                              shape_string(src.shape));
  for (std::size_t i = 0; i < src.values.size(); ++i) {
    const double v = src.values[i].rounded[static_cast<std::size_t>(dst.dtype)];
    store_float(dst.data, dst.dtype, strided_offset(dst, static_cast<std::int64_t>(i)), v);
  }
}

std::int32_t ref_supports(const char* loss, std::int32_t, lb_device device, const char*) {
  // Every loss and dtype: rejecting invalid arguments is part of what the reference does.
  return device.type == LB_DEVICE_CPU && loss != nullptr && find_loss(loss) != nullptr ? 1 : 0;
}

template <class F>
std::int32_t guarded(char* error, std::size_t size, F&& f) {
  try {
    f();
    return LB_OK;
  } catch (const Error& e) {
    set_error(error, size, std::string(to_string(e.kind())) + ": " + e.what());
    return status_of(e);
  } catch (const std::exception& e) {
    set_error(error, size, e.what());
    return LB_INTERNAL_ERROR;
  }
}

std::int32_t ref_forward(const lb_call* call, lb_tensor* output, char* error, std::size_t size) {
  return guarded(error, size, [&] {
    const Case c = parse_case(call_doc(*call).dump());
    const ref::Certified r = ref::certify(c);
    write_certified(r.output, *output);
  });
}

std::int32_t ref_backward(const lb_call* call, const lb_tensor* grad_output, lb_tensor* grads,
                          std::int32_t num_grads, char* error, std::size_t size) {
  return guarded(error, size, [&] {
    ojson doc = call_doc(*call);
    if (grad_output != nullptr) doc["grad_output"] = tensor_doc(*grad_output);
    const Case c = parse_case(doc.dump());
    ref::CertifyOptions options;
    options.grad = true;
    const ref::Certified r = ref::certify(c, options);
    for (std::int32_t k = 0; k < num_grads; ++k) {
      const std::string name = grads[k].name ? grads[k].name : "";
      auto it = r.grads.find(name);
      if (it == r.grads.end())
        throw Error(ErrorKind::Value,
                    "no gradient for input '" + name + "' of " + doc["loss"].get<std::string>());
      write_certified(it->second, grads[k]);
    }
  });
}

const lb_impl kReference = {
    LB_ABI_VERSION,
    sizeof(lb_impl),
    "reference",
    "lossbench " LOSSBENCH_VERSION_STRING " (MPFR, correctly rounded)",
    ref_supports,
    ref_forward,
    ref_backward,
    nullptr,
    {LB_DEVICE_CPU, 0},
    nullptr,
    nullptr,
    nullptr,
    nullptr,  // forward_backward: the scorer makes the two calls
};

const lb_impl* reference_factory() { return &kReference; }

// ---------------------------------------------------------------- registry

struct Registry {
  std::mutex mutex;
  std::vector<std::pair<std::string, ImplFactory>> entries{{"reference", reference_factory}};
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

const lb_impl* reference_implementation() { return &kReference; }

void register_implementation(const std::string& name, ImplFactory factory) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  for (auto& [n, f] : r.entries)
    if (n == name) {
      f = factory;
      return;
    }
  r.entries.emplace_back(name, factory);
}

std::vector<std::string> registered_implementations() {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& e : r.entries) names.push_back(e.first);
  return names;
}

const lb_impl* find_implementation(std::string_view name) {
  auto& r = registry();
  ImplFactory factory = nullptr;
  {
    std::lock_guard lock(r.mutex);
    for (const auto& [n, f] : r.entries)
      if (n == name) factory = f;
  }
  return factory ? factory() : nullptr;
}

bool names_plugin(std::string_view spec) {
  return spec.find('/') != std::string_view::npos ||
         (spec.size() > 3 && spec.substr(spec.size() - 3) == ".so");
}

const lb_impl* load_plugin(const std::string& path, std::string& error) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* msg = dlerror();
    error = path + ": cannot load: " + (msg ? msg : "unknown dlopen error");
    return nullptr;
  }
  void* sym = dlsym(handle, LB_ENTRY_POINT_V1);
  if (sym == nullptr) {
    error = path + ": does not export " LB_ENTRY_POINT_V1 "()";
    return nullptr;
  }
  lb_entry_point_v1 entry;
  static_assert(sizeof entry == sizeof sym);
  std::memcpy(&entry, &sym, sizeof sym);
  const lb_impl* impl = entry();
  if (impl == nullptr) {
    error = path + ": " LB_ENTRY_POINT_V1 "() returned NULL";
    return nullptr;
  }
  if (impl->abi_version != LB_ABI_VERSION) {
    error = path + ": ABI version " + std::to_string(impl->abi_version) + ", this scorer speaks " +
            std::to_string(LB_ABI_VERSION);
    return nullptr;
  }
  if (impl->struct_size < offsetof(lb_impl, synchronize) + sizeof impl->synchronize ||
      impl->supports == nullptr || impl->forward == nullptr) {
    error = path + ": incomplete lb_impl table (supports and forward are required)";
    return nullptr;
  }
  return impl;
}

const lb_impl* load_implementation(const std::string& spec, std::string& error) {
  if (names_plugin(spec)) return load_plugin(spec, error);
  const lb_impl* impl = find_implementation(spec);
  if (impl == nullptr) {
    error = "no implementation named '" + spec + "' (known:";
    for (const auto& n : registered_implementations()) error += " " + n;
    error += "; a path ending in .so names a plugin)";
  }
  return impl;
}

}  // namespace lossbench::conformance
