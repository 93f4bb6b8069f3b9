// Central directory reader: the layout is PKWARE's APPNOTE.TXT (sections 4.3.12-4.3.16, 4.5.3).
#include "zip_directory.h"

#include <algorithm>

#include "pickle_detail.h"

namespace efcnet {
namespace {

constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kZip64EndSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint32_t kEntrySignature = 0x02014b50;
constexpr std::size_t kEndBytes = 22;
constexpr std::size_t kZip64LocatorBytes = 20;
constexpr std::size_t kZip64EndBytes = 56;
constexpr std::size_t kEntryBytes = 46;
constexpr std::size_t kLocalHeaderBytes = 30;
constexpr std::size_t kMaxCommentBytes = 0xffff;
// A state dict's directory: one entry per storage plus a few; kMaxTensors-sized dicts fit easily.
constexpr uint64_t kMaxDirectoryBytes = uint64_t{64} << 20;

[[noreturn]] void fail(const std::string& source, const std::string& what) { throw PickleError(source + ": " + what); }

uint64_t le(std::string_view bytes, std::size_t at, std::size_t n) {
  uint64_t value = 0;
  for (std::size_t i = n; i-- > 0;) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
  return value;
}

struct Directory {
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t entries = 0;
};

// Finds the end-of-central-directory record in the file's last 64 KiB + 22 bytes, then the zip64
// record when the classic one says its fields overflowed.
Directory locate_directory(const ReadAt& read_at, uint64_t file_size, const std::string& source) {
  if (file_size < kEndBytes) fail(source, "not a zip archive (shorter than its end record)");
  const uint64_t tail_start = file_size - std::min<uint64_t>(file_size, kEndBytes + kMaxCommentBytes);
  const std::string tail = read_at(tail_start, static_cast<std::size_t>(file_size - tail_start));
  if (tail.size() != file_size - tail_start) fail(source, "file shrank while reading");
  std::size_t end = std::string::npos;
  for (std::size_t at = tail.size() - kEndBytes + 1; at-- > 0;) {
    if (le(tail, at, 4) == kEndSignature && at + kEndBytes + le(tail, at + 20, 2) == tail.size()) {
      end = at;
      break;
    }
  }
  if (end == std::string::npos) fail(source, "zip end-of-central-directory record not found");
  Directory directory{le(tail, end + 16, 4), le(tail, end + 12, 4), le(tail, end + 10, 2)};
  if (le(tail, end + 4, 2) != 0 || le(tail, end + 6, 2) != 0) fail(source, "multi-disk zip archives are not supported");
  const uint64_t end_offset = tail_start + end;

  const bool overflowed = directory.offset == 0xffffffff || directory.size == 0xffffffff || directory.entries == 0xffff;
  if (overflowed || (end_offset >= kZip64LocatorBytes &&
                     le(read_at(end_offset - kZip64LocatorBytes, 4), 0, 4) == kZip64LocatorSignature)) {
    if (end_offset < kZip64LocatorBytes) fail(source, "zip64 locator missing");
    const std::string locator = read_at(end_offset - kZip64LocatorBytes, kZip64LocatorBytes);
    if (locator.size() != kZip64LocatorBytes || le(locator, 0, 4) != kZip64LocatorSignature) {
      fail(source, "zip64 locator missing");
    }
    const uint64_t record_offset = le(locator, 8, 8);
    if (record_offset > end_offset - kZip64LocatorBytes ||
        end_offset - kZip64LocatorBytes - record_offset < kZip64EndBytes) {
      fail(source, "zip64 end record outside the file");
    }
    const std::string record = read_at(record_offset, kZip64EndBytes);
    if (record.size() != kZip64EndBytes || le(record, 0, 4) != kZip64EndSignature) {
      fail(source, "zip64 end record not found where its locator points");
    }
    directory = {le(record, 48, 8), le(record, 40, 8), le(record, 32, 8)};
    if (le(record, 16, 4) != 0 || le(record, 20, 4) != 0) fail(source, "multi-disk zip archives are not supported");
  }
  if (directory.offset > end_offset || directory.size > end_offset - directory.offset) {
    fail(source, "zip central directory lies outside the file");
  }
  if (directory.size > kMaxDirectoryBytes) {
    fail(source, "zip central directory of " + std::to_string(directory.size) + " bytes (at most " +
                     std::to_string(kMaxDirectoryBytes) + " accepted)");
  }
  if (directory.entries > directory.size / kEntryBytes) {
    fail(source, "zip directory announces " + std::to_string(directory.entries) + " entries in " +
                     std::to_string(directory.size) + " bytes");
  }
  return directory;
}

// The zip64 extended information extra field replaces each classic field that reads 0xffffffff.
void apply_zip64_extra(std::string_view extra, ZipRecord& record, bool offset_overflowed, const std::string& source) {
  const bool sizes[2] = {record.uncompressed_size == 0xffffffff, record.compressed_size == 0xffffffff};
  std::size_t at = 0;
  while (extra.size() - at >= 4) {
    const uint64_t id = le(extra, at, 2), length = le(extra, at + 2, 2);
    if (length > extra.size() - at - 4)
      fail(source, "zip entry " + pickle_detail::printable_quoted(record.name) + ": extra field overruns its entry");
    if (id == 0x0001) {
      std::size_t field = at + 4;
      const std::size_t field_end = field + length;
      auto next = [&](uint64_t& value) {
        if (field_end - field < 8)
          fail(source, "zip entry " + pickle_detail::printable_quoted(record.name) + ": short zip64 field");
        value = le(extra, field, 8);
        field += 8;
      };
      if (sizes[0]) next(record.uncompressed_size);
      if (sizes[1]) next(record.compressed_size);
      if (offset_overflowed) next(record.local_header_offset);
      return;
    }
    at += 4 + length;
  }
  if (sizes[0] || sizes[1] || offset_overflowed) {
    fail(source, "zip entry " + pickle_detail::printable_quoted(record.name) + ": zip64 sizes announced but missing");
  }
}

void check_bounds(const ZipRecord& record, uint64_t directory_offset, const std::string& source) {
  const std::string name = "zip record " + pickle_detail::printable_quoted(record.name);
  if (record.local_header_offset > directory_offset ||
      directory_offset - record.local_header_offset < kLocalHeaderBytes + record.name.size() ||
      directory_offset - record.local_header_offset - kLocalHeaderBytes - record.name.size() < record.compressed_size) {
    fail(source, name + " lies outside the archive's data");
  }
  if (record.method == 0) {
    if (record.uncompressed_size != record.compressed_size) {
      fail(source, name + " is stored but declares " + std::to_string(record.uncompressed_size) + " bytes in " +
                       std::to_string(record.compressed_size));
    }
    return;
  }
  if (record.method != 8) {
    fail(source,
         name + " uses compression method " + std::to_string(record.method) + " (only stored and deflated are read)");
  }
  if (record.uncompressed_size / kMaxDeflateRatio > record.compressed_size) {
    fail(source, name + " declares " + std::to_string(record.uncompressed_size) + " bytes inflated from " +
                     std::to_string(record.compressed_size) + " (deflate expands at most " +
                     std::to_string(kMaxDeflateRatio) + ":1)");
  }
}

}  // namespace

std::vector<ZipRecord> read_zip_directory(const ReadAt& read_at, uint64_t file_size, const std::string& source) {
  const Directory directory = locate_directory(read_at, file_size, source);
  const std::string bytes = read_at(directory.offset, static_cast<std::size_t>(directory.size));
  if (bytes.size() != directory.size) fail(source, "file shrank while reading");
  std::vector<ZipRecord> records;
  records.reserve(static_cast<std::size_t>(directory.entries));
  std::size_t at = 0;
  uint64_t inflated = 0;
  for (uint64_t i = 0; i < directory.entries; ++i) {
    if (bytes.size() - at < kEntryBytes || le(bytes, at, 4) != kEntrySignature) {
      fail(source, "zip central directory entry " + std::to_string(i) + " is malformed");
    }
    const std::size_t name_bytes = le(bytes, at + 28, 2), extra_bytes = le(bytes, at + 30, 2),
                      comment_bytes = le(bytes, at + 32, 2);
    if (bytes.size() - at - kEntryBytes < name_bytes + extra_bytes + comment_bytes) {
      fail(source, "zip central directory entry " + std::to_string(i) + " overruns the directory");
    }
    ZipRecord record;
    record.name.assign(bytes, at + kEntryBytes, name_bytes);
    record.method = static_cast<uint16_t>(le(bytes, at + 10, 2));
    record.compressed_size = le(bytes, at + 20, 4);
    record.uncompressed_size = le(bytes, at + 24, 4);
    record.local_header_offset = le(bytes, at + 42, 4);
    if (le(bytes, at + 34, 2) != 0) fail(source, "multi-disk zip archives are not supported");
    apply_zip64_extra(std::string_view(bytes).substr(at + kEntryBytes + name_bytes, extra_bytes), record,
                      record.local_header_offset == 0xffffffff, source);
    check_bounds(record, directory.offset, source);
    if (record.method != 0 && (inflated += record.uncompressed_size) > kMaxInflatedBytes) {
      fail(source, "compressed zip records inflate to more than " + std::to_string(kMaxInflatedBytes >> 20) +
                       " MiB (torch.save stores records uncompressed; at most this much is inflated)");
    }
    records.push_back(std::move(record));
    at += kEntryBytes + name_bytes + extra_bytes + comment_bytes;
  }
  return records;
}

}  // namespace efcnet
