// libFuzzer target for the .pth zip container as far as the project reads it before LibTorch:
// the central directory check (src/weights/zip_directory.h), then the data.pkl it locates through
// the restricted unpickler. Any input must be accepted or refused with PickleError; crashes,
// sanitizer reports, leaks and other exceptions are bugs. Whatever the check accepts must lie
// inside the input, which is what makes LibTorch's allocations afterwards bounded.
#include <cstddef>
#include <cstdint>
#include <string>

#include "efcnet/weights_records.h"
#include "weights/zip_directory.h"

namespace {

constexpr std::size_t kLocalHeaderBytes = 30;

uint64_t le(const std::string& bytes, std::size_t at, std::size_t n) {
  uint64_t value = 0;
  for (std::size_t i = n; i-- > 0;) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
  return value;
}

// A stored record's data, found through its local header, or "" when the header is not there.
std::string stored_data(const std::string& zip, const efcnet::ZipRecord& record) {
  if (record.local_header_offset > zip.size() || zip.size() - record.local_header_offset < kLocalHeaderBytes) {
    __builtin_trap();  // the check promised the record lies inside the archive
  }
  const auto at = static_cast<std::size_t>(record.local_header_offset);
  if (le(zip, at, 4) != 0x04034b50) return "";
  const std::size_t data = at + kLocalHeaderBytes + le(zip, at + 26, 2) + le(zip, at + 28, 2);
  if (data > zip.size() || zip.size() - data < record.compressed_size) return "";
  return zip.substr(data, static_cast<std::size_t>(record.compressed_size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string zip(reinterpret_cast<const char*>(data), size);
  const efcnet::ReadAt read_at = [&zip](uint64_t offset, std::size_t n) {
    return offset >= zip.size() ? std::string() : zip.substr(static_cast<std::size_t>(offset), n);
  };
  try {
    for (const efcnet::ZipRecord& record : efcnet::read_zip_directory(read_at, zip.size(), "fuzz-input")) {
      if (record.method == 0 && record.uncompressed_size != record.compressed_size) __builtin_trap();
      if (record.method == 0 && record.name.size() >= 8 && record.name.substr(record.name.size() - 8) == "data.pkl") {
        efcnet::read_state_dict_pickle(stored_data(zip, record), "fuzz-input");
      }
    }
  } catch (const efcnet::PickleError&) {
    return 0;  // refused: the expected outcome for most inputs
  }
  return 0;
}
