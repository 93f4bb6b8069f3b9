// The zip central directory check (src/weights/zip_directory.h) on archives built byte by byte.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "weights/zip_directory.h"

namespace efcnet {
namespace {

struct Entry {
  std::string name;
  uint16_t method = 0;
  uint32_t compressed = 0;    // bytes of data that follow the local header
  uint32_t uncompressed = 0;  // what the directory declares
};

void put(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

// Local headers with `compressed` zero bytes of data each, the central directory, its end record.
std::string archive(const std::vector<Entry>& entries) {
  std::string zip, directory;
  for (const Entry& e : entries) {
    const uint64_t offset = zip.size();
    put(zip, 0x04034b50, 4), put(zip, 20, 2), put(zip, 0, 2), put(zip, e.method, 2), put(zip, 0, 8);
    put(zip, e.compressed, 4), put(zip, e.uncompressed, 4), put(zip, e.name.size(), 2), put(zip, 0, 2);
    zip += e.name + std::string(e.compressed, '\0');
    put(directory, 0x02014b50, 4), put(directory, 20, 2), put(directory, 20, 2), put(directory, 0, 2);
    put(directory, e.method, 2), put(directory, 0, 8), put(directory, e.compressed, 4);
    put(directory, e.uncompressed, 4), put(directory, e.name.size(), 2), put(directory, 0, 8);
    put(directory, 0, 4), put(directory, offset, 4);
    directory += e.name;
  }
  const uint64_t directory_offset = zip.size();
  zip += directory;
  put(zip, 0x06054b50, 4), put(zip, 0, 4), put(zip, entries.size(), 2), put(zip, entries.size(), 2);
  put(zip, directory.size(), 4), put(zip, directory_offset, 4), put(zip, 0, 2);
  return zip;
}

std::vector<ZipRecord> read(const std::string& zip) {
  const ReadAt read_at = [&zip](uint64_t offset, std::size_t size) {
    return offset >= zip.size() ? std::string() : zip.substr(static_cast<std::size_t>(offset), size);
  };
  return read_zip_directory(read_at, zip.size(), "model.pth");
}

std::string refusal(const std::string& zip) {
  try {
    read(zip);
  } catch (const PickleError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(ZipDirectory, ReadsStoredAndDeflatedRecords) {
  const auto records = read(archive({{"archive/data.pkl", 0, 40, 40}, {"archive/data/0", 8, 10, 300}}));
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].name, "archive/data.pkl");
  EXPECT_EQ(records[0].uncompressed_size, 40u);
  EXPECT_EQ(records[1].method, 8);
  EXPECT_EQ(records[1].uncompressed_size, 300u);
}

// getRecord would allocate what the directory declares: a 100-byte record claiming 4 GiB.
TEST(ZipDirectory, RefusesDeclaredSizesBeyondDeflatesRatio) {
  const std::string message = refusal(archive({{"archive/data/0", 8, 100, 0xfffffff0}}));
  EXPECT_NE(message.find("model.pth: zip record 'archive/data/0' declares 4294967280 bytes"), std::string::npos)
      << message;
}

// A true deflate bomb keeps to the ratio record by record; together the records are bounded.
TEST(ZipDirectory, RefusesCompressedRecordsInflatingBeyondTheLimit) {
  std::vector<Entry> bombs;
  for (int i = 0; i < 4; ++i) bombs.push_back({"archive/data/" + std::to_string(i), 8, 100000, 100000000});
  EXPECT_NE(refusal(archive(bombs)).find("inflate to more than 256 MiB"), std::string::npos);
}

TEST(ZipDirectory, RefusesStoredRecordsOutsideTheFile) {
  EXPECT_NE(refusal(archive({{"archive/data/0", 0, 10, 20}})).find("is stored but declares 20 bytes in 10"),
            std::string::npos);
  std::string zip = archive({{"archive/data/0", 0, 10, 10}});
  zip[18] = static_cast<char>(0xff);  // the local header's compressed size: the directory's stays 10
  EXPECT_EQ(read(zip).size(), 1u);
  const std::size_t entry = zip.find("PK\x01\x02");
  zip[entry + 20] = 100, zip[entry + 24] = 100;  // directory: 100 bytes stored, past the directory's start
  EXPECT_NE(refusal(zip).find("lies outside the archive's data"), std::string::npos);
}

TEST(ZipDirectory, RefusesMalformedDirectories) {
  EXPECT_NE(refusal("PK\x03\x04 short").find("shorter than its end record"), std::string::npos);
  EXPECT_NE(refusal(std::string(100, 'x')).find("end-of-central-directory record not found"), std::string::npos);
  std::string zip = archive({{"a", 0, 1, 1}});
  zip[zip.size() - 12] = 9;  // the end record's entry count: 9 entries in a 47-byte directory
  EXPECT_NE(refusal(zip).find("announces 9 entries"), std::string::npos);
  EXPECT_NE(refusal(archive({{"a", 12, 1, 1}})).find("compression method 12"), std::string::npos);
}

}  // namespace
}  // namespace efcnet
