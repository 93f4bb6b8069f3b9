// PNG files written chunk by chunk, for what cv::imwrite cannot make: grey + alpha and palette
// layouts, and images far too large to encode, declared in a few MB.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace efcnet::testing {

using PngBytes = std::vector<unsigned char>;

inline void put_u32(PngBytes& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<unsigned char>(value >> shift));
}

inline void put_chunk(PngBytes& out, const std::string& type, const PngBytes& data) {
  put_u32(out, static_cast<std::uint32_t>(data.size()));
  const std::size_t start = out.size();
  out.insert(out.end(), type.begin(), type.end());
  out.insert(out.end(), data.begin(), data.end());
  put_u32(out, static_cast<std::uint32_t>(crc32(0, out.data() + start, static_cast<uInt>(out.size() - start))));
}

// A PNG with this IHDR, `zlib_data` as its one IDAT and `extra` chunks (e.g. PLTE, tRNS) before it.
inline PngBytes png_file(std::uint32_t width, std::uint32_t height, int bit_depth, int colour_type,
                         const PngBytes& zlib_data, const std::vector<std::pair<std::string, PngBytes>>& extra = {}) {
  PngBytes out{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  PngBytes header;
  put_u32(header, width);
  put_u32(header, height);
  header.insert(header.end(),
                {static_cast<unsigned char>(bit_depth), static_cast<unsigned char>(colour_type), 0, 0, 0});
  put_chunk(out, "IHDR", header);
  for (const auto& [type, data] : extra) put_chunk(out, type, data);
  put_chunk(out, "IDAT", zlib_data);
  put_chunk(out, "IEND", {});
  return out;
}

// Rows of raw samples, each starting with its filter byte (0), compressed as one zlib stream.
inline PngBytes zlib_compressed(const PngBytes& raw) {
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  PngBytes out(size);
  compress2(out.data(), &size, raw.data(), static_cast<uLong>(raw.size()), 9);
  out.resize(size);
  return out;
}

// An 8-bit PNG of `colour_type` (0 grey, 2 RGB) declaring width x height zero pixels, of which the
// first `rows_stored` are in the file (all of them by default; fewer makes a PNG whose chunks are
// intact but whose pixel data ends early). Each row is deflated alone (after a full flush the
// compressor remembers nothing), so one row's stream repeats: 32768x32768 RGB takes about 3 MB.
inline PngBytes zero_png(std::uint32_t width, std::uint32_t height, int colour_type, std::uint32_t rows_stored) {
  const std::uint64_t row_bytes = 1 + std::uint64_t{width} * (colour_type == 2 ? 3 : 1);
  const PngBytes zero_row(row_bytes, 0);
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);  // raw deflate: the zlib wrapper is ours
  PngBytes row_stream(deflateBound(&z, static_cast<uLong>(row_bytes)) + 64), tail(64);
  z.next_in = const_cast<Bytef*>(zero_row.data());
  z.avail_in = static_cast<uInt>(row_bytes);
  z.next_out = row_stream.data();
  z.avail_out = static_cast<uInt>(row_stream.size());
  deflate(&z, Z_FULL_FLUSH);
  row_stream.resize(row_stream.size() - z.avail_out);
  z.next_out = tail.data();
  z.avail_out = static_cast<uInt>(tail.size());
  deflate(&z, Z_FINISH);  // the final, empty block
  tail.resize(tail.size() - z.avail_out);
  deflateEnd(&z);

  PngBytes stream{0x78, 0xda};
  stream.reserve(2 + row_stream.size() * rows_stored + tail.size() + 4);
  for (std::uint32_t y = 0; y < rows_stored; ++y) stream.insert(stream.end(), row_stream.begin(), row_stream.end());
  stream.insert(stream.end(), tail.begin(), tail.end());
  // Adler-32 of n zero bytes: a stays 1, b = n mod 65521.
  put_u32(stream, static_cast<std::uint32_t>(((row_bytes * rows_stored) % 65521) << 16 | 1));
  return png_file(width, height, 8, colour_type, stream);
}

inline PngBytes zero_png(std::uint32_t width, std::uint32_t height, int colour_type) {
  return zero_png(width, height, colour_type, height);
}

}  // namespace efcnet::testing
