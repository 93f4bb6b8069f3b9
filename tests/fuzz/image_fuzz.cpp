// libFuzzer target for image files through the project's reader (src/io/read.cpp): its header
// parsing (PNG IHDR, JPEG SOF, BMP, TIFF IFD), size limit and single decode. Any input must be
// read or refused with IoError; crashes, sanitizer reports, leaks and other exceptions are bugs.
// The input reaches the reader as a file (a memfd: a regular file with no directory entry), read
// as anatomical and as functional. The seeds (tests/fuzz/seeds/image) are small files in each
// format and channel layout, written by OpenCV's imwrite.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "efcnet/image.h"

namespace {

// One file for the whole run, rewritten per input.
int input_file() {
  static const int fd = memfd_create("image_fuzz", 0);
  if (fd < 0) __builtin_trap();
  return fd;
}

void read_both(const std::string& path, const efcnet::ImageReadOptions& options) {
  try {
    const cv::Mat grey = efcnet::read_anatomical(path, options);
    if (grey.type() != CV_8UC1 || grey.total() > static_cast<std::size_t>(options.max_pixels)) __builtin_trap();
  } catch (const efcnet::IoError&) {}
  try {
    const cv::Mat image = efcnet::read_functional(path, options);
    if ((image.type() != CV_8UC1 && image.type() != CV_8UC3) ||
        image.total() > static_cast<std::size_t>(options.max_pixels)) {
      __builtin_trap();
    }
  } catch (const efcnet::IoError&) {}
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = input_file();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) __builtin_trap();
  efcnet::ImageReadOptions options;
  options.max_pixels = int64_t{1} << 20;  // keeps each decode fast; the limit itself is what is tested
  read_both("/proc/self/fd/" + std::to_string(fd), options);
  return 0;
}
