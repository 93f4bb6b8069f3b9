// read_state_dict / save_state_dict on archives written by save_state_dict or synthesised here.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <set>
#include <string>

#include "efcnet/weights.h"
#include "efcnet/weights_records.h"
#include "support/temp_dir.h"
#include "weights/archive_support.h"
#include "weights_records/pickle_bytes.h"

namespace efcnet {
namespace {

using testing::bytes_of;
using testing::expect_bit_exact;
using testing::expect_mentions;
using testing::PickleBytes;
using testing::single_entry_dict;
using testing::TempDir;
using testing::weights_error;
using testing::write_archive;

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Entries of every supported dtype and awkward shape, with values that expose any byte change.
StateDict varied_state_dict() {
  torch::manual_seed(7);
  StateDict dict;
  dict.emplace_back("conv.weight", torch::randn({16, 1, 3, 3}));
  torch::Tensor specials = torch::randn({8});
  specials[0] = std::numeric_limits<float>::quiet_NaN();
  specials[1] = std::numeric_limits<float>::infinity();
  specials[2] = -0.0f;
  specials[3] = std::numeric_limits<float>::denorm_min();
  dict.emplace_back("conv.bias", specials);
  dict.emplace_back("bn.num_batches_tracked", torch::tensor(int64_t{3}));
  dict.emplace_back("counts", torch::tensor({int64_t{-1}, std::numeric_limits<int64_t>::max(), int64_t{1} << 40}));
  dict.emplace_back("transposed", torch::arange(12, torch::kFloat64).reshape({3, 4}).t());
  dict.emplace_back("empty", torch::zeros({0, 4}));
  dict.emplace_back("mask", torch::tensor({true, false, true}));
  dict.emplace_back("index", torch::tensor({7, -7}, torch::kInt32));
  dict.emplace_back("already_half", torch::randn({5}).to(torch::kFloat16));
  return dict;
}

TEST(WeightsContainer, SaveReadRoundTripIsBitExact) {
  TempDir dir;
  const StateDict dict = varied_state_dict();
  save_state_dict(dict, dir / "w.pth");
  const StateDict back = read_state_dict(dir / "w.pth");
  ASSERT_EQ(back.size(), dict.size());
  for (std::size_t i = 0; i < dict.size(); ++i) {
    EXPECT_EQ(back[i].first, dict[i].first);
    EXPECT_TRUE(back[i].second.device().is_cpu());
    expect_bit_exact(back[i].second, dict[i].second, dict[i].first);
  }
}

TEST(WeightsContainer, WritesTheTorchSaveLayout) {
  TempDir dir;
  save_state_dict(varied_state_dict(), dir / "w.pth");
  // PyTorchStreamReader hides the prefix; the zip headers name every record in full.
  const std::string bytes = file_bytes(dir / "w.pth");
  std::vector<std::string> names = {"archive/data.pkl", "archive/version"};
  for (int i = 0; i < 9; ++i) names.push_back("archive/data/" + std::to_string(i));
  for (const auto& name : names) EXPECT_NE(bytes.find(name), std::string::npos) << name;
  caffe2::serialize::PyTorchStreamReader reader(dir / "w.pth");
  for (const auto& name : reader.getAllRecords()) {
    // LibTorch 2.x adds .data/serialization_id; nothing else may appear.
    if (name.rfind(".data/", 0) != 0) {
      EXPECT_NE(std::find(names.begin(), names.end(), "archive/" + name), names.end()) << name;
    }
  }
  const auto [version, size] = reader.getRecord("version");
  EXPECT_EQ(std::string(static_cast<const char*>(version.get()), size), "3\n");
}

TEST(WeightsContainer, Float16TensorsRoundTripExactly) {
  TempDir dir;
  StateDict dict = varied_state_dict();
  for (auto& entry : dict) {
    if (entry.second.is_floating_point()) entry.second = entry.second.to(torch::kFloat16);
  }
  save_state_dict(dict, dir / "half.pth");
  const StateDict back = read_state_dict(dir / "half.pth");
  ASSERT_EQ(back.size(), dict.size());
  for (std::size_t i = 0; i < dict.size(); ++i) {
    expect_bit_exact(back[i].second, dict[i].second, dict[i].first);  // dtype, NaN and infinities included
  }
}

TEST(WeightsContainer, HalfFileIsSmaller) {
  TempDir dir;
  StateDict dict;
  dict.emplace_back("big", torch::randn({256, 256}));
  save_state_dict(dict, dir / "full.pth");
  save_state_dict({{"big", dict[0].second.to(torch::kFloat16)}}, dir / "half.pth");
  EXPECT_LT(std::filesystem::file_size(dir / "half.pth"), std::filesystem::file_size(dir / "full.pth") * 6 / 10);
}

TEST(WeightsContainer, ReadsArchiveUnderAnyPrefix) {
  TempDir dir;
  StateDictRecord records;
  TensorRecord t;
  t.storage_key = "0";
  t.storage_numel = 3;
  t.sizes = {3};
  t.strides = {1};
  records.entries.emplace_back("w", t);
  const std::string path = dir / "my_weights.pth";  // PyTorchStreamWriter files records under my_weights/
  write_archive(path, {{"data.pkl", write_state_dict_pickle(records)}, {"data/0", bytes_of<float>({1.5f, -2.f, 4.f})}});
  ASSERT_NE(file_bytes(path).find("my_weights/data.pkl"), std::string::npos);

  const StateDict dict = read_state_dict(path);
  ASSERT_EQ(dict.size(), 1u);
  EXPECT_TRUE(torch::equal(dict[0].second, torch::tensor({1.5f, -2.f, 4.f})));
}

// Two views of one storage, as torch.save writes tensors that share memory.
TEST(WeightsContainer, ViewsShareTheirStorage) {
  TempDir dir;
  PickleBytes p;
  p.proto(2).empty_dict().mark();
  p.unicode("rows").tensor("FloatStorage", "0", "cpu", 10, 2, {2, 2}, {2, 1});
  p.unicode("columns").tensor("FloatStorage", "0", "cpu", 10, 0, {5, 2}, {1, 5});
  p.setitems().stop();
  const std::string path = dir / "views.pth";
  write_archive(path, {{"data.pkl", p.str()}, {"data/0", bytes_of<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9})}});
  const StateDict dict = read_state_dict(path);
  ASSERT_EQ(dict.size(), 2u);
  EXPECT_TRUE(torch::equal(dict[0].second, torch::tensor({2.f, 3.f, 4.f, 5.f}).reshape({2, 2})));
  EXPECT_TRUE(torch::equal(dict[1].second, torch::arange(10, torch::kFloat32).reshape({2, 5}).t()));
  EXPECT_EQ(dict[0].second.storage().data(), dict[1].second.storage().data());
}

