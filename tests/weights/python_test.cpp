// Interoperability with PyTorch itself, where /usr/bin/python3 has torch: PyTorch reads what we
// write (with weights_only=True, its own restricted loader) and we read what PyTorch writes.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "efcnet/weights.h"
#include "support/required.h"
#include "support/temp_dir.h"
#include "weights/archive_support.h"

namespace efcnet {
namespace {

using testing::TempDir;

constexpr const char* kPython = "/usr/bin/python3";

bool python_torch_available() {
  static const bool available =
      std::system((std::string(kPython) + " -c \"import inspect, torch; assert 'weights_only' in "
                                          "inspect.signature(torch.load).parameters\""
                                          " >/dev/null 2>&1")
                      .c_str()) == 0;
  return available;
}

#define REQUIRE_PYTHON_TORCH()                                                                                   \
  do {                                                                                                           \
    if (!python_torch_available())                                                                               \
      EFCNET_SKIP_UNLESS_CI() << kPython << " cannot import torch (with torch.load(weights_only=...)); skipped"; \
  } while (0)

// Runs `script` with `args`; returns its stdout, failing the test (with stderr) on a non-zero exit.
std::string run_python(const TempDir& dir, const std::string& script, const std::string& args) {
  std::ofstream(dir / "script.py") << script;
  const std::string command = std::string(kPython) + " " + (dir / "script.py") + " " + args + " 2>" + (dir / "stderr");
  std::string output;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
    const int status = ::pclose(pipe);
    std::ifstream err(dir / "stderr");
    const std::string stderr_text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
    EXPECT_EQ(status, 0) << command << "\n" << stderr_text;
  } else {
    ADD_FAILURE() << "cannot run " << command;
  }
  return output;
}

// Prints {path: [[key, dtype, shape, flat values], ...]} for each file torch.load reads.
const char* kDescribe = R"(
import json, sys, torch
out = {}
for path in sys.argv[1:]:
    entries = []
    for key, value in torch.load(path, weights_only=True).items():
        flat = value.flatten()
        if flat.dtype == torch.bool:
            flat = flat.to(torch.int64)
        entries.append([key, str(value.dtype).replace('torch.', ''), list(value.shape), flat.tolist()])
    out[path] = entries
print(json.dumps(out))
)";

std::string dtype_name(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kFloat16: return "float16";
    case torch::kFloat64: return "float64";
    case torch::kInt64: return "int64";
    case torch::kInt32: return "int32";
    case torch::kBool: return "bool";
    default: return c10::toString(dtype);
  }
}

// `described` (one file's entries from kDescribe) holds exactly `dict`, values compared exactly.
void expect_described(const nlohmann::json& described, const StateDict& dict, const std::string& what) {
  ASSERT_EQ(described.size(), dict.size()) << what;
  for (std::size_t i = 0; i < dict.size(); ++i) {
    const auto& [key, tensor] = dict[i];
    const nlohmann::json& entry = described[i];
    EXPECT_EQ(entry[0].get<std::string>(), key) << what;
    EXPECT_EQ(entry[1].get<std::string>(), dtype_name(tensor.scalar_type())) << what << " " << key;
    EXPECT_EQ(entry[2].get<std::vector<int64_t>>(), tensor.sizes().vec()) << what << " " << key;
    const torch::Tensor flat = tensor.flatten().contiguous();
    ASSERT_EQ(entry[3].size(), static_cast<std::size_t>(flat.numel())) << what << " " << key;
    if (tensor.is_floating_point()) {
      const torch::Tensor values = flat.to(torch::kFloat64);
      for (int64_t j = 0; j < flat.numel(); ++j) {
        EXPECT_EQ(entry[3][j].get<double>(), values[j].item<double>()) << what << " " << key << "[" << j << "]";
      }
    } else {
      const torch::Tensor values = flat.to(torch::kInt64);
      for (int64_t j = 0; j < flat.numel(); ++j) {
        EXPECT_EQ(entry[3][j].get<int64_t>(), values[j].item<int64_t>()) << what << " " << key << "[" << j << "]";
      }
    }
  }
}

std::string data_pkl(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  const auto [data, size] = reader.getRecord("data.pkl");
  return std::string(static_cast<const char*>(data.get()), size);
}

