// The torch.save zip container: reading records into tensors, writing tensors atomically.
#include <caffe2/serialize/inline_container.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "efcnet/files.h"
#include "efcnet/weights.h"
#include "efcnet/weights_records.h"
#include "pickle_detail.h"
#include "zip_directory.h"

// Storage records hold raw little-endian elements, copied as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "weights I/O assumes a little-endian host");

namespace efcnet {
namespace {

using caffe2::serialize::PyTorchStreamReader;
using caffe2::serialize::PyTorchStreamWriter;
using pickle_detail::printable_quoted;

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw WeightsError(path + ": " + what); }

// c10::Error messages carry a C++ backtrace; the first line is what a user needs.
std::string first_line(const c10::Error& e) {
  const std::string message = e.what_without_backtrace();
  return message.substr(0, message.find('\n'));
}

torch::Dtype to_torch(DType dtype) {
  switch (dtype) {
    case DType::Float32: return torch::kFloat32;
    case DType::Float16: return torch::kFloat16;
    case DType::Float64: return torch::kFloat64;
    case DType::Int64: return torch::kInt64;
    case DType::Int32: return torch::kInt32;
    case DType::Bool: return torch::kBool;
    case DType::UInt8: return torch::kUInt8;
  }
  throw WeightsError("invalid DType");
}

std::optional<DType> from_torch(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32: return DType::Float32;
    case torch::kFloat16: return DType::Float16;
    case torch::kFloat64: return DType::Float64;
    case torch::kInt64: return DType::Int64;
    case torch::kInt32: return DType::Int32;
    case torch::kBool: return DType::Bool;
    case torch::kUInt8: return DType::UInt8;
    default: return std::nullopt;
  }
}

// PyTorchStreamReader reports a non-zip file as a missing central directory; say what it is.
void require_zip_signature(const std::string& path) {
  try {
    require_regular_file(path);  // fopen would block on a FIFO
  } catch (const IoError& e) {
    throw WeightsError(e.what());
  }
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) fail(path, std::string("cannot open: ") + std::strerror(errno));
  char magic[4] = {};
  const std::size_t got = std::fread(magic, 1, sizeof magic, file);
  std::fclose(file);
  if (got != sizeof magic || std::memcmp(magic, "PK\x03\x04", sizeof magic) != 0) {
    fail(path, "not a torch.save zip archive (the pre-1.6 legacy format is not supported either)");
  }
}

// Bounds every record's declared size before PyTorchStreamReader allocates it (zip_directory.h).
void check_zip_directory(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) fail(path, std::string("cannot open: ") + std::strerror(errno));
  const ReadAt read_at = [file](uint64_t offset, std::size_t size) {
    std::string bytes(size, '\0');
    if (fseeko(file, static_cast<off_t>(offset), SEEK_SET) != 0) return std::string();
    bytes.resize(std::fread(bytes.data(), 1, size, file));
    return bytes;
  };
  try {
    if (fseeko(file, 0, SEEK_END) != 0) fail(path, "cannot seek");
    read_zip_directory(read_at, static_cast<uint64_t>(ftello(file)), path);
  } catch (...) {
    std::fclose(file);
    throw;
  }
  std::fclose(file);
}

// The whole storage `record` names, as a 1-D CPU tensor.
torch::Tensor load_storage(PyTorchStreamReader& reader, const std::string& path, const std::string& key,
                           const TensorRecord& record) {
  const std::string name = "data/" + record.storage_key;
  if (!reader.hasRecord(name))
    fail(path, "storage record " + name + " of entry " + printable_quoted(key) + " is missing");
  const auto [data, size] = reader.getRecord(name);
  const auto needed = static_cast<std::size_t>(record.storage_numel) * itemsize(record.dtype);
  if (size < needed) {
    fail(path, "storage record " + name + " of entry " + printable_quoted(key) + " holds " + std::to_string(size) +
                   " bytes but " + std::to_string(record.storage_numel) + " " + dtype_name(record.dtype) +
                   " elements need " + std::to_string(needed));
  }
  torch::Tensor storage = torch::empty({record.storage_numel}, torch::dtype(to_torch(record.dtype)));
  if (needed > 0) std::memcpy(storage.data_ptr(), data.get(), needed);
  return storage;
}

