#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string_view>

#include <opencv2/imgcodecs.hpp>

#include "efcnet/image.h"
#include "efcnet/runtime.h"

namespace efcnet {

std::string size_text(const cv::Mat& image) { return std::to_string(image.cols) + "x" + std::to_string(image.rows); }

namespace {

using Bytes = std::vector<unsigned char>;
using namespace std::string_view_literals;

[[noreturn]] void fail(const std::string& path, const std::string& problem) { throw IoError(path + ": " + problem); }

Bytes read_bytes(const std::string& path) {
  Bytes bytes;
  try {
    bytes = read_regular_file(path);
  } catch (const IoError& e) {
    // The image reader's own words for the commonest mistake.
    if (std::string(e.what()) == path + ": is a directory") fail(path, "is a directory, not an image file");
    throw;
  }
  if (bytes.empty()) fail(path, "empty file");
  return bytes;
}

// libpng reports a truncated stream by printing "libpng error: ..." on stderr before OpenCV returns
// an empty image; walking the chunk structure first gives one clean, named error instead.
void check_png_structure(const std::string& path, const Bytes& bytes) {
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

// ---- what a file's header declares ----

// Width and height as stored (before any EXIF rotation), and the channel count OpenCV's
// IMREAD_UNCHANGED would give (0 where the header leaves it in doubt).
struct Declared {
  std::int64_t width = 0, height = 0;
  int channels = 0;
};

// Bounds-checked big- or little-endian reads; out of range reads as nullopt.
class Reader {
 public:
  Reader(const Bytes& bytes, bool big_endian) : bytes_(bytes), big_(big_endian) {}
  std::optional<std::uint32_t> u(std::size_t pos, int size) const {
    if (pos > bytes_.size() || bytes_.size() - pos < static_cast<std::size_t>(size)) return std::nullopt;
    std::uint32_t value = 0;
    for (int i = 0; i < size; ++i) {
      const std::uint32_t byte = bytes_[pos + (big_ ? i : size - 1 - i)];
      value = (value << 8) | byte;
    }
    return value;
  }
  bool starts_with(std::string_view text) const {
    return bytes_.size() >= text.size() &&
           std::equal(text.begin(), text.end(), bytes_.begin(),
                      [](char expected, unsigned char byte) { return static_cast<unsigned char>(expected) == byte; });
  }
  std::size_t size() const { return bytes_.size(); }
  unsigned char at(std::size_t pos) const { return bytes_[pos]; }

 private:
  const Bytes& bytes_;
  bool big_;
};

std::optional<Declared> png_header(const Reader& r) {
  if (!r.starts_with("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"sv)) return {};
  const auto width = r.u(16, 4), height = r.u(20, 4), colour_type = r.u(25, 1);
  if (!width || !height || !colour_type) return {};
  // OpenCV: grey is 1 channel; RGB and palette 3 (4 with transparency); grey+alpha and RGBA 4.
  return Declared{*width, *height, *colour_type == 0 ? 1 : *colour_type == 2 || *colour_type == 3 ? 3 : 4};
}

std::optional<Declared> jpeg_header(const Reader& r) {
  if (!r.starts_with("\xff\xd8")) return {};
  std::size_t pos = 2;
  while (pos + 4 <= r.size()) {
    if (r.at(pos) != 0xff) return {};
    const unsigned char marker = r.at(pos + 1);
    if (marker == 0xff) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {  // no length
      pos += 2;
      continue;
    }
    if (marker == 0xd9 || marker == 0xda) return {};  // end of image or scan before a frame header
    const auto length = r.u(pos + 2, 2);
    if (!length || *length < 2) return {};
    const bool frame = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (frame) {
      const auto height = r.u(pos + 5, 2), width = r.u(pos + 7, 2), components = r.u(pos + 9, 1);
      if (!height || !width || !components || *height == 0) return {};
      return Declared{*width, *height, *components > 1 ? 3 : 1};  // libjpeg: colour unless one component
    }
    pos += 2 + *length;
  }
  return {};
}

std::optional<Declared> bmp_header(const Reader& r) {
  if (!r.starts_with("BM")) return {};
  const auto header_size = r.u(14, 4), width = r.u(18, 4), height = r.u(22, 4), bpp = r.u(28, 2),
             colours_used = r.u(46, 4);
  if (!header_size || *header_size < 36 || !width || !height || !bpp || !colours_used) return {};
  const auto signed_width = static_cast<std::int32_t>(*width), signed_height = static_cast<std::int32_t>(*height);
  if (signed_width <= 0 || signed_height == 0 || signed_height == INT32_MIN) return {};
  Declared declared{signed_width, std::abs(signed_height), 3};
  if (*bpp <= 8) {
    // OpenCV reads a palette image as grey when every palette entry (B, G, R, unused) is grey; the
    // entries the file does not hold count as black.
    const std::uint32_t entries = 1u << *bpp;
    const std::uint32_t stored = *colours_used == 0 ? entries : *colours_used;
    if (stored > 256) return {};
    const std::size_t palette = 14 + std::size_t{*header_size};
    if (palette + 4 * std::size_t{stored} > r.size()) return {};
    declared.channels = 1;
    for (std::uint32_t i = 0; i < std::min(stored, entries); ++i) {
      const std::size_t at = palette + 4 * std::size_t{i};
      if (r.at(at) != r.at(at + 1) || r.at(at) != r.at(at + 2)) declared.channels = 3;
    }
  }
  return declared;
}

std::optional<Declared> tiff_header(const Bytes& bytes) {
  const bool big = Reader(bytes, true).starts_with("MM\0\x2a"sv);
  if (!big && !Reader(bytes, false).starts_with("II\x2a\0"sv)) return {};  // BigTIFF: left to the decoder
  const Reader r(bytes, big);
  const auto ifd = r.u(4, 4);
  const auto count = ifd ? r.u(*ifd, 2) : std::nullopt;
  if (!count) return {};
  std::optional<std::uint32_t> width, height, photometric;
  std::uint32_t samples = 1;  // libtiff's default
  for (std::uint32_t i = 0; i < *count; ++i) {
    const std::size_t entry = std::size_t{*ifd} + 2 + 12 * std::size_t{i};
    const auto tag = r.u(entry, 2), type = r.u(entry + 2, 2);
    if (!tag || !type) return {};
    // A SHORT (3) or LONG (4) value held in the entry itself.
    const auto value = *type == 3 ? r.u(entry + 8, 2) : *type == 4 ? r.u(entry + 8, 4) : std::nullopt;
    if (*tag == 256) width = value;
    if (*tag == 257) height = value;
    if (*tag == 262) photometric = value;
    if (*tag == 277 && value) samples = *value;
  }
  if (!width || !height) return {};
  Declared declared{*width, *height, 0};
  // OpenCV: min-is-white/black is grey (for up to 2 samples of up to 16 bits), palette colour, and
  // RGB or YCbCr has its samples as channels. Anything else is left to the decoder to say.
  if (photometric && *photometric <= 1 && samples <= 2) declared.channels = 1;
  if (photometric && *photometric == 3) declared.channels = 3;
  if (photometric && (*photometric == 2 || *photometric == 6) && (samples == 3 || samples == 4)) {
    declared.channels = static_cast<int>(samples);
  }
  return declared;
}

// The formats has_image_extension names, recognised by their signatures as OpenCV does.
std::optional<Declared> declared_image(const Bytes& bytes) {
  const Reader r(bytes, true);
  if (auto d = png_header(r)) return d;
  if (auto d = jpeg_header(r)) return d;
  if (auto d = bmp_header(Reader(bytes, false))) return d;
  return tiff_header(bytes);
}

// ---- decoding ----

void check_size(const std::string& path, std::int64_t width, std::int64_t height, int decoded_channels,
                const ImageReadOptions& options) {
  const std::string size = std::to_string(width) + "x" + std::to_string(height);
  if (height > 0 && width > options.max_pixels / height) {  // width x height > max_pixels, without overflow
    fail(path, size + " pixels exceeds the limit of " + std::to_string(options.max_pixels) +
                   " (raise it with --max-image-pixels, or max_image_pixels in Python)");
  }
  // The decoded image, and at most one copy of it (an EXIF rotation, a conversion).
  const std::int64_t pixels = width * height;
  constexpr std::int64_t kMost = std::numeric_limits<std::int64_t>::max() / 8;
  const std::int64_t needed = pixels > kMost ? std::numeric_limits<std::int64_t>::max() : 2 * pixels * decoded_channels;
  const std::int64_t available = available_memory_bytes();
  if (available >= 0 && needed > available) {
    fail(path, "decoding its " + size + " pixels needs about " + gibibytes(needed) + ", but only " +
                   gibibytes(available) + " is available (MemAvailable)");
  }
  if (options.size_check) {
    if (const std::string refusal = options.size_check(width, height); !refusal.empty()) fail(path, refusal);
  }
}

cv::Mat decode(const std::string& path, const Bytes& bytes, int flags) {
  cv::Mat image;
  try {
    image = cv::imdecode(bytes, flags);
  } catch (const cv::Exception& e) {
    fail(path, "cannot decode: " + e.msg);
  }
  if (image.empty()) fail(path, "cannot decode (corrupt, truncated or not a supported image format)");
  return image;
}

cv::Mat read_checked(const std::string& path, bool colour_if_stored, const ImageReadOptions& options) {
  const Bytes bytes = read_bytes(path);
  check_png_structure(path, bytes);
  const std::optional<Declared> declared = declared_image(bytes);
  if (!declared) {
    // A format we do not parse (OpenCV recognises more than has_image_extension names): its size
    // is known only once decoded, so it is checked then.
    cv::Mat image = decode(path, bytes, colour_if_stored ? cv::IMREAD_UNCHANGED : cv::IMREAD_GRAYSCALE);
    check_size(path, image.cols, image.rows, 0, options);
    if (!colour_if_stored) return image;
    return decode(path, bytes, image.channels() >= 3 ? cv::IMREAD_COLOR : cv::IMREAD_GRAYSCALE);
  }
  int channels = colour_if_stored ? declared->channels : 1;
  check_size(path, declared->width, declared->height, channels == 0 ? 4 : std::min(channels, 3), options);
  if (channels == 0) {
    // The header leaves the stored channel count in doubt: IMREAD_UNCHANGED says it.
    channels = decode(path, bytes, cv::IMREAD_UNCHANGED).channels();
  }
  return decode(path, bytes, channels >= 3 ? cv::IMREAD_COLOR : cv::IMREAD_GRAYSCALE);
}

}  // namespace

cv::Mat read_anatomical(const std::string& path, const ImageReadOptions& options) {
  return read_checked(path, false, options);
}

cv::Mat read_functional(const std::string& path, const ImageReadOptions& options) {
  return read_checked(path, true, options);
}

bool has_image_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::array<const char*, 6> kExtensions{".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"};
  return std::find(kExtensions.begin(), kExtensions.end(), ext) != kExtensions.end();
}

}  // namespace efcnet
