// Skipping for want of ../shared or a tool the suite installs: a skip on a developer's machine,
// a failure under CI=true, where both are always present (a silent skip would let CI pass untested).
#pragma once

#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

namespace efcnet::testing {

inline bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::strcmp(ci, "true") == 0;
}

}  // namespace efcnet::testing

// Use as GTEST_SKIP() is used: EFCNET_SKIP_UNLESS_CI() << "what is missing";
// A fatal failure under CI=true, a skip elsewhere (gtest's own GTEST_SKIP/GTEST_FAIL mechanism).
#define EFCNET_SKIP_UNLESS_CI()                                                                          \
  return GTEST_MESSAGE_(::efcnet::testing::running_in_ci() ? "required under CI=true, but missing" : "", \
                        ::efcnet::testing::running_in_ci() ? ::testing::TestPartResult::kFatalFailure    \
                                                           : ::testing::TestPartResult::kSkip)
