// The restricted unpickler on byte strings synthesised opcode by opcode.
#include <gtest/gtest.h>

#include <string>

#include "efcnet/weights_records.h"
#include "weights_records/pickle_bytes.h"

namespace efcnet {
namespace {

using testing::PickleBytes;
using testing::single_entry_dict;

const std::string kSource = "fixture.pth";

StateDictRecord read(const std::string& pickle) { return read_state_dict_pickle(pickle, kSource); }

// The PickleError message for `pickle`, or a failure naming what came back instead.
std::string refusal(const std::string& pickle) {
  try {
    const StateDictRecord dict = read(pickle);
    ADD_FAILURE() << "accepted a pickle with " << dict.entries.size() << " entries";
  } catch (const PickleError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_REFUSED(pickle, fragment)                             \
  do {                                                               \
    const std::string message = refusal(pickle);                     \
    EXPECT_NE(message.find(kSource), std::string::npos) << message;  \
    EXPECT_NE(message.find(fragment), std::string::npos) << message; \
  } while (0)

TEST(PickleReader, ReadsMinimalStateDict) {
  const std::string pickle = single_entry_dict("conv.weight", PickleBytes().float_tensor("0", {2, 3}, {3, 1}, 6));
  const StateDictRecord dict = read(pickle);
  ASSERT_EQ(dict.entries.size(), 1u);
  const auto& [key, tensor] = dict.entries[0];
  EXPECT_EQ(key, "conv.weight");
  EXPECT_EQ(tensor.storage_key, "0");
  EXPECT_EQ(tensor.dtype, DType::Float32);
  EXPECT_EQ(tensor.device, "cpu");
  EXPECT_EQ(tensor.storage_numel, 6);
  EXPECT_EQ(tensor.sizes, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(tensor.strides, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(tensor.storage_offset, 0);
  EXPECT_FALSE(tensor.requires_grad);
  EXPECT_EQ(tensor.numel(), 6);
  EXPECT_EQ(tensor.required_storage_numel(), 6);
}

TEST(PickleReader, ReadsEmptyStateDict) {
  EXPECT_TRUE(read(PickleBytes().proto(2).empty_dict().stop().str()).entries.empty());
}

// What torch.save writes for model.state_dict(): an OrderedDict, its items, then BUILD of
// {'_metadata': OrderedDict({'': {'version': 1}, ...})}.
TEST(PickleReader, ReadsOrderedDictWithMetadataBuild) {
  PickleBytes p;
  p.proto(2).global("collections", "OrderedDict").put(0).empty_tuple().reduce().put(1).mark();
  p.unicode("a.weight").float_tensor("0", {4}, {1}, 4);
  p.unicode("a.bias").tensor("DoubleStorage", "1", "cpu", 2, 0, {2}, {1});
  p.unicode("bn.num_batches_tracked").tensor("LongStorage", "2", "cpu", 1, 0, {}, {});
  p.setitems();
  p.empty_dict().unicode("_metadata").get(0).empty_tuple().reduce().mark();
  p.unicode("").empty_dict().unicode("version").integer(1).setitem();
  p.unicode("a").empty_dict().unicode("version").integer(1).setitem();
  p.setitems().setitem().build().stop();

  const StateDictRecord dict = read(p.str());
  ASSERT_EQ(dict.entries.size(), 3u);
  EXPECT_EQ(dict.entries[0].first, "a.weight");
  EXPECT_EQ(dict.entries[1].first, "a.bias");
  EXPECT_EQ(dict.entries[1].second.dtype, DType::Float64);
  EXPECT_EQ(dict.entries[2].first, "bn.num_batches_tracked");
  EXPECT_EQ(dict.entries[2].second.dtype, DType::Int64);
  EXPECT_TRUE(dict.entries[2].second.sizes.empty());
  EXPECT_EQ(dict.entries[2].second.numel(), 1);
}

TEST(PickleReader, KeepsCudaLocationTag) {
  const std::string pickle = single_entry_dict("w", PickleBytes().tensor("HalfStorage", "0", "cuda:1", 8, 0, {8}, {1}));
  const StateDictRecord dict = read(pickle);
  ASSERT_EQ(dict.entries.size(), 1u);
  EXPECT_EQ(dict.entries[0].second.device, "cuda:1");
  EXPECT_EQ(dict.entries[0].second.dtype, DType::Float16);
}

// Protocol 4 spells the same objects with FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL,
// BINUNICODE8 and LONG1; LONG_BINPUT/LONG_BINGET reach memo slots past 255.
TEST(PickleReader, ReadsProtocol4Opcodes) {
  const auto persistent_storage = [](PickleBytes& p, const std::string& key, int64_t numel) {
    p.mark().short_unicode("storage").stack_global("torch", "FloatStorage").short_unicode(key);
    p.short_unicode("cpu").op('\x8a').byte(2).le(static_cast<uint64_t>(numel), 2).tuple();
    p.binpersid();
  };
  PickleBytes body;
  body.empty_dict().op('\x94').mark();    // MEMOIZE
  body.op('\x8d').le(5, 8).raw("first");  // BINUNICODE8
  body.stack_global("torch._utils", "_rebuild_tensor_v2").op('r').le(300, 4).mark();
  persistent_storage(body, "7", 24);
  body.op('\x8a').byte(0);                           // LONG1 of no bytes: offset 0
  body.integer(2).integer(3).integer(4).op('\x87');  // TUPLE3
  body.integer(12).integer(4).integer(1).op('\x87').boolean(false);
  body.stack_global("collections", "OrderedDict").empty_tuple().reduce().tuple().reduce();
  body.short_unicode("second").op('j').le(300, 4).mark();  // LONG_BINGET
  persistent_storage(body, "8", 300);
  body.integer(0).integer(300).op('\x85').integer(1).op('\x85').boolean(false);
  body.stack_global("collections", "OrderedDict").empty_tuple().reduce().tuple().reduce();
  body.setitems().stop();
  const std::string pickle = PickleBytes().proto(4).op('\x95').le(body.str().size(), 8).raw(body.str()).str();

  const StateDictRecord dict = read(pickle);
  ASSERT_EQ(dict.entries.size(), 2u);
  EXPECT_EQ(dict.entries[0].first, "first");
  EXPECT_EQ(dict.entries[0].second.storage_key, "7");
  EXPECT_EQ(dict.entries[0].second.sizes, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(dict.entries[0].second.strides, (std::vector<int64_t>{12, 4, 1}));
  EXPECT_EQ(dict.entries[1].first, "second");
  EXPECT_EQ(dict.entries[1].second.storage_numel, 300);
  EXPECT_EQ(dict.entries[1].second.sizes, (std::vector<int64_t>{300}));
}

TEST(PickleReader, ReadsRebuildParameter) {
  PickleBytes value;
  value.global("torch._utils", "_rebuild_parameter").mark();
  value.float_tensor("0", {3}, {1}, 3).boolean(true).ordered_dict().tuple().reduce();
  const StateDictRecord dict = read(single_entry_dict("p", value));
  ASSERT_EQ(dict.entries.size(), 1u);
  EXPECT_TRUE(dict.entries[0].second.requires_grad);
  EXPECT_EQ(dict.entries[0].second.sizes, (std::vector<int64_t>{3}));
}

TEST(PickleReader, ReadsViewsSharingOneStorage) {
  PickleBytes p;
  p.proto(2).empty_dict().mark();
  p.unicode("first").tensor("FloatStorage", "0", "cpu", 10, 0, {2, 2}, {2, 1});
  p.unicode("second").tensor("FloatStorage", "0", "cpu", 10, 4, {3, 2}, {1, 3});
  p.setitems().stop();
  const StateDictRecord dict = read(p.str());
  ASSERT_EQ(dict.entries.size(), 2u);
  EXPECT_EQ(dict.entries[1].second.storage_offset, 4);
  EXPECT_EQ(dict.entries[1].second.required_storage_numel(), 4 + 2 * 1 + 1 * 3 + 1);
}

TEST(PickleReader, RepeatedKeyKeepsFirstPositionAndLastValue) {
  PickleBytes p;
  p.proto(2).empty_dict().mark();
  p.unicode("a").float_tensor("0", {1}, {1}, 1);
  p.unicode("b").float_tensor("1", {2}, {1}, 2);
  p.unicode("a").float_tensor("2", {3}, {1}, 3);
  p.setitems().stop();
  const StateDictRecord dict = read(p.str());
  ASSERT_EQ(dict.entries.size(), 2u);
  EXPECT_EQ(dict.entries[0].first, "a");
  EXPECT_EQ(dict.entries[0].second.storage_key, "2");
  EXPECT_EQ(dict.entries[1].first, "b");
}

TEST(PickleReader, AcceptsNewobjOfOrderedDict) {
  PickleBytes p;
  p.proto(2).global("collections", "OrderedDict").empty_tuple().op('\x81');
  p.unicode("w").float_tensor("0", {1}, {1}, 1).setitem().stop();
  EXPECT_EQ(read(p.str()).entries.size(), 1u);
}

// ---- refusals ----

TEST(PickleRefusal, OsSystemGlobalAndReduce) {
  const std::string pickle =
      PickleBytes().proto(2).global("os", "system").unicode("touch /tmp/pwned").op('\x85').reduce().stop().str();
  EXPECT_REFUSED(pickle, "'os.system'");
}

TEST(PickleRefusal, PosixSystemInsideATensorEntry) {
  PickleBytes value;
  value.global("posix", "system").unicode("id").op('\x85').reduce();
  EXPECT_REFUSED(single_entry_dict("w", value), "'posix.system'");
}

TEST(PickleRefusal, BuiltinsEvalThroughStackGlobal) {
  const std::string pickle =
      PickleBytes().proto(4).stack_global("builtins", "eval").short_unicode("1+1").op('\x85').reduce().stop().str();
  EXPECT_REFUSED(pickle, "'builtins.eval'");
}

TEST(PickleRefusal, TorchGlobalsOutsideTheAllowList) {
  EXPECT_REFUSED(PickleBytes().proto(2).global("torch", "load").stop().str(), "'torch.load'");
  EXPECT_REFUSED(PickleBytes().proto(2).global("torch._utils", "_rebuild_qtensor").stop().str(),
                 "'torch._utils._rebuild_qtensor'");
}

TEST(PickleRefusal, UnsupportedStorageDtype) {
  const std::string pickle = single_entry_dict("w", PickleBytes().tensor("CharStorage", "0", "cpu", 4, 0, {4}, {1}));
  EXPECT_REFUSED(pickle, "unsupported storage dtype 'torch.CharStorage'");
}

TEST(PickleRefusal, ReduceOfUnknownCallable) {
  // A string is not callable; neither is a storage class outside a persistent id.
  EXPECT_REFUSED(PickleBytes().proto(2).unicode("os.system").empty_tuple().reduce().stop().str(), "REDUCE of a str");
  EXPECT_REFUSED(PickleBytes().proto(2).global("torch", "FloatStorage").empty_tuple().reduce().stop().str(),
                 "REDUCE of torch.FloatStorage");
}

TEST(PickleRefusal, NewobjOfTensorRebuild) {
  PickleBytes p;
  p.proto(2).global("torch._utils", "_rebuild_tensor_v2").empty_tuple().op('\x81').stop();
  EXPECT_REFUSED(p.str(), "NEWOBJ of torch._utils._rebuild_tensor_v2 is not allowed");
}

TEST(PickleRefusal, OrderedDictWithArguments) {
  PickleBytes p;
  p.proto(2).global("collections", "OrderedDict").mark().empty_tuple().tuple().reduce().stop();
  EXPECT_REFUSED(p.str(), "OrderedDict with arguments");
}

TEST(PickleRefusal, NonTensorValues) {
  EXPECT_REFUSED(single_entry_dict("epoch", PickleBytes().integer(3)), "entry 'epoch' is an int");
  PickleBytes nested;
  nested.empty_dict().unicode("w").float_tensor("0", {1}, {1}, 1).setitem();
  EXPECT_REFUSED(single_entry_dict("state_dict", nested), "entry 'state_dict' is a dict");
  EXPECT_REFUSED(PickleBytes().proto(2).op(']').stop().str(), "holds a list, not a state dict");
}

TEST(PickleRefusal, RebuildTensorWithoutPersistentStorage) {
  PickleBytes value;
  value.global("torch._utils", "_rebuild_tensor_v2").mark();
  value.unicode("not a storage").integer(0).int_tuple({1}).int_tuple({1}).boolean(false);
  value.ordered_dict().tuple().reduce();
  EXPECT_REFUSED(single_entry_dict("w", value), "storage argument is a str");
}

TEST(PickleRefusal, RebuildTensorWithBackwardHooks) {
  PickleBytes value;
  value.global("torch._utils", "_rebuild_tensor_v2").mark();
  value.storage("FloatStorage", "0", "cpu", 1).integer(0).int_tuple({1}).int_tuple({1});
  value.boolean(false).ordered_dict().unicode("hook").integer(1).setitem().tuple().reduce();
  EXPECT_REFUSED(single_entry_dict("w", value), "backward hooks are not an empty dict");
}

TEST(PickleRefusal, MalformedPersistentIds) {
  const auto with_storage = [](const std::string& key, const std::string& location) {
    return single_entry_dict("w", PickleBytes().tensor("FloatStorage", key, location, 1, 0, {1}, {1}));
  };
  EXPECT_REFUSED(with_storage("../../etc/passwd", "cpu"), "storage key");
  EXPECT_REFUSED(with_storage("", "cpu"), "storage key");
  EXPECT_REFUSED(with_storage("0", "mps"), "'mps'");
  EXPECT_REFUSED(with_storage("0", "cuda:"), "'cuda:'");
  PickleBytes pid;
  pid.proto(2).mark().unicode("module").global("torch", "FloatStorage").tuple().binpersid().stop();
  EXPECT_REFUSED(pid.str(), "persistent id is not ('storage'");
}

TEST(PickleRefusal, ConflictingDescriptionsOfOneStorage) {
  PickleBytes p;
  p.proto(2).empty_dict().mark();
  p.unicode("a").tensor("FloatStorage", "0", "cpu", 4, 0, {4}, {1});
  p.unicode("b").tensor("DoubleStorage", "0", "cpu", 4, 0, {4}, {1});
  p.setitems().stop();
  EXPECT_REFUSED(p.str(), "storage '0' is described twice");
}

TEST(PickleRefusal, TruncatedStreamAtEveryLength) {
  PickleBytes p;
  p.proto(2).ordered_dict().put(0).mark();
  p.unicode("a.weight").float_tensor("0", {2, 2}, {2, 1}, 4);
  p.unicode("a.bias").float_tensor("1", {2}, {1}, 2);
  p.setitems().stop();
  const std::string pickle = p.str();
  ASSERT_EQ(read(pickle).entries.size(), 2u);
  for (std::size_t length = 0; length < pickle.size(); ++length) {
    EXPECT_THROW(read(pickle.substr(0, length)), PickleError) << "prefix of " << length << " bytes";
  }
}

TEST(PickleRefusal, UnsupportedOpcodes) {
  EXPECT_REFUSED(PickleBytes().proto(2).byte(0xff).str(), "unsupported pickle opcode 0xff");
  // INST (protocol 0) and INT (text integers) are outside what torch.save writes.
  EXPECT_REFUSED(PickleBytes().proto(2).raw("ios\nsystem\n").str(), "opcode 0x69 'i'");
  EXPECT_REFUSED(PickleBytes().proto(2).raw("I1\n.").str(), "opcode 0x49 'I'");
  EXPECT_REFUSED(PickleBytes().proto(6).empty_dict().stop().str(), "protocol 6");
}

TEST(PickleRefusal, HugeLengthPrefixes) {
  EXPECT_REFUSED(PickleBytes().proto(2).op('X').le(0xffffffffu, 4).raw("abc").str(), "4294967295 bytes announced");
  EXPECT_REFUSED(PickleBytes().proto(4).op('\x8d').le(~uint64_t{0}, 8).raw("abc").str(), "truncated pickle");
  EXPECT_REFUSED(PickleBytes().proto(4).op('\x95').le(uint64_t{1} << 62, 8).empty_dict().stop().str(), "FRAME");
  EXPECT_REFUSED(PickleBytes().proto(2).op('c').raw(std::string(1000, 'a') + "\nb\n").str(), "GLOBAL name longer");
  EXPECT_REFUSED(PickleBytes().proto(4).unicode(std::string(1000, 'a')).unicode("b").op('\x93').str(),
                 "global name longer");
  EXPECT_REFUSED(PickleBytes().proto(2).op('\x8a').byte(9).le(1, 8).byte(0).str(), "does not fit in int64");
}

TEST(PickleRefusal, NegativeSizesStridesAndOffsets) {
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", {-1, 3}, {3, 1}, 6)), "negative size -1");
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", {2, 3}, {-3, 1}, 6)), "negative stride -3");
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().tensor("FloatStorage", "0", "cpu", 6, -2, {2}, {1})),
                 "negative storage offset");
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", {2}, {1}, -6)),
                 "numel is not a non-negative int");
  // LONG1 is two's complement: one 0xff byte is -1.
  PickleBytes long1_offset;
  long1_offset.global("torch._utils", "_rebuild_tensor_v2").mark();
  long1_offset.storage("FloatStorage", "0", "cpu", 2).op('\x8a').byte(1).byte(0xff);
  long1_offset.int_tuple({1}).int_tuple({1}).boolean(false).ordered_dict().tuple().reduce();
  EXPECT_REFUSED(single_entry_dict("w", long1_offset), "negative storage offset -1");
}

TEST(PickleRefusal, OverflowingSizes) {
  const int64_t big = int64_t{1} << 62;
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", {big, 4}, {4, 1}, 8)), "overflows");
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", {3}, {big}, 8)), "overflows");
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", {1}, {1}, big)), "overflows int64 bytes");
}

TEST(PickleRefusal, ViewOutsideItsStorage) {
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", {2, 3}, {3, 1}, 5)),
                 "view needs 6 elements but storage '0' holds 5");
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().tensor("FloatStorage", "0", "cpu", 6, 1, {2, 3}, {3, 1})),
                 "view needs 7 elements");
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", {2, 3}, {1}, 6)),
                 "sizes have 2 dimensions but strides have 1");
}

