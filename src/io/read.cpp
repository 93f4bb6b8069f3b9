#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>

#include <opencv2/imgcodecs.hpp>

#include "efcnet/image.h"

namespace efcnet {

std::string size_text(const cv::Mat& image) { return std::to_string(image.cols) + "x" + std::to_string(image.rows); }

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& problem) { throw IoError(path + ": " + problem); }

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) fail(path, "no such file");
  if (status.type() == std::filesystem::file_type::directory) {
    fail(path, "is a directory, not an image file");
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  std::vector<unsigned char> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      fail(path, n < 0 ? std::string("cannot read: ") + std::strerror(err) : "file shrank while reading");
    }
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (bytes.empty()) fail(path, "empty file");
  return bytes;
}

// libpng reports a truncated stream by printing "libpng error: ..." on stderr before OpenCV returns
// an empty image; walking the chunk structure first gives one clean, named error instead.
void check_png_structure(const std::string& path, const std::vector<unsigned char>& bytes) {
  static constexpr std::array<unsigned char, 8> kSignature{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < kSignature.size() || !std::equal(kSignature.begin(), kSignature.end(), bytes.begin())) {
    return;  // not a PNG: the decoder that claims it judges it
  }
  std::size_t pos = kSignature.size();
  while (true) {
    if (bytes.size() - pos < 8) fail(path, "truncated PNG (ends before its IEND chunk)");
    const std::uint32_t length = (std::uint32_t{bytes[pos]} << 24) | (std::uint32_t{bytes[pos + 1]} << 16) |
                                 (std::uint32_t{bytes[pos + 2]} << 8) | std::uint32_t{bytes[pos + 3]};
    const std::string type(bytes.begin() + pos + 4, bytes.begin() + pos + 8);
    if (bytes.size() - pos - 8 < std::uint64_t{length} + 4) {
      fail(path, "truncated PNG (ends inside its " + type + " chunk)");
    }
    if (type == "IEND") return;
    pos += 8 + std::size_t{length} + 4;
  }
}

cv::Mat decode(const std::string& path, int flags) {
  cv::Mat image;
  try {
    image = cv::imread(path, flags);
  } catch (const cv::Exception& e) {
    fail(path, "cannot decode: " + e.msg);
  }
  if (image.empty()) fail(path, "cannot decode (corrupt, truncated or not a supported image format)");
  return image;
}

cv::Mat read_checked(const std::string& path, bool colour_if_stored) {
  check_png_structure(path, read_bytes(path));
  int flags = cv::IMREAD_GRAYSCALE;
  if (colour_if_stored) {
    // Only the stored channel count is wanted here; IMREAD_UNCHANGED reports it faithfully.
    const int stored_channels = decode(path, cv::IMREAD_UNCHANGED).channels();
    if (stored_channels >= 3) flags = cv::IMREAD_COLOR;
  }
  return decode(path, flags);
}

}  // namespace

cv::Mat read_anatomical(const std::string& path) { return read_checked(path, false); }

cv::Mat read_functional(const std::string& path) { return read_checked(path, true); }

bool has_image_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::array<const char*, 6> kExtensions{".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"};
  return std::find(kExtensions.begin(), kExtensions.end(), ext) != kExtensions.end();
}

}  // namespace efcnet