TEST(WeightsPython, TorchLoadsWhatWeSave) {
  REQUIRE_PYTHON_TORCH();
  TempDir dir;
  torch::manual_seed(3);
  StateDict dict;
  dict.emplace_back("conv.weight", torch::randn({4, 1, 3, 3}));
  dict.emplace_back("conv.bias", torch::randn({4}, torch::kFloat64));
  dict.emplace_back("bn.num_batches_tracked", torch::tensor(int64_t{5}));
  dict.emplace_back("ids", torch::tensor({int64_t{-3}, int64_t{1} << 50}));
  dict.emplace_back("mask", torch::tensor({true, false}));
  dict.emplace_back("empty", torch::zeros({0, 3}));
  dict.emplace_back("transposed", torch::randn({3, 2}).t());
  for (int i = 0; i < 300; ++i) dict.emplace_back("many." + std::to_string(i), torch::full({1}, float(i)));
  StateDict halved;
  for (const auto& [key, value] : dict) {
    halved.emplace_back(key, value.is_floating_point() ? value.to(torch::kFloat16) : value);
  }
  save_state_dict(dict, dir / "full.pth");
  save_state_dict(halved, dir / "half.pth");

  const nlohmann::json described =
      nlohmann::json::parse(run_python(dir, kDescribe, (dir / "full.pth") + " " + (dir / "half.pth")));
  expect_described(described[dir / "full.pth"], dict, "full.pth");
  expect_described(described[dir / "half.pth"], halved, "half.pth");
}

// torch.save of what torch.load made of our file writes the same pickle, byte for byte.
TEST(WeightsPython, OurPickleIsTheOneTorchSaveWrites) {
  REQUIRE_PYTHON_TORCH();
  TempDir dir;
  StateDict dict;
  dict.emplace_back("a.weight", torch::randn({2, 3}));
  dict.emplace_back("a.bias", torch::randn({70000}).to(torch::kFloat16));
  dict.emplace_back("a.count", torch::tensor(int64_t{1}));
  for (int i = 0; i < 120; ++i) dict.emplace_back("b." + std::to_string(i), torch::randn({i % 5, 2}));
  save_state_dict(dict, dir / "ours.pth");
  run_python(dir, "import sys, torch\ntorch.save(torch.load(sys.argv[1], weights_only=True), sys.argv[2])\n",
             (dir / "ours.pth") + " " + (dir / "theirs.pth"));
  EXPECT_EQ(data_pkl(dir / "ours.pth"), data_pkl(dir / "theirs.pth"));
}

// Files PyTorch writes: a module's OrderedDict with _metadata, views sharing one storage,
// protocol 4, every supported dtype.
TEST(WeightsPython, WeReadWhatTorchSaves) {
  REQUIRE_PYTHON_TORCH();
  TempDir dir;
  const char* kWrite = R"(
import sys, torch
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(5, 2, bias=False))
net[1](torch.randn(2, 4, 5, 5))
torch.save(net.state_dict(), sys.argv[1])
base = torch.arange(20, dtype=torch.float64)
mixed = {'rows': base[2:8].view(2, 3), 'columns': base.view(4, 5).t(), 'half': torch.randn(7).half(),
         'long': torch.tensor([1, -2, 2 ** 40]), 'flag': torch.tensor([True, False]), 'int': torch.tensor([7], dtype=torch.int32),
         'scalar': torch.tensor(3.5), 'empty': torch.zeros(0, 2)}
torch.save(mixed, sys.argv[2])
torch.save(mixed, sys.argv[3], pickle_protocol=4)
)";
  const std::string module = dir / "module.pth";
  const std::string mixed = dir / "mixed.pth";
  const std::string mixed4 = dir / "mixed4.pth";
  run_python(dir, kWrite, module + " " + mixed + " " + mixed4);
  // torch 1.13's weights_only loader has no FRAME opcode: mixed4.pth is checked against mixed.pth.
  const nlohmann::json described = nlohmann::json::parse(run_python(dir, kDescribe, module + " " + mixed));
  expect_described(described[module], read_state_dict(module), module);
  expect_described(described[mixed], read_state_dict(mixed), mixed);
  expect_described(described[mixed], read_state_dict(mixed4), mixed4);
  const StateDict views = read_state_dict(mixed);
  EXPECT_EQ(views[0].second.storage().data(), views[1].second.storage().data());
}

}  // namespace
}  // namespace efcnet