TEST(WeightsContainer, CudaTaggedStoragesLoadOnCpu) {
  TempDir dir;
  const std::string path = dir / "gpu.pth";
  write_archive(
      path, {{"data.pkl", single_entry_dict("w", PickleBytes().tensor("HalfStorage", "0", "cuda:3", 2, 0, {2}, {1}))},
             {"data/0", bytes_of<uint16_t>({0x3c00, 0xc000})}});  // 1.0, -2.0 in float16
  const StateDict dict = read_state_dict(path, torch::kCPU);
  ASSERT_EQ(dict.size(), 1u);
  EXPECT_TRUE(dict[0].second.device().is_cpu());
  EXPECT_TRUE(torch::equal(dict[0].second.to(torch::kFloat32), torch::tensor({1.f, -2.f})));
}

TEST(WeightsContainer, RefusesNonZipFiles) {
  TempDir dir;
  std::ofstream(dir / "notes.pth") << "these are not weights\n";
  expect_mentions(weights_error([&] { read_state_dict(dir / "notes.pth"); }),
                  {dir / "notes.pth", "not a torch.save zip archive"});
  std::ofstream(dir / "empty.pth").close();
  expect_mentions(weights_error([&] { read_state_dict(dir / "empty.pth"); }),
                  {dir / "empty.pth", "not a torch.save zip archive"});
  // The legacy (pre-1.6) format is a bare pickle.
  std::ofstream(dir / "legacy.pth") << PickleBytes().proto(2).empty_dict().stop().str();
  expect_mentions(weights_error([&] { read_state_dict(dir / "legacy.pth"); }), {dir / "legacy.pth", "legacy"});
  expect_mentions(weights_error([&] { read_state_dict(dir / "absent.pth"); }), {dir / "absent.pth", "no such file"});
}

