// The corpus reader and running one case through the ABI.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>

#include "conformance.hpp"
#include "elements.hpp"
#include "lossbench/catalog.hpp"
#include "lossbench/error.hpp"

namespace lossbench::conformance {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- corpus

namespace {

std::string case_dtype(const ojson& doc) {
  if (!doc.contains("inputs") || !doc["inputs"].is_object()) return "int64";
  const LossInfo* info = doc.contains("loss") && doc["loss"].is_string()
                             ? find_loss(doc["loss"].get<std::string>())
                             : nullptr;
  if (info != nullptr)
    for (const auto& spec : info->inputs) {
      const std::string name(spec.name);
      if (doc["inputs"].contains(name)) {
        const auto& t = doc["inputs"][name];
        if (t.contains("dtype") && t["dtype"] != "int64") return t["dtype"].get<std::string>();
      }
    }
  for (const auto& [name, t] : doc["inputs"].items())
    if (t.is_object() && t.contains("dtype") && t["dtype"] != "int64")
      return t["dtype"].get<std::string>();
  return "int64";
}

// The id of a line that starts with it ({"id": "..." or {"id":"...", no escapes), else nothing.
std::optional<std::string_view> leading_id(std::string_view text) {
  std::size_t i = 0;
  auto skip_ws = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  };
  skip_ws();
  if (i >= text.size() || text[i] != '{') return std::nullopt;
  ++i;
  skip_ws();
  if (text.substr(i, 4) != "\"id\"") return std::nullopt;
  i += 4;
  skip_ws();
  if (i >= text.size() || text[i] != ':') return std::nullopt;
  ++i;
  skip_ws();
  if (i >= text.size() || text[i] != '"') return std::nullopt;
  const std::size_t start = ++i;
  while (i < text.size() && text[i] != '"' && text[i] != '\\') ++i;
  if (i >= text.size() || text[i] != '"') return std::nullopt;
  return text.substr(start, i - start);
}

// Lines skipped by the filter: cheaply when the id leads, else after parsing.
bool filtered_out(const std::string& text, const IdFilter& keep) {
  if (!keep) return false;
  if (auto id = leading_id(text)) return !keep(*id);
  return false;
}

}  // namespace

CorpusCase corpus_case_from_line(ojson line) {
  CorpusCase c;
  if (!line.is_object() || !line.contains("case") || !line["case"].is_object())
    throw Error(ErrorKind::Format, "corpus line without a \"case\" object");
  c.id = line.value("id", "");
  c.group = line.value("group", "");
  const ojson& doc = line["case"];
  c.loss = doc.value("loss", "");
  c.reduction = doc.value("reduction", "mean");
  c.dtype = case_dtype(doc);
  if (c.id.empty()) c.id = c.loss + "/" + c.group + "/?";
  c.line = std::move(line);
  return c;
}

std::vector<CorpusCase> read_corpus(const std::string& dir) { return read_corpus(dir, IdFilter()); }

std::vector<CorpusCase> read_corpus(const std::string& dir, const IdFilter& keep) {
  std::vector<fs::path> files;
  const fs::path manifest = fs::path(dir) / "manifest.json";
  if (fs::exists(manifest)) {
    std::ifstream in(manifest);
    ojson m = ojson::parse(in, nullptr, false);
    if (m.is_discarded() || !m.contains("files"))
      throw Error(ErrorKind::Format, manifest.string() + ": not a corpus manifest");
    for (const auto& f : m["files"])
      files.push_back(fs::path(dir) /
                      (f.is_string() ? f.get<std::string>() : f["name"].get<std::string>()));
  } else {
    if (!fs::is_directory(dir)) throw Error(ErrorKind::Format, dir + ": no such corpus directory");
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (e.path().extension() == ".jsonl" && name.rfind("torch-", 0) != 0)
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
  }
  std::vector<CorpusCase> cases;
  for (const auto& path : files) {
    std::ifstream in(path);
    if (!in) throw Error(ErrorKind::Format, path.string() + ": cannot open");
    std::string text;
    std::size_t lineno = 0;
    while (std::getline(in, text)) {
      ++lineno;
      if (text.empty() || filtered_out(text, keep)) continue;
      ojson j = ojson::parse(text, nullptr, false);
      if (j.is_discarded())
        throw Error(ErrorKind::Format,
                    path.string() + ":" + std::to_string(lineno) + ": not valid JSON");
      try {
        if (keep && j.is_object() && j.contains("id") && j["id"].is_string() &&
            !keep(j["id"].get<std::string>()))
          continue;
        cases.push_back(corpus_case_from_line(std::move(j)));
      } catch (const Error& e) {
        throw Error(ErrorKind::Format,
                    path.string() + ":" + std::to_string(lineno) + ": " + e.what());
      }
    }
  }
  return cases;
}

