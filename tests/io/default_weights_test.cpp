// Where programs find weight files they were not given (efcnet/default_weights.h).
#include "efcnet/default_weights.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "efcnet/image.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

const WeightsSpec kSpec{"EFCNET_TEST_WEIGHTS", "test_default.pth", "test network"};

// Sets (or, with nullptr, unsets) an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name); old != nullptr) old_ = old;
    set(value);
  }
  ~ScopedEnv() { set(old_ ? old_->c_str() : nullptr); }

 private:
  void set(const char* value) {
    if (value != nullptr) {
      setenv(name_, value, 1);
    } else {
      unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> old_;
};

std::string io_error(const WeightsSpec& spec, const std::string& given, const std::string& argument) {
  try {
    resolve_weights(spec, given, argument);
  } catch (const IoError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no IoError";
  return {};
}

TEST(DefaultWeights, TheGivenFileWinsAndMustExist) {
  testing::TempDir dir;
  const std::string file = dir / "net.pth";
  std::ofstream(file) << "weights";
  ScopedEnv env(kSpec.env.c_str(), "/nonexistent/from-env.pth");
  EXPECT_EQ(resolve_weights(kSpec, file, "--weights"), file);
  EXPECT_EQ(io_error(kSpec, dir / "none.pth", "--weights"), dir / "none.pth" + ": no such file (given by --weights)");
  EXPECT_EQ(io_error(kSpec, dir.path().string(), "weights="),
            dir.path().string() + ": is a directory (given by weights=)");
}

TEST(DefaultWeights, TheEnvironmentComesNext) {
  testing::TempDir dir;
  const std::string file = dir / "env.pth";
  std::ofstream(file) << "weights";
  {
    ScopedEnv env(kSpec.env.c_str(), file.c_str());
    EXPECT_EQ(resolve_weights(kSpec, "", "--weights"), file);
  }
  ScopedEnv env(kSpec.env.c_str(), "/nonexistent/env.pth");
  EXPECT_EQ(io_error(kSpec, "", "--weights"), "/nonexistent/env.pth: no such file (given by EFCNET_TEST_WEIGHTS)");
}

TEST(DefaultWeights, ShippedFilesAreFoundInTheSourceTreeLast) {
  const auto dirs = default_weights_dirs();
  ASSERT_FALSE(dirs.empty());
  const std::string source_models = (std::filesystem::path(EFCNET_SOURCE_DIR) / "models").lexically_normal().string();
  EXPECT_EQ(dirs.back(), source_models);
  EXPECT_EQ(std::count(dirs.begin(), dirs.end(), source_models), 1);
  // This test program is an executable: no shared object of its own adds a directory.
  const std::string exe_prefix = std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path().string();
  EXPECT_EQ(dirs.front(), (std::filesystem::path(exe_prefix) / "share/efcnet/models").lexically_normal().string());
  EXPECT_LE(dirs.size(), 3u);

  ScopedEnv env(kSpec.env.c_str(), nullptr);
  const std::string message = io_error(kSpec, "", "--weights");
  EXPECT_EQ(message.rfind("no test network weights: name a .pth file with --weights or set EFCNET_TEST_WEIGHTS "
                          "(no shipped test_default.pth in ",
                          0),
            0u)
      << message;
  for (const auto& dir : dirs) EXPECT_NE(message.find(dir), std::string::npos) << dir;
  ScopedEnv no_network_env(kNetworkWeights.env.c_str(), nullptr);
  const std::string shipped = source_models + "/efcnet_default.pth";
  if (std::filesystem::is_regular_file(shipped)) {
    EXPECT_EQ(resolve_weights(kNetworkWeights, "", "--weights"), shipped);
  }
}

}  // namespace
}  // namespace efcnet
