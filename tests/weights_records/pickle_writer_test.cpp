// The pickle writer: what it writes reads back unchanged and is laid out as torch.save's.
#include <gtest/gtest.h>

#include <string>

#include "efcnet/weights_records.h"

namespace efcnet {
namespace {

TensorRecord contiguous(const std::string& storage_key, DType dtype, std::vector<int64_t> sizes) {
  TensorRecord t;
  t.storage_key = storage_key;
  t.dtype = dtype;
  t.sizes = std::move(sizes);
  t.strides.assign(t.sizes.size(), 1);
  for (std::size_t d = t.sizes.size(); d-- > 1;) t.strides[d - 1] = t.strides[d] * t.sizes[d];
  t.storage_numel = t.numel();
  return t;
}

void expect_same(const TensorRecord& a, const TensorRecord& b, const std::string& key) {
  EXPECT_EQ(a.storage_key, b.storage_key) << key;
  EXPECT_EQ(a.dtype, b.dtype) << key;
  EXPECT_EQ(a.device, b.device) << key;
  EXPECT_EQ(a.storage_numel, b.storage_numel) << key;
  EXPECT_EQ(a.sizes, b.sizes) << key;
  EXPECT_EQ(a.strides, b.strides) << key;
  EXPECT_EQ(a.storage_offset, b.storage_offset) << key;
  EXPECT_EQ(a.requires_grad, b.requires_grad) << key;
}

void expect_round_trip(const StateDictRecord& dict) {
  const StateDictRecord back = read_state_dict_pickle(write_state_dict_pickle(dict), "written");
  ASSERT_EQ(back.entries.size(), dict.entries.size());
  for (std::size_t i = 0; i < dict.entries.size(); ++i) {
    EXPECT_EQ(back.entries[i].first, dict.entries[i].first);
    expect_same(back.entries[i].second, dict.entries[i].second, dict.entries[i].first);
  }
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

TEST(PickleWriter, RoundTripsEveryKindOfRecord) {
  StateDictRecord dict;
  dict.entries.emplace_back("conv.weight", contiguous("0", DType::Float32, {16, 1, 3, 3}));
  dict.entries.emplace_back("conv.bias", contiguous("1", DType::Float16, {300}));
  dict.entries.emplace_back("bn.num_batches_tracked", contiguous("2", DType::Int64, {}));
  dict.entries.emplace_back("empty", contiguous("3", DType::Float64, {0, 5}));
  dict.entries.emplace_back("mask", contiguous("4", DType::Bool, {2, 2}));
  dict.entries.emplace_back("index", contiguous("5", DType::Int32, {70000}));
  // A transposed view at an offset into a storage larger than int32 elements: exercises LONG1.
  TensorRecord view = contiguous("6", DType::Float32, {2, 3});
  view.strides = {1, 2};
  view.storage_offset = int64_t{1} << 33;
  view.storage_numel = view.storage_offset + 6;
  view.requires_grad = true;
  dict.entries.emplace_back("view", view);
  TensorRecord on_gpu = contiguous("7", DType::Float32, {4});
  on_gpu.device = "cuda:0";
  dict.entries.emplace_back("on_gpu", on_gpu);
  expect_round_trip(dict);
}

TEST(PickleWriter, RoundTripsEmptyDict) { expect_round_trip(StateDictRecord{}); }

TEST(PickleWriter, RoundTripsThousandsOfEntriesInOrder) {
  StateDictRecord dict;
  for (int i = 0; i < 2001; ++i) {  // SETITEMS batches of 1000 and a single trailing SETITEM
    dict.entries.emplace_back("layer" + std::to_string(2001 - i) + ".weight",
                              contiguous(std::to_string(i), DType::Float32, {i % 7, 3}));
  }
  expect_round_trip(dict);
  const std::string pickle = write_state_dict_pickle(dict);
  EXPECT_EQ(count(pickle, "torch._utils\n_rebuild_tensor_v2\n"), 1u);  // memoized after first use
  EXPECT_EQ(pickle.back(), '.');
  EXPECT_EQ(pickle[pickle.size() - 2], 's');  // entry 2001 is a batch of one
}

// The opening and closing torch.save writes for a plain dict: PROTO 2, EMPTY_DICT, BINPUT 0, MARK,
// ..., SETITEMS, STOP; storages named by persistent ids of torch.<Type>Storage.
TEST(PickleWriter, LaysOutLikeTorchSave) {
  StateDictRecord dict;
  dict.entries.emplace_back("a", contiguous("0", DType::Float32, {2}));
  dict.entries.emplace_back("b", contiguous("1", DType::Float16, {2}));
  dict.entries.emplace_back("c", contiguous("2", DType::Float32, {2}));
  const std::string pickle = write_state_dict_pickle(dict);
  EXPECT_EQ(pickle.substr(0, 6), std::string("\x80\x02}q\x00(", 6));
  EXPECT_EQ(pickle.substr(pickle.size() - 2), "u.");
  EXPECT_EQ(count(pickle, "ctorch\nFloatStorage\n"), 1u);
  EXPECT_EQ(count(pickle, "ctorch\nHalfStorage\n"), 1u);
  EXPECT_EQ(count(pickle, "ccollections\nOrderedDict\n"), 1u);
  EXPECT_EQ(count(pickle, std::string("X\x07\x00\x00\x00storage", 12)), 1u);
  EXPECT_EQ(count(pickle, std::string("X\x03\x00\x00\x00"
                                      "cpu",
                                      8)),
            1u);
}

TEST(PickleWriter, RefusesInconsistentRecords) {
  const auto refused = [](const StateDictRecord& dict, const std::string& fragment) {
    try {
      write_state_dict_pickle(dict);
      ADD_FAILURE() << "wrote a pickle; expected a refusal mentioning " << fragment;
    } catch (const PickleError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  StateDictRecord duplicate;
  duplicate.entries.emplace_back("w", contiguous("0", DType::Float32, {1}));
  duplicate.entries.emplace_back("w", contiguous("1", DType::Float32, {1}));
  refused(duplicate, "duplicate key");

  StateDictRecord short_storage;
  short_storage.entries.emplace_back("w", contiguous("0", DType::Float32, {4}));
  short_storage.entries[0].second.storage_numel = 3;
  refused(short_storage, "view needs 4 elements");

  StateDictRecord bad_key;
  bad_key.entries.emplace_back("w", contiguous("../0", DType::Float32, {1}));
  refused(bad_key, "storage key");

  StateDictRecord bad_device;
  bad_device.entries.emplace_back("w", contiguous("0", DType::Float32, {1}));
  bad_device.entries[0].second.device = "tpu";
  refused(bad_device, "'tpu'");

  StateDictRecord mixed_storage;
  mixed_storage.entries.emplace_back("a", contiguous("0", DType::Float32, {2}));
  mixed_storage.entries.emplace_back("b", contiguous("0", DType::Int64, {2}));
  refused(mixed_storage, "shared with a tensor of another type");
}

TEST(RecordsTensor, NumelAndRequiredStorage) {
  TensorRecord t = contiguous("0", DType::Float32, {2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.required_storage_numel(), 24);
  t.storage_offset = 5;
  t.strides = {1, 2, 6};  // column-major
  EXPECT_EQ(t.required_storage_numel(), 5 + 1 + 4 + 18 + 1);
  t.sizes = {2, 0, 4};
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.required_storage_numel(), 0);
  t.sizes = {int64_t{1} << 40, int64_t{1} << 40, 1};
  EXPECT_THROW(t.numel(), PickleError);
}

TEST(RecordsTensor, DTypeFacts) {
  EXPECT_EQ(itemsize(DType::Float16), 2u);
  EXPECT_EQ(itemsize(DType::Int64), 8u);
  EXPECT_STREQ(storage_class_name(DType::Float64), "DoubleStorage");
  EXPECT_STREQ(dtype_name(DType::Bool), "bool");
}

}  // namespace
}  // namespace efcnet