std::map<std::string, ojson> read_results(const std::string& path) {
  return read_results(path, IdFilter());
}

std::map<std::string, ojson> read_results(const std::string& path, const IdFilter& keep) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorKind::Format, path + ": cannot open the results file");
  std::map<std::string, ojson> records;
  std::string text;
  std::size_t lineno = 0;
  while (std::getline(in, text)) {
    ++lineno;
    if (text.empty() || filtered_out(text, keep)) continue;
    ojson j = ojson::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw Error(ErrorKind::Format, path + ":" + std::to_string(lineno) + ": not a JSON object");
    if (j.contains("header")) continue;
    if (!j.contains("id") || !j["id"].is_string())
      throw Error(ErrorKind::Format, path + ":" + std::to_string(lineno) + ": no \"id\"");
    const std::string id = j["id"].get<std::string>();
    if (keep && !keep(id)) continue;
    records[id] = std::move(j);
  }
  return records;
}

// ---------------------------------------------------------------- one case through the ABI

namespace {

std::int32_t lb_dtype_of(std::string_view name) {
  if (name == "float64") return LB_FLOAT64;
  if (name == "float32") return LB_FLOAT32;
  if (name == "float16") return LB_FLOAT16;
  if (name == "bfloat16") return LB_BFLOAT16;
  if (name == "int64") return LB_INT64;
  return -1;
}

const char* status_name(std::int32_t s) {
  switch (s) {
    case LB_OK: return "ok";
    case LB_UNSUPPORTED: return "unsupported";
    case LB_BAD_ARGUMENTS: return "bad_arguments";
    case LB_INTERNAL_ERROR: return "internal_error";
    default: return "internal_error";
  }
}

// A tensor of the call: host bytes, shape and strides (contiguous), and its device copy.
struct Buffer {
  std::string name;
  std::int32_t dtype = LB_FLOAT32;
  std::vector<std::int64_t> shape, strides;
  std::vector<unsigned char> host;
  void* device_data = nullptr;
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  void allocate(std::int32_t dt, std::vector<std::int64_t> sh) {
    dtype = dt;
    shape = std::move(sh);
    strides.assign(shape.size(), 1);
    for (std::size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
    // At least 64 bytes, so that an implementation that writes one element too many into a
    // 0-d output of an error case writes into owned memory.
    host.assign(std::max<std::size_t>(64, static_cast<std::size_t>(numel()) * element_size(dtype)),
                0);
  }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * element_size(dtype); }
};

std::vector<std::int64_t> shape_of(const ojson& t) {
  std::vector<std::int64_t> s;
  if (t.contains("shape") && t["shape"].is_array())
    for (const auto& d : t["shape"]) s.push_back(d.is_number_integer() ? d.get<std::int64_t>() : 0);
  return s;
}

// Fills a buffer from a case-document tensor (hex or decimal elements, integers).
void fill_from_doc(Buffer& b, const ojson& t) {
  const std::string dt = t.value("dtype", "float32");
  std::int32_t code = lb_dtype_of(dt);
  if (code < 0) throw Error(ErrorKind::Format, b.name + ": unknown dtype " + dt);
  std::vector<std::int64_t> shape = shape_of(t);
  for (auto s : shape)
    if (s < 0) throw Error(ErrorKind::Format, b.name + ": negative size");
  b.allocate(code, shape);
  const ojson empty = ojson::array();
  const ojson& data = t.contains("data") ? t["data"] : empty;
  if (static_cast<std::int64_t>(data.size()) != b.numel())
    throw Error(ErrorKind::Format, b.name + ": data count does not match the shape");
  const auto dtype = parse_dtype(dt);
  for (std::size_t i = 0; i < data.size(); ++i) {
    const auto idx = static_cast<std::int64_t>(i);
    if (code == LB_INT64) {
      const std::int64_t v = data[i].is_number_integer() ? data[i].get<std::int64_t>() : 0;
      std::memcpy(b.host.data() + i * 8, &v, 8);
    } else if (data[i].is_string()) {
      store_float(b.host.data(), code, idx, parse_float_text(data[i].get<std::string>(), *dtype));
    } else if (data[i].is_number()) {
      store_float(b.host.data(), code, idx, round_to(data[i].get<double>(), *dtype));
    } else {
      throw Error(ErrorKind::Format,
                  b.name + ": element " + std::to_string(i) + " is not a number");
    }
  }
}

ojson buffer_json(const Buffer& b) {
  ojson j;
  j["dtype"] = b.dtype == LB_FLOAT64    ? "float64"
               : b.dtype == LB_FLOAT32  ? "float32"
               : b.dtype == LB_FLOAT16  ? "float16"
               : b.dtype == LB_BFLOAT16 ? "bfloat16"
                                        : "int64";
  j["shape"] = b.shape;
  auto data = ojson::array();
  for (std::int64_t i = 0; i < b.numel(); ++i)
    data.push_back(hex_string(load_float(b.host.data(), b.dtype, i)));
  j["data"] = std::move(data);
  return j;
}

// A zeroed buffer with b's name, dtype and shape (the one-call forward_backward's outputs).
Buffer empty_like(const Buffer& b) {
  Buffer e;
  e.name = b.name;
  e.allocate(b.dtype, b.shape);
  return e;
}

// Does a parameter value of the document equal the catalog's default?
bool is_default(const ParamSpec& spec, const ojson& v) {
  return std::visit(
      [&](const auto& d) -> bool {
        using T = std::decay_t<decltype(d)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return v.is_null();
        } else if constexpr (std::is_same_v<T, bool>) {
          return v.is_boolean() && v.get<bool>() == d;
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          return v.is_number_integer() && v.get<std::int64_t>() == d;
        } else if constexpr (std::is_same_v<T, double>) {
          try {
            double x;
            if (v.is_number())
              x = v.get<double>();
            else if (v.is_string())
              x = parse_float_text(v.get<std::string>(), DType::float64);
            else
              return false;
            return x == d || (std::isnan(x) && std::isnan(d));
          } catch (const Error&) {
            return false;
          }
        } else {
          return v.is_string() && v.get<std::string>() == d;
        }
      },
      spec.default_value);
}