// A 1-element storage expanded to 65536 x 65536 (stride 0) would materialise as 16 GiB of float32.
TEST(PickleRefusal, ZeroStrideAndOverlappingViews) {
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", {65536, 65536}, {0, 0}, 1)),
                 "has stride 0: its elements overlap");
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", {4, 3}, {1, 1}, 6)), "make elements overlap");
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", {3, 4}, {2, 1}, 12)), "make elements overlap");
  // Size-1 dimensions never step, whatever their stride; transposed and sliced views do not overlap.
  EXPECT_EQ(read(single_entry_dict("w", PickleBytes().float_tensor("0", {1, 3}, {0, 1}, 3))).entries.size(), 1u);
  EXPECT_EQ(read(single_entry_dict("w", PickleBytes().float_tensor("0", {3, 2}, {1, 3}, 6))).entries.size(), 1u);
  EXPECT_EQ(read(single_entry_dict("w", PickleBytes().float_tensor("0", {2, 2}, {4, 1}, 8))).entries.size(), 1u);
}

// `]` then `}a` over and over: two bytes of input make a dict of a hundred bytes, so a 64 MB file
// of them would build gigabytes. The budget refuses it in proportion to the input.
TEST(PickleRefusal, ObjectsBeyondTheMemoryBudget) {
  std::string many_dicts;
  for (int i = 0; i < (1 << 21); ++i) many_dicts += "}a";
  EXPECT_REFUSED(PickleBytes().proto(2).op(']').raw(many_dicts).stop().str(), "MiB of objects from");
}

