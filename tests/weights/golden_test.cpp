// The reference state dicts in ../shared/golden (written by PyTorch itself).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "efcnet/weights.h"
#include "efcnet/weights_records.h"
#include "support/required.h"
#include "support/shared_data.h"
#include "support/temp_dir.h"
#include "weights/archive_support.h"

namespace efcnet {
namespace {

using testing::golden_path;

#define REQUIRE_GOLDEN_FILE(name)                                                             \
  do {                                                                                        \
    if (!std::filesystem::exists(golden_path(name)))                                          \
      EFCNET_SKIP_UNLESS_CI() << EFCNET_SHARED_DIR "/golden not found: " << golden_path(name) \
                              << " is missing; skipped";                                      \
  } while (0)

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The records exactly as the file describes them (device tags included).
StateDictRecord records_of(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  const auto [data, size] = reader.getRecord("data.pkl");
  return read_state_dict_pickle(std::string_view(static_cast<const char*>(data.get()), size), path);
}

TEST(WeightsGolden, ReadsEfcnetRandom) {
  REQUIRE_GOLDEN_FILE("efcnet_random.pth");
  const StateDict dict = read_state_dict(golden_path("efcnet_random.pth"));
  ASSERT_EQ(dict.size(), 231u);
  int64_t parameters = 0;
  int batch_counters = 0;
  for (const auto& [key, value] : dict) {
    EXPECT_TRUE(value.device().is_cpu()) << key;
    if (ends_with(key, ".num_batches_tracked")) {
      ++batch_counters;
      EXPECT_EQ(value.scalar_type(), torch::kInt64) << key;
      EXPECT_EQ(value.dim(), 0) << key;
      EXPECT_GT(value.item<int64_t>(), 0) << key;  // statistics were trained
      continue;
    }
    EXPECT_EQ(value.scalar_type(), torch::kFloat32) << key;
    EXPECT_TRUE(torch::isfinite(value).all().item<bool>()) << key;
    if (ends_with(key, ".running_var")) {
      EXPECT_TRUE((value > 0).all().item<bool>()) << key;
    }
    if (!ends_with(key, ".running_mean") && !ends_with(key, ".running_var")) parameters += value.numel();
  }
  EXPECT_EQ(parameters, 7459145);
  EXPECT_GT(batch_counters, 0);
}

TEST(WeightsGolden, ReadsCudaTaggedSeemOnCpu) {
  REQUIRE_GOLDEN_FILE("seem_authors.pth");
  const std::string path = golden_path("seem_authors.pth");
  for (const auto& entry : records_of(path).entries) EXPECT_EQ(entry.second.device, "cuda:0") << entry.first;

  const StateDict dict = read_state_dict(path);
  ASSERT_EQ(dict.size(), 48u);
  for (const auto& [key, value] : dict) {
    EXPECT_TRUE(value.device().is_cpu()) << key;
    if (value.is_floating_point()) {
      EXPECT_TRUE(torch::isfinite(value).all().item<bool>()) << key;
    }
  }
}

// Written back by save_state_dict, the reference weights read back bit for bit.
TEST(WeightsGolden, ResavesEfcnetRandomBitExact) {
  REQUIRE_GOLDEN_FILE("efcnet_random.pth");
  const StateDict original = read_state_dict(golden_path("efcnet_random.pth"));
  testing::TempDir dir;
  save_state_dict(original, dir / "copy.pth");
  const StateDict back = read_state_dict(dir / "copy.pth");
  ASSERT_EQ(back.size(), original.size());
  for (std::size_t i = 0; i < original.size(); ++i) {
    EXPECT_EQ(back[i].first, original[i].first);
    testing::expect_bit_exact(back[i].second, original[i].second, original[i].first);
  }
}

}  // namespace
}  // namespace efcnet