// Holds everything an lb_call points to.
struct CallData {
  std::string loss, reduction;
  std::vector<Buffer> inputs;
  std::vector<std::string> param_names, param_strings;
  std::vector<lb_param> params;
  std::vector<lb_tensor> tensors;
};

void build_params(CallData& cd, const ojson& doc, const LossInfo* info) {
  if (!doc.contains("params") || !doc["params"].is_object()) return;
  const ojson& ps = doc["params"];
  cd.param_names.reserve(ps.size());
  cd.param_strings.reserve(ps.size());
  for (const auto& [name, v] : ps.items()) {
    const ParamSpec* spec = info ? info->find_param(name) : nullptr;
    if (spec != nullptr && is_default(*spec, v)) continue;
    cd.param_names.push_back(name);
    lb_param p{};
    p.name = cd.param_names.back().c_str();
    if (v.is_null()) {
      p.type = LB_PARAM_NONE;
    } else if (v.is_boolean()) {
      p.type = LB_PARAM_BOOL;
      p.b = v.get<bool>() ? 1 : 0;
    } else if (spec != nullptr && spec->type == ParamType::Float &&
               (v.is_number() || v.is_string())) {
      p.type = LB_PARAM_FLOAT;
      if (v.is_number()) {
        p.f = v.get<double>();
      } else {
        try {
          p.f = parse_float_text(v.get<std::string>(), DType::float64);
        } catch (const Error&) {
          p.type = LB_PARAM_STRING;
        }
      }
    } else if (v.is_number_integer()) {
      p.type = LB_PARAM_INT;
      p.i = v.get<std::int64_t>();
    } else if (v.is_number()) {
      p.type = LB_PARAM_FLOAT;
      p.f = v.get<double>();
    } else {
      p.type = LB_PARAM_STRING;
    }
    if (p.type == LB_PARAM_STRING) {
      cd.param_strings.push_back(v.is_string() ? v.get<std::string>() : v.dump());
      p.s = cd.param_strings.back().c_str();
    }
    cd.params.push_back(p);
  }
}

