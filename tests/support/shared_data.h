// Locating ../shared (golden data, dataset) from the tests; tests skip with a message without it
// (and fail under CI=true, support/required.h).
#pragma once

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "support/required.h"

namespace efcnet::testing {

inline std::string golden_path(const std::string& name) { return std::string(EFCNET_SHARED_DIR) + "/golden/" + name; }

inline bool have_golden() { return std::filesystem::is_directory(std::string(EFCNET_SHARED_DIR) + "/golden"); }

}  // namespace efcnet::testing

// Skips the current test when ../shared/golden is not beside the checkout (fails it under CI=true).
#define EFCNET_REQUIRE_GOLDEN()                                                \
  do {                                                                         \
    if (!::efcnet::testing::have_golden())                                     \
      EFCNET_SKIP_UNLESS_CI() << "golden data not found at " EFCNET_SHARED_DIR \
                                 "/golden (../shared beside "                  \
                                 "the checkout); parity test skipped";         \
  } while (0)
