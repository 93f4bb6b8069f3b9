// Image files: reading as the reference does, atomic writing, pairing by name, a demo phantom.
// OpenCV only (no LibTorch): the one place that decides how images are read and written.
//
// Reading convention (the authors' script reads with cv2.imread, so we use OpenCV's own
// conversions rather than ours):
//   anatomical  cv::IMREAD_GRAYSCALE. A colour file is converted by its codec (libpng, libjpeg),
//               which may differ by a level from cv::cvtColor.
//   functional  colour if the file stores 3 or 4 channels, grey if it stores 1 or 2; then read with
//               cv::IMREAD_COLOR (CV_8UC3, BGR) or cv::IMREAD_GRAYSCALE (CV_8UC1).
//   RGBA        the alpha channel is dropped, not composited.
//   16-bit      reduced to 8 bits by the codec: PNG keeps the high byte (v >> 8), TIFF rounds v/256.
//   EXIF        JPEG orientation tags are applied (IMREAD_COLOR/GRAYSCALE do, IMREAD_UNCHANGED doesn't).
// Each file is read once and decoded once (cv::imdecode of the bytes read): the stored channel
// count and the size come from its header (PNG IHDR, JPEG SOF, BMP, TIFF's first IFD), so an image
// too large to decode is refused before any pixel is decoded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

#include "efcnet/error.h"
#include "efcnet/files.h"  // IoError, WriteMode, write_file_atomic

namespace efcnet {

// "WxH" of an image, for messages.
std::string size_text(const cv::Mat& image);

// ---- reading ----

// The largest image read by default: 2^26 pixels (8192x8192), 192 MiB decoded in colour. The
// network needs about 14 KiB of working memory per pixel (inference.h), so larger images are far
// beyond what it can fuse; a few-MB PNG can declare 32768x32768 and decode to 3 GiB.
inline constexpr std::int64_t kDefaultMaxImagePixels = std::int64_t{1} << 26;

struct ImageReadOptions {
  // A file whose header declares more pixels (width x height) than this is refused before decoding.
  std::int64_t max_pixels = kDefaultMaxImagePixels;
  // Called with the declared size before decoding; a non-empty answer refuses the file with it as
  // the reason (e.g. working_memory_shortfall: fusion's own memory estimate, inference.h).
  std::function<std::string(std::int64_t width, std::int64_t height)> size_check;
};

// CV_8UC1. Throws IoError for a missing file, a directory, a FIFO, device or other file that is
// not regular (refused without blocking), an unreadable, empty, truncated or undecodable file,
// and, before decoding, a declared size above options.max_pixels ("WxH pixels exceeds the limit
// of N"), one whose decoding needs more memory than is available (MemAvailable), or one that
// options.size_check refuses.
cv::Mat read_anatomical(const std::string& path, const ImageReadOptions& options = {});

// CV_8UC3 (BGR) for a colour file, CV_8UC1 for a grey one. Same errors as read_anatomical.
cv::Mat read_functional(const std::string& path, const ImageReadOptions& options = {});

// Whether the name ends in one of the image extensions we pair and write:
// .png .jpg .jpeg .tif .tiff .bmp (any letter case).
bool has_image_extension(const std::string& path);

// ---- writing ----

// Encodes with cv::imencode for the path's extension (default parameters, byte-identical to
// cv::imwrite) and writes atomically. Throws IoError for an unsupported extension.
void write_image_atomic(const std::string& path, const cv::Mat& image, WriteMode mode = WriteMode::replace);

// ---- pairing by name ----

struct ImagePair {
  std::string name;        // the shared file stem
  std::string anatomical;  // full paths
  std::string functional;
};

struct Pairing {
  std::vector<ImagePair> pairs;                  // sorted by name
  std::vector<std::string> unpaired_anatomical;  // sorted paths without a partner
  std::vector<std::string> unpaired_functional;
  // Files left unpaired because another image in the same directory has the same stem
  // (e.g. a.png and a.jpg): which one was meant cannot be guessed.
  std::vector<std::string> ambiguous;
};

// Pairs the image files (has_image_extension) of two directories by stem: case-sensitive, the
// extensions may differ ("x.png" pairs with "x.tif"). Hidden files and anything that is not a
// regular file are ignored. Throws IoError naming a missing or unreadable directory.
Pairing pair_by_name(const std::string& anatomical_dir, const std::string& functional_dir);

// Each unpaired and ambiguous entry of `pairing` (anatomical, functional, ambiguous; each sorted)
// with why it has no pair: "no single functional image named x in DIR", "another image in its
// directory is also named x". `kind` names the entries ("image", "volume"); `stem_of` is the
// stem the pairing matched by.
std::vector<std::pair<std::string, std::string>> unpaired_reasons(
    const Pairing& pairing, const std::string& kind, const std::string& anatomical_dir,
    const std::string& functional_dir, const std::function<std::string(const std::string&)>& stem_of);

// ---- synthetic demo data (never dataset images) ----

enum class PhantomKind {
  spect,  // MRI + SPECT-like perfusion, JET pseudo-colour on black
  pet,    // MRI + PET-like uptake, HOT pseudo-colour
  ct,     // MRI + grey CT-like slice (bright skull)
  gfp,    // phase-contrast cells + green fluorescence of some of them
};

struct Phantom {
  cv::Mat anatomical;  // CV_8UC1
  cv::Mat functional;  // CV_8UC3 (BGR) for spect, pet, gfp; CV_8UC1 for ct
};

// A deterministic, registered anatomical/functional pair of side `size` (>= 32).
Phantom make_phantom(int size = 256, PhantomKind kind = PhantomKind::spect);

}  // namespace efcnet
