// Helpers for the weights tests: archives written record by record, errors caught by type.
#pragma once

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "efcnet/weights.h"

namespace efcnet::testing {

using Records = std::vector<std::pair<std::string, std::string>>;  // (name, bytes)

// A zip written by PyTorchStreamWriter itself; it files the records under the file's stem and
// adds the `version` record.
inline void write_archive(const std::string& path, const Records& records) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  for (const auto& [name, bytes] : records) writer.writeRecord(name, bytes.data(), bytes.size());
  writer.writeEndOfFile();
}

template <typename T>
std::string bytes_of(const std::vector<T>& values) {
  std::string bytes(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// The WeightsError message `action` throws, or a test failure when it throws none.
template <typename Action>
std::string weights_error(Action&& action) {
  try {
    action();
  } catch (const WeightsError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no WeightsError was thrown";
  return "";
}

// `message` contains every one of `fragments`.
inline void expect_mentions(const std::string& message, const std::vector<std::string>& fragments) {
  for (const auto& fragment : fragments) {
    EXPECT_NE(message.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << message;
  }
}

// Same dtype, shape and bytes.
inline void expect_bit_exact(const torch::Tensor& actual, const torch::Tensor& expected, const std::string& key) {
  ASSERT_EQ(actual.scalar_type(), expected.scalar_type()) << key;
  ASSERT_EQ(actual.sizes(), expected.sizes()) << key;
  const torch::Tensor a = actual.contiguous();
  const torch::Tensor e = expected.contiguous();
  EXPECT_EQ(std::memcmp(a.data_ptr(), e.data_ptr(), e.nbytes()), 0) << key;
}

}  // namespace efcnet::testing
