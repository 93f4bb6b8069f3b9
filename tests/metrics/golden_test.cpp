// Parity with the reference evaluator on the golden triples (golden/metrics/expected.json): every
// metric within relative 1e-3, or absolute 1e-4 for values near zero.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "efcnet/metrics.h"
#include "support/required.h"

namespace {

namespace fs = std::filesystem;
namespace m = efcnet::metrics;

const fs::path kGoldenDir = fs::path(EFCNET_SHARED_DIR) / "golden" / "metrics";

TEST(GoldenMetrics, MatchTheReferenceEvaluator) {
  const fs::path expected_path = kGoldenDir / "expected.json";
  if (!fs::exists(expected_path))
    EFCNET_SKIP_UNLESS_CI() << "no golden metrics at " << expected_path << " (shared data not present)";
  std::ifstream in(expected_path);
  const nlohmann::json triples = nlohmann::json::parse(in);
  ASSERT_FALSE(triples.empty());
  for (const auto& triple : triples) {
    const std::string fused = triple.at("fused");
    SCOPED_TRACE(fused);
    const m::FusionMetrics got =
        m::evaluate_fusion(m::read_grey((kGoldenDir / triple.at("anatomical").get<std::string>()).string()),
                           m::read_grey((kGoldenDir / triple.at("functional").get<std::string>()).string()),
                           m::read_grey((kGoldenDir / fused).string()));
    const auto& expected = triple.at("metrics");
    ASSERT_EQ(expected.size(), m::kMetricNames.size());
    for (std::size_t i = 0; i < m::kMetricNames.size(); ++i) {
      const double want = expected.at(m::kMetricNames[i]);
      EXPECT_NEAR(got[i], want, std::max(1e-3 * std::abs(want), 1e-4)) << m::kMetricNames[i];
    }
  }
}

}  // namespace
