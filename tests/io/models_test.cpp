// Named models and where programs find weight files they were not given (efcnet/models.h).
#include "efcnet/models.h"

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
  const auto dirs = model_dirs();
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

// A directory of the user's own models ($EFCNET_MODELS_DIR): `a` complete, `b` without its SEEM.
class OwnModels : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(dir_ / "models.tsv") << "# name, a tab, what it is\na\tmodel a, complete\nb\tmodel b, no SEEM\n";
    for (const char* file : {"efcnet_a.pth", "seem_a.pth", "efcnet_b.pth"}) std::ofstream(dir_ / file) << "weights";
  }
  std::string model_error(const ModelChoice& choice, const ModelArgumentNames& names = {}) {
    try {
      resolve_model(choice, names);
    } catch (const IoError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no IoError";
    return {};
  }
  testing::TempDir dir_;
  ScopedEnv models_dir_{kModelsDirEnv, dir_.path().c_str()};
  ScopedEnv no_network_{kNetworkWeights.env.c_str(), nullptr};
  ScopedEnv no_seem_{kSeemWeights.env.c_str(), nullptr};
};

TEST_F(OwnModels, AreListedFirstWithBothFilesAndChosenByName) {
  const auto models = shipped_models();
  ASSERT_FALSE(models.empty());
  EXPECT_EQ(models.front().name, "a");
  EXPECT_EQ(models.front().description, "model a, complete");
  EXPECT_EQ(models.front().network, dir_ / "efcnet_a.pth");
  EXPECT_EQ(models.front().seem, dir_ / "seem_a.pth");
  EXPECT_TRUE(std::none_of(models.begin(), models.end(), [](const Model& m) { return m.name == "b"; }));

  const Model a = resolve_model({"a", "", ""});
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.seem, dir_ / "seem_a.pth");
  const std::string unknown = model_error({"b", "", ""});
  EXPECT_EQ(unknown.rfind("no model named \"b\" (given by --model); the shipped models: a", 0), 0u) << unknown;
}

TEST_F(OwnModels, OneWeightsFileAloneIsRefusedOnTheCommandLineAndInTheEnvironment) {
  const std::string network = dir_ / "efcnet_a.pth", seem = dir_ / "seem_a.pth";
  EXPECT_EQ(model_error({"", network, ""}),
            "--weights without --seem-weights: a network fuses as trained only with its own SEEM; give both, or a "
            "model by name");
  EXPECT_EQ(
      model_error({"", "", seem}, {"model=", "weights=", "seem_weights="}).rfind("seem_weights= without weights=", 0),
      0u);
  EXPECT_EQ(model_error({"a", network, seem}), "give --model or --weights with --seem-weights, not both");
  const Model files = resolve_model({"", network, seem});
  EXPECT_EQ(files.name, "");
  EXPECT_EQ(files.network, network);
  {
    ScopedEnv only_network(kNetworkWeights.env.c_str(), network.c_str());
    EXPECT_EQ(model_error({}).rfind("EFCNET_WEIGHTS without EFCNET_SEEM_WEIGHTS", 0), 0u);
    EXPECT_EQ(resolve_model({"a", "", ""}).name, "a");  // a name given wins over the environment
  }
  ScopedEnv only_seem(kSeemWeights.env.c_str(), seem.c_str());
  EXPECT_EQ(model_error({}).rfind("EFCNET_SEEM_WEIGHTS without EFCNET_WEIGHTS", 0), 0u);
}

TEST_F(OwnModels, AMalformedIndexIsNamedWithItsLine) {
  std::ofstream(dir_ / "models.tsv") << "a\tfine\nno tab here\n";
  EXPECT_EQ(model_error({"a", "", ""}),
            dir_ / "models.tsv" + ": line 2 is not NAME<tab>DESCRIPTION (NAME: letters, digits, '-', '_', '.')");
}

TEST(ShippedModels, TheDefaultIsUsedWhenNothingIsGiven) {
  ScopedEnv no_dir(kModelsDirEnv, nullptr);
  ScopedEnv no_network(kNetworkWeights.env.c_str(), nullptr);
  ScopedEnv no_seem(kSeemWeights.env.c_str(), nullptr);
  const std::string source_models = (std::filesystem::path(EFCNET_SOURCE_DIR) / "models").lexically_normal().string();
  const Model model = resolve_model({});
  EXPECT_EQ(model.name, "default");
  EXPECT_FALSE(model.description.empty());
  EXPECT_EQ(model.network, source_models + "/efcnet_default.pth");
  EXPECT_EQ(model.seem, source_models + "/seem_default.pth");
}

}  // namespace
}  // namespace efcnet