// Device memory of an implementation whose native device is not the CPU.
struct DeviceMemory {
  const lb_impl& impl;
  std::vector<void*> owned;
  bool active() const {
    return impl.struct_size >= offsetof(lb_impl, copy) + sizeof impl.copy &&
           impl.native_device.type != LB_DEVICE_CPU && impl.device_alloc && impl.device_free &&
           impl.copy;
  }
  lb_device device() const { return active() ? impl.native_device : lb_device{LB_DEVICE_CPU, 0}; }
  void* place(Buffer& b, bool copy_in) {
    if (!active()) return b.host.data();
    b.device_data = impl.device_alloc(impl.native_device, std::max<std::size_t>(b.host.size(), 1));
    if (b.device_data == nullptr) throw std::runtime_error("device_alloc failed");
    owned.push_back(b.device_data);
    if (copy_in && b.bytes() > 0 &&
        impl.copy(b.device_data, impl.native_device, b.host.data(), {LB_DEVICE_CPU, 0},
                  b.bytes()) != LB_OK)
      throw std::runtime_error("copy to the device failed");
    return b.device_data;
  }
  void fetch(Buffer& b) {
    if (!active() || b.bytes() == 0) return;
    if (impl.copy(b.host.data(), {LB_DEVICE_CPU, 0}, b.device_data, impl.native_device,
                  b.bytes()) != LB_OK)
      throw std::runtime_error("copy from the device failed");
  }
  ~DeviceMemory() {
    for (void* p : owned) impl.device_free(impl.native_device, p);
  }
};

lb_tensor tensor_of(const Buffer& b, void* data, lb_device device) {
  lb_tensor t{};
  t.name = b.name.c_str();
  t.data = data;
  t.dtype = b.dtype;
  t.ndim = static_cast<std::int32_t>(b.shape.size());
  t.shape = b.shape.data();
  t.strides = b.strides.data();
  t.device = device;
  return t;
}

ojson failure(const std::string& id, const char* status, const std::string& message) {
  ojson r;
  r["id"] = id;
  r["status"] = status;
  r["error"] = {{"message", message}};
  return r;
}

}  // namespace