StateDict read_records(PyTorchStreamReader& reader, const std::string& path) {
  if (reader.hasRecord("byteorder")) {
    const auto [data, size] = reader.getRecord("byteorder");
    if (std::string_view(static_cast<const char*>(data.get()), size) != "little") {
      fail(path, "storages are not little-endian");
    }
  }
  if (!reader.hasRecord("data.pkl")) fail(path, "archive has no data.pkl record");
  const auto [pickle, pickle_size] = reader.getRecord("data.pkl");
  const StateDictRecord records =
      read_state_dict_pickle(std::string_view(static_cast<const char*>(pickle.get()), pickle_size), path);

  // Entries that share a storage in the file share it here too, as with torch.load.
  std::unordered_map<std::string, torch::Tensor> storages;
  StateDict dict;
  dict.reserve(records.entries.size());
  for (const auto& [key, record] : records.entries) {
    torch::Tensor& storage = storages[record.storage_key];
    if (!storage.defined()) storage = load_storage(reader, path, key, record);
    dict.emplace_back(key, storage.as_strided(record.sizes, record.strides, record.storage_offset));
  }
  return dict;
}

}  // namespace

StateDict read_state_dict(const std::string& path, const torch::Device& device) {
  require_zip_signature(path);
  StateDict dict;
  try {
    check_zip_directory(path);
    PyTorchStreamReader reader(path);
    dict = read_records(reader, path);
  } catch (const PickleError& e) {
    throw WeightsError(e.what());
  } catch (const c10::Error& e) {
    fail(path, "unreadable torch.save archive: " + first_line(e));
  }
  if (device.is_cpu()) return dict;
  try {
    for (auto& entry : dict) entry.second = entry.second.to(device);
  } catch (const c10::Error& e) {
    fail(path, "cannot place tensors on " + device.str() + ": " + first_line(e));
  }
  return dict;
}

void save_state_dict(const StateDict& dict, const std::string& path) {
  // Each entry becomes its own contiguous CPU storage `data/<index>`, as torch.save writes
  // tensors that share nothing.
  StateDictRecord records;
  std::vector<torch::Tensor> storages;
  for (const auto& [key, value] : dict) {
    if (!value.defined()) fail(path, "cannot save entry " + printable_quoted(key) + ": undefined tensor");
    torch::Tensor tensor = value.detach().to(torch::kCPU);
    const std::optional<DType> dtype = from_torch(tensor.scalar_type());
    if (!dtype) {
      fail(path, "cannot save entry " + printable_quoted(key) + ": unsupported dtype " +
                     std::string(c10::toString(tensor.scalar_type())));
    }
    tensor = tensor.contiguous();
    TensorRecord record;
    record.storage_key = std::to_string(storages.size());
    record.dtype = *dtype;
    record.storage_numel = tensor.numel();
    record.sizes = tensor.sizes().vec();
    record.strides = tensor.strides().vec();
    records.entries.emplace_back(key, std::move(record));
    storages.push_back(std::move(tensor));
  }
  std::string pickle;
  try {
    pickle = write_state_dict_pickle(records);
  } catch (const PickleError& e) {
    fail(path, e.what());
  }

  // The archive is assembled in memory and written by the project's one atomic writer.
  std::string archive;
  try {
    PyTorchStreamWriter writer([&archive](const void* data, size_t size) {
      archive.append(static_cast<const char*>(data), size);
      return size;
    });
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
    for (std::size_t i = 0; i < storages.size(); ++i) {
      writer.writeRecord("data/" + std::to_string(i), storages[i].data_ptr(), storages[i].nbytes());
    }
    writer.writeEndOfFile();  // also writes the `version` record
  } catch (const c10::Error& e) {
    fail(path, "cannot write archive: " + first_line(e));
  }
  try {
    write_file_atomic(path, archive);
  } catch (const IoError& e) {
    throw WeightsError(e.what());
  }
}

}  // namespace efcnet