// fopen() of a FIFO blocks until a writer comes; the reader must refuse it at once.
TEST(WeightsContainer, RefusesAFifoWithoutBlocking) {
  TempDir dir;
  const std::string path = dir / "pipe.pth";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto reading = std::async(std::launch::async, [&] { return weights_error([&] { read_state_dict(path); }); });
  const bool finished = reading.wait_for(std::chrono::seconds(2)) == std::future_status::ready;
  if (!finished) {
    // Releases a reader stuck in fopen() so the test can end.
    const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  }
  const std::string message = reading.get();
  EXPECT_TRUE(finished) << "read_state_dict blocked on a FIFO";
  expect_mentions(message, {path, "is a FIFO, not a regular file"});
}

TEST(WeightsContainer, RefusesTruncatedArchives) {
  TempDir dir;
  save_state_dict(varied_state_dict(), dir / "whole.pth");
  const std::string whole = file_bytes(dir / "whole.pth");
  for (const std::size_t length : {whole.size() / 2, whole.size() - 22, whole.size() - 1}) {
    const std::string path = dir / ("cut" + std::to_string(length) + ".pth");
    std::ofstream(path, std::ios::binary) << whole.substr(0, length);
    expect_mentions(weights_error([&] { read_state_dict(path); }), {path});
  }
}

TEST(WeightsContainer, RefusesMaliciousPickle) {
  TempDir dir;
  const std::string path = dir / "evil.pth";
  const std::string pickle = PickleBytes()
                                 .proto(2)
                                 .global("os", "system")
                                 .unicode("touch " + (dir / "pwned"))
                                 .op('\x85')
                                 .reduce()
                                 .stop()
                                 .str();
  write_archive(path, {{"data.pkl", pickle}});
  expect_mentions(weights_error([&] { read_state_dict(path); }), {path, "'os.system'"});
  EXPECT_FALSE(std::filesystem::exists(dir / "pwned"));
}

TEST(WeightsContainer, RefusesArchiveWithoutDataPkl) {
  TempDir dir;
  const std::string path = dir / "nopickle.pth";
  write_archive(path, {{"data/0", bytes_of<float>({1.f})}});
  expect_mentions(weights_error([&] { read_state_dict(path); }), {path, "data.pkl"});
}

TEST(WeightsContainer, RefusesShortOrMissingStorage) {
  TempDir dir;
  const std::string pickle = single_entry_dict("conv.weight", PickleBytes().float_tensor("0", {3, 4}, {4, 1}, 12));
  const std::string short_path = dir / "short.pth";
  write_archive(short_path, {{"data.pkl", pickle}, {"data/0", bytes_of<float>(std::vector<float>(8, 1.f))}});
  expect_mentions(weights_error([&] { read_state_dict(short_path); }),
                  {short_path, "data/0", "'conv.weight'", "32 bytes", "need 48"});

  const std::string missing_path = dir / "missing.pth";
  write_archive(missing_path, {{"data.pkl", pickle}});
  expect_mentions(weights_error([&] { read_state_dict(missing_path); }),
                  {missing_path, "data/0", "'conv.weight'", "missing"});
}

TEST(WeightsContainer, RefusesViewBeyondDeclaredStorage) {
  TempDir dir;
  const std::string path = dir / "view.pth";
  write_archive(path,
                {{"data.pkl", single_entry_dict("w", PickleBytes().tensor("FloatStorage", "0", "cpu", 4, 3, {2}, {1}))},
                 {"data/0", bytes_of<float>({1, 2, 3, 4})}});
  expect_mentions(weights_error([&] { read_state_dict(path); }), {path, "view needs 5 elements"});
}

