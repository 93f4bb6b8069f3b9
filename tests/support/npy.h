// Minimal reader for the golden .npy files (little-endian float32, C order) used by the tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

namespace efcnet::testing {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

inline NpyArray read_npy_float32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw std::runtime_error(path + ": not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  const size_t header_len_size = major == 1 ? 2 : 4;
  size_t header_len = 0;
  for (size_t i = 0; i < header_len_size; ++i)
    header_len |= size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
  const size_t data_start = 8 + header_len_size + header_len;
  const std::string header = bytes.substr(8 + header_len_size, header_len);
  if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos) {
    throw std::runtime_error(path + ": expected C-order little-endian float32");
  }
  std::smatch match;
  if (!std::regex_search(header, match, std::regex("'shape': \\(([^)]*)\\)")))
    throw std::runtime_error(path + ": no shape");
  NpyArray array;
  const std::string dims = match[1];
  const std::regex number("\\d+");
  std::sregex_iterator it(dims.begin(), dims.end(), number), end;
  size_t count = 1;
  for (; it != end; ++it) {
    array.shape.push_back(std::stoll(it->str()));
    count *= static_cast<size_t>(array.shape.back());
  }
  if (bytes.size() < data_start + count * sizeof(float)) throw std::runtime_error(path + ": truncated");
  array.values.resize(count);
  std::memcpy(array.values.data(), bytes.data() + data_start, count * sizeof(float));
  return array;
}

}  // namespace efcnet::testing
