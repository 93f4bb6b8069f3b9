// Helpers shared by the pickle reader and writer (not part of the public API).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "efcnet/weights_records.h"

namespace efcnet::pickle_detail {

// Far above any real tensor (LibTorch kernels stop at 25 dimensions); bounds per-tensor work.
constexpr std::size_t kMaxDims = 32;
// torch.save names storages by decimal counters; anything long or odd is refused.
constexpr std::size_t kMaxStorageKeyBytes = 64;

// 1-kMaxStorageKeyBytes letters, digits or underscores.
bool is_storage_key(std::string_view key);
// "cpu" or "cuda:N".
bool is_storage_location(std::string_view location);

// Why the record cannot describe a tensor (dims mismatch, negative or overflowing sizes, view
// outside its storage, elements that overlap, ...), or "" when it is consistent.
std::string tensor_record_problem(const TensorRecord& tensor);

// `text` in single quotes, cut to a readable length, non-printable bytes as \xNN: untrusted
// strings go into error messages only through this.
std::string printable_quoted(std::string_view text);

}  // namespace efcnet::pickle_detail
