// One error base for the whole library (error.h), and LibTorch's errors translated at its boundary.
#include <gtest/gtest.h>

#include <string>
#include <type_traits>

#include "efcnet/error.h"
#include "efcnet/image.h"
#include "efcnet/metrics.h"
#include "efcnet/model.h"
#include "efcnet/pipeline.h"
#include "efcnet/train.h"
#include "efcnet/weights.h"
#include "efcnet/weights_records.h"
#include "model/torch_error.h"
#include "train/distributed.h"

namespace efcnet {
namespace {

static_assert(std::is_base_of_v<Error, IoError>);
static_assert(std::is_base_of_v<Error, WeightsError>);
static_assert(std::is_base_of_v<Error, PickleError>);
static_assert(std::is_base_of_v<Error, FusionError>);
static_assert(std::is_base_of_v<Error, TrainingError>);
static_assert(std::is_base_of_v<Error, DistributedFault>);
static_assert(std::is_base_of_v<Error, metrics::MetricsError>);
static_assert(std::is_base_of_v<Error, OptionError>);

TEST(Errors, AnUnknownDeviceIsAnOptionError) {
  EXPECT_THROW(parse_device("gpu7"), OptionError);
  FuserOptions options{"network.pth", "seem.pth", "tpu", {}};
  EXPECT_THROW(Fuser{options}, OptionError);
}

TEST(Errors, AMissingWeightsFileIsAnErrorNamingIt) {
  FuserOptions options{"/nonexistent/network.pth", "/nonexistent/seem.pth", "cpu", {}};
  try {
    Fuser fuser(options);
    FAIL() << "a missing weights file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/seem.pth"), std::string::npos) << e.what();
  }
}

// LibTorch's messages carry its source location and a backtrace on further lines.
TEST(Errors, TorchMessagesAreCutToTheirFirstLine) {
  try {
    TORCH_CHECK(false, "shapes do not match\nsecond line");
    FAIL() << "TORCH_CHECK did not throw";
  } catch (const c10::Error& e) {
    EXPECT_EQ(torch_message(e), "shapes do not match");
  }
}

}  // namespace
}  // namespace efcnet