TEST(WeightsContainer, RefusesUnsupportedDtypes) {
  TempDir dir;
  const std::string path = dir / "chars.pth";
  write_archive(path,
                {{"data.pkl", single_entry_dict("w", PickleBytes().tensor("CharStorage", "0", "cpu", 4, 0, {4}, {1}))},
                 {"data/0", "abcd"}});
  expect_mentions(weights_error([&] { read_state_dict(path); }), {path, "torch.CharStorage"});

  StateDict complex;
  complex.emplace_back("z", torch::zeros({2}, torch::kComplexFloat));
  expect_mentions(weights_error([&] { save_state_dict(complex, dir / "complex.pth"); }),
                  {dir / "complex.pth", "'z'", "unsupported dtype"});
}

// uint8 (ByteStorage) holds packed training pairs (train.h pack_training_pairs).
TEST(WeightsContainer, Uint8TensorsRoundTrip) {
  TempDir dir;
  const std::string path = dir / "bytes.pth";
  StateDict dict;
  dict.emplace_back("plane", torch::arange(0, 250, torch::kInt32).to(torch::kUInt8).view({10, 25}));
  save_state_dict(dict, path);
  const StateDict back = read_state_dict(path);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].first, "plane");
  EXPECT_EQ(back[0].second.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(back[0].second, dict[0].second));
}

TEST(WeightsContainer, SaveReplacesAtomicallyAndLeavesNoTemporaries) {
  TempDir dir;
  const std::string path = dir / "w.pth";
  StateDict first;
  first.emplace_back("w", torch::ones({4}));
  save_state_dict(first, path);
  StateDict second;
  second.emplace_back("w", torch::full({4}, 2.f));
  save_state_dict(second, path);
  EXPECT_TRUE(torch::equal(read_state_dict(path)[0].second, second[0].second));
  EXPECT_EQ(testing::list_dir(dir.path()), std::set<std::string>{"w.pth"});

  // A failed save leaves the previous file and no temporary behind.
  StateDict bad = second;
  bad.emplace_back("z", torch::zeros({2}, torch::kComplexDouble));
  EXPECT_THROW(save_state_dict(bad, path), WeightsError);
  StateDict duplicated = second;
  duplicated.emplace_back("w", torch::zeros({1}));
  expect_mentions(weights_error([&] { save_state_dict(duplicated, path); }), {path, "duplicate key"});
  StateDict undefined;
  undefined.emplace_back("w", torch::Tensor());
  expect_mentions(weights_error([&] { save_state_dict(undefined, path); }), {path, "undefined"});
  EXPECT_TRUE(torch::equal(read_state_dict(path)[0].second, second[0].second));
  EXPECT_EQ(testing::list_dir(dir.path()), std::set<std::string>{"w.pth"});
}

TEST(WeightsContainer, SaveIntoMissingDirectoryNamesThePath) {
  TempDir dir;
  const std::string path = dir / "no/such/dir/w.pth";
  StateDict dict;
  dict.emplace_back("w", torch::ones({1}));
  expect_mentions(weights_error([&] { save_state_dict(dict, path); }), {path, "No such file or directory"});
  EXPECT_TRUE(testing::list_dir(dir.path()).empty());
}

TEST(WeightsContainer, SavesFromAnyLayoutAndRequiresGradTensors) {
  TempDir dir;
  torch::Tensor parameter = torch::randn({3, 5}, torch::requires_grad());
  StateDict dict;
  dict.emplace_back("p", parameter);
  dict.emplace_back("slice", parameter.detach().slice(1, 1, 4));
  dict.emplace_back("expanded", torch::ones({1, 3}).expand({4, 3}));
  save_state_dict(dict, dir / "w.pth");
  const StateDict back = read_state_dict(dir / "w.pth");
  ASSERT_EQ(back.size(), 3u);
  for (std::size_t i = 0; i < dict.size(); ++i) {
    EXPECT_TRUE(torch::equal(back[i].second, dict[i].second.detach())) << dict[i].first;
  }
}

}  // namespace
}  // namespace efcnet