ojson run_case(const lb_impl& impl, const CorpusCase& c) {
  const ojson& doc = c.doc();
  const LossInfo* info = find_loss(c.loss);
  DeviceMemory mem{impl, {}};
  const lb_device device = mem.device();
  if (!impl.supports(c.loss.c_str(), lb_dtype_of(c.dtype), device, c.reduction.c_str()))
    return failure(c.id, "unsupported",
                   "supports() is false for " + c.loss + " " + c.dtype + " " + c.reduction);

  CallData cd;
  cd.loss = c.loss;
  cd.reduction = c.reduction;
  try {
    // Inputs in catalog order, then any the catalog does not know (error cases).
    std::vector<std::string> names;
    if (doc.contains("inputs") && doc["inputs"].is_object()) {
      if (info != nullptr)
        for (const auto& spec : info->inputs)
          if (doc["inputs"].contains(std::string(spec.name))) names.emplace_back(spec.name);
      for (const auto& [name, t] : doc["inputs"].items())
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    cd.inputs.resize(names.size());
    for (std::size_t k = 0; k < names.size(); ++k) {
      cd.inputs[k].name = names[k];
      fill_from_doc(cd.inputs[k], doc["inputs"][names[k]]);
    }
    build_params(cd, doc, info);
  } catch (const std::exception& e) {
    return failure(c.id, "internal_error",
                   std::string("scorer cannot build the call: ") + e.what());
  }

  ojson result;
  result["id"] = c.id;
  try {
    for (auto& b : cd.inputs) cd.tensors.push_back(tensor_of(b, mem.place(b, true), device));
    lb_call call{};
    call.struct_size = sizeof(lb_call);
    call.loss = cd.loss.c_str();
    call.reduction = cd.reduction.c_str();
    call.inputs = cd.tensors.data();
    call.num_inputs = static_cast<std::int32_t>(cd.tensors.size());
    call.params = cd.params.data();
    call.num_params = static_cast<std::int32_t>(cd.params.size());
    call.device = device;

    // The output: the reference's dtype and shape; a 0-d tensor of the case's dtype for an
    // error case.
    Buffer out;
    out.name = "output";
    const bool has_expected = c.line.contains("expected") && c.line["expected"].contains("output");
    if (has_expected) {
      const ojson& e = c.line["expected"]["output"];
      out.allocate(lb_dtype_of(e.value("dtype", c.dtype)), shape_of(e));
    } else {
      const std::int32_t dt = lb_dtype_of(c.dtype);
      out.allocate(dt == LB_INT64 || dt < 0 ? LB_FLOAT32 : dt, {});
    }
    lb_tensor out_t = tensor_of(out, mem.place(out, false), device);
    std::vector<char> error(1024, '\0');
    std::int32_t s = impl.forward(&call, &out_t, error.data(), error.size());
    if (s == LB_OK && impl.synchronize) s = impl.synchronize(device, error.data(), error.size());
    result["status"] = status_name(s);
    if (s != LB_OK) {
      result["error"] = {{"message", std::string(error.data())}};
      return result;
    }
    mem.fetch(out);
    result["output"] = buffer_json(out);

    // Gradients of the inputs the reference differentiates.
    if (!has_expected || !c.line["expected"].contains("grad") || c.line["expected"]["grad"].empty())
      return result;
    if (impl.backward == nullptr) {
      result["backward"] = {{"status", "unsupported"}, {"error", {{"message", "no backward"}}}};
      return result;
    }
    Buffer go;
    go.name = "grad_output";
    if (doc.contains("grad_output")) {
      fill_from_doc(go, doc["grad_output"]);
    } else {
      go.allocate(out.dtype, out.shape);
      for (std::int64_t i = 0; i < go.numel(); ++i) store_float(go.host.data(), go.dtype, i, 1.0);
    }
    lb_tensor go_t = tensor_of(go, mem.place(go, true), device);
    std::vector<Buffer> grads;
    for (const auto& [name, e] : c.line["expected"]["grad"].items()) {
      Buffer g;
      g.name = name;
      g.allocate(lb_dtype_of(e.value("dtype", c.dtype)), shape_of(e));
      grads.push_back(std::move(g));
    }
    std::vector<lb_tensor> grad_t;
    for (auto& g : grads) grad_t.push_back(tensor_of(g, mem.place(g, false), device));
    std::fill(error.begin(), error.end(), '\0');
    s = impl.backward(&call, &go_t, grad_t.data(), static_cast<std::int32_t>(grad_t.size()),
                      error.data(), error.size());
    if (s == LB_OK && impl.synchronize) s = impl.synchronize(device, error.data(), error.size());
    ojson bw;
    bw["status"] = status_name(s);
    if (s != LB_OK) {
      bw["error"] = {{"message", std::string(error.data())}};
      result["backward"] = std::move(bw);
      return result;
    }
    result["backward"] = std::move(bw);
    // The gradients, fetched from the device, by name.
    const auto grads_json = [&](std::vector<Buffer>& gs) {
      ojson gj = ojson::object();
      for (auto& g : gs) {
        mem.fetch(g);
        gj[g.name] = buffer_json(g);
      }
      return gj;
    };
    result["grad"] = grads_json(grads);

    // The one-call forward_backward, when the table has it: fresh buffers, scored on its own.
    if (const lb_forward_backward_fn fused = lb_forward_backward_of(&impl)) {
      Buffer fout = empty_like(out);
      lb_tensor fout_t = tensor_of(fout, mem.place(fout, false), device);
      std::vector<Buffer> fgrads;
      for (const auto& g : grads) fgrads.push_back(empty_like(g));
      std::vector<lb_tensor> fgrad_t;
      for (auto& g : fgrads) fgrad_t.push_back(tensor_of(g, mem.place(g, false), device));
      std::fill(error.begin(), error.end(), '\0');
      s = fused(&call, &fout_t, &go_t, fgrad_t.data(), static_cast<std::int32_t>(fgrad_t.size()),
                error.data(), error.size());
      if (s == LB_OK && impl.synchronize) s = impl.synchronize(device, error.data(), error.size());
      ojson fj;
      fj["status"] = status_name(s);
      if (s != LB_OK) {
        fj["error"] = {{"message", std::string(error.data())}};
      } else {
        mem.fetch(fout);
        fj["output"] = buffer_json(fout);
        fj["grad"] = grads_json(fgrads);
      }
      result["fused"] = std::move(fj);
    }
  } catch (const std::exception& e) {
    return failure(c.id, "internal_error", std::string("scorer: ") + e.what());
  }
  return result;
}

}  // namespace lossbench::conformance
