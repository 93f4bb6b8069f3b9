#include "efcnet/threads.h"

#include <algorithm>
#include <thread>

#include <gtest/gtest.h>

namespace {

TEST(Threads, ZeroAndNegativeMeanEveryCore) {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  EXPECT_EQ(efcnet::core_count(), cores);
  EXPECT_EQ(efcnet::thread_count(0), cores);
  EXPECT_EQ(efcnet::thread_count(-3), cores);
}

TEST(Threads, PositiveRequestStands) {
  EXPECT_EQ(efcnet::thread_count(1), 1);
  EXPECT_EQ(efcnet::thread_count(7), 7);
}

}  // namespace
