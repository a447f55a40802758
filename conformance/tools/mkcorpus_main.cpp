// lossbench-mkcorpus: a small corpus (manifest.json + GROUP.jsonl) from case documents, with the
// expected values computed by the reference. For tests; the real corpus is golden/.
//   lossbench-mkcorpus OUT_DIR GROUP=case.json... (each argument "group=path" or a path: group
//   from the parent directory's name)
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "conformance.hpp"

namespace fs = std::filesystem;
using lossbench::conformance::ojson;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: lossbench-mkcorpus OUT_DIR [group=]case.json...\n";
    return 2;
  }
  const fs::path out = argv[1];
  fs::create_directories(out);
  std::map<std::string, std::vector<ojson>> groups;
  std::map<std::string, int> counters;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    std::string group;
    const auto eq = arg.find('=');
    if (eq != std::string::npos && arg.find('/') > eq) {
      group = arg.substr(0, eq);
      arg = arg.substr(eq + 1);
    } else {
      group = fs::path(arg).parent_path().filename().string();
    }
    std::ifstream in(arg);
    if (!in) {
      std::cerr << arg << ": cannot open\n";
      return 2;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    ojson doc = ojson::parse(ss.str(), nullptr, false);
    if (doc.is_discarded()) {
      std::cerr << arg << ": not JSON\n";
      return 2;
    }
    const std::string loss = doc.value("loss", "unknown");
    char num[16];
    std::snprintf(num, sizeof num, "%04d", counters[loss + "/" + group]++);
    const std::string id = loss + "/" + group + "/" + num;
    try {
      groups[group].push_back(lossbench::conformance::expected_line(doc, id, group));
    } catch (const std::exception& e) {
      std::cerr << arg << ": " << e.what() << "\n";
      return 1;
    }
  }
  ojson manifest;
  manifest["schema_version"] = 1;
  manifest["generator"] = "lossbench-mkcorpus";
  auto files = ojson::array();
  for (const auto& [g, lines] : groups) {
    const std::string name = g + ".jsonl";
    std::ofstream f(out / name);
    for (const auto& l : lines) f << l.dump() << "\n";
    files.push_back({{"name", name}, {"group", g}, {"cases", lines.size()}});
  }
  manifest["files"] = std::move(files);
  std::ofstream(out / "manifest.json") << manifest.dump(2) << "\n";
  return 0;
}
