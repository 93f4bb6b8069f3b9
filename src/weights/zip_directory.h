// The central directory of a torch.save zip archive, read and checked before LibTorch's reader
// allocates or inflates anything (not part of the public API). LibTorch-free, so that it builds
// under ASan/UBSan and is fuzzed (tests/fuzz/zip_fuzz.cpp) with the unpickler.
//
// PyTorchStreamReader::getRecord allocates a record's declared uncompressed size before reading
// it; a few hundred bytes of directory can declare gigabytes. Every declared size is therefore
// bounded here: a stored record must lie inside the file, a deflated one may expand at most by
// deflate's own maximum ratio, and all deflated records together never beyond kMaxInflatedBytes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "efcnet/weights_records.h"  // PickleError: the LibTorch-free error of this layer

namespace efcnet {

struct ZipRecord {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflated (the only two accepted)
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
};

// Deflate cannot expand input by more than about 1032:1.
constexpr uint64_t kMaxDeflateRatio = 1032;
// torch.save stores records uncompressed; compressed ones come from re-zipped files, whose
// records together may inflate to this much (a model of 64 M float32 parameters).
constexpr uint64_t kMaxInflatedBytes = uint64_t{256} << 20;

// Reads `size` bytes at `offset` of the archive; returns fewer only at the end of the file.
using ReadAt = std::function<std::string(uint64_t offset, std::size_t size)>;

// Parses the end-of-central-directory record (zip64 included) and every central directory entry
// of an archive of `file_size` bytes. Throws PickleError naming `source` for a malformed directory,
// an unsupported compression method, or a declared size that the bounds above refuse.
std::vector<ZipRecord> read_zip_directory(const ReadAt& read_at, uint64_t file_size, const std::string& source);

}  // namespace efcnet
