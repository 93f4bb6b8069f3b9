// How metric values are written (evaluate's CSV/JSON, compare's scores files), so that every
// file the CLI writes reads back to the same doubles. Header-only: evaluate's output and the
// comparison report (src/compare) share it.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "efcnet/metrics.h"

namespace efcnet {

// Shortest text that reads back to the same double; "nan" (whatever its sign bit) and "inf" for
// the degenerate cases.
inline std::string number_text(double value) {
  if (std::isnan(value)) return "nan";
  char buf[32];
  const auto result = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, result.ptr);
}

// Four decimals for tables people read.
inline std::string table_cell(double value) {
  if (std::isnan(value)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", value);
  return buf;
}

// Keys in the evaluator's column order, after "file" when one is given; NaN and inf have no JSON
// form and are written as null.
inline nlohmann::ordered_json metrics_json(const metrics::FusionMetrics& m, const std::string& file = "") {
  nlohmann::ordered_json object = nlohmann::ordered_json::object();
  if (!file.empty()) object["file"] = file;
  for (std::size_t i = 0; i < metrics::kMetricNames.size(); ++i)
    object[metrics::kMetricNames[i]] = std::isfinite(m[i]) ? nlohmann::ordered_json(m[i]) : nlohmann::ordered_json();
  return object;
}

}  // namespace efcnet