TEST(PickleRefusal, TooManyDimensions) {
  const std::vector<int64_t> ones(33, 1);
  EXPECT_REFUSED(single_entry_dict("w", PickleBytes().float_tensor("0", ones, ones, 1)), "33 dimensions");
}

TEST(PickleRefusal, StackAndMarkDepthAreBounded) {
  EXPECT_REFUSED(PickleBytes().proto(2).raw(std::string(100, '(')).str(), "MARKs nested deeper");
  EXPECT_REFUSED(PickleBytes().proto(2).raw(std::string((1 << 20) + 1, 'N')).str(), "stack deeper");
}

TEST(PickleRefusal, StackMisuse) {
  EXPECT_REFUSED(PickleBytes().proto(2).reduce().str(), "REDUCE on an empty stack");
  // Objects below a MARK are out of reach until the mark is closed.
  EXPECT_REFUSED(PickleBytes().proto(2).empty_dict().mark().op('\x85').str(), "on an empty stack");
  EXPECT_REFUSED(PickleBytes().proto(2).empty_dict().tuple().str(), "TUPLE without a MARK");
  EXPECT_REFUSED(PickleBytes().proto(2).empty_dict().empty_dict().stop().str(), "2 objects on the stack");
  EXPECT_REFUSED(PickleBytes().proto(2).empty_dict().mark().stop().str(), "unclosed MARK");
  EXPECT_REFUSED(PickleBytes().proto(2).get(7).str(), "memo key 7");
  EXPECT_REFUSED(PickleBytes().proto(2).op(']').integer(1).integer(2).setitem().str(), "SETITEM on a list");
  EXPECT_REFUSED(PickleBytes().proto(2).empty_dict().integer(1).integer(2).setitem().str(), "dict key is an int");
  EXPECT_REFUSED(PickleBytes().proto(2).empty_dict().mark().unicode("k").setitems().str(), "odd number");
}

TEST(PickleRefusal, BuildOtherThanOrderedDictMetadata) {
  PickleBytes on_plain_dict;
  on_plain_dict.proto(2).empty_dict().empty_dict().build().stop();
  EXPECT_REFUSED(on_plain_dict.str(), "BUILD on a dict");
  PickleBytes other_attribute;
  other_attribute.proto(2).ordered_dict().empty_dict().unicode("__class__").integer(1).setitem();
  other_attribute.build().stop();
  EXPECT_REFUSED(other_attribute.str(), "BUILD sets attribute '__class__'");
}

TEST(PickleRefusal, MemoCyclesAreHarmless) {
  // A list appended into itself through the memo: no leak, no endless recursion, a clean refusal.
  PickleBytes p;
  p.proto(2).op(']').put(0).get(0).op('a').get(0).op('a').stop();
  EXPECT_REFUSED(p.str(), "holds a list");
}

TEST(PickleRefusal, UntrustedTextIsEscapedInMessages) {
  EXPECT_REFUSED(PickleBytes().proto(2).global("os\x01", std::string(100, 'x')).str(), "'os\\x01.xxxx");
}

}  // namespace
}  // namespace efcnet
