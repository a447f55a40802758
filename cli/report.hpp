#pragma once
// Printing the catalog and certified results, as text tables or JSON.
#include <nlohmann/json.hpp>
#include <ostream>

#include "reference.hpp"

namespace lossbench::cli {

nlohmann::ordered_json catalog_json();
void print_catalog(std::ostream& out);

nlohmann::ordered_json certified_json(const Case& c, const ref::Certified& result);
void print_certified(std::ostream& out, const Case& c, const ref::Certified& result);

}  // namespace lossbench::cli
