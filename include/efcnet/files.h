// Files written whole and atomically, and the error every file problem raises. LibTorch- and
// OpenCV-free: what image writing (image.h), weights files and training logs share, and all of it
// that a build without image I/O (EFCNET_IMAGE_IO=OFF) needs.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "efcnet/error.h"

namespace efcnet {

// Every file problem; the message starts with the path and says what is wrong with it.
class IoError : public Error {
 public:
  using Error::Error;
};

// Something is already at an output's path and WriteMode::no_clobber (below) was asked: "<path>:
// already exists, not replaced". path() names it, so a caller can say how its user replaces it.
class OutputExistsError : public IoError {
 public:
  explicit OutputExistsError(const std::string& path) : IoError(path + ": already exists, not replaced"), path_(path) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Refuses, without opening it, anything at `path` that is not a regular file (symbolic links
// followed): IoError "<path>: no such file", "<path>: is a directory", "<path>: is a FIFO, not a
// regular file", and so on for devices and sockets. A FIFO or a device given as an input would
// otherwise block the reader or stream forever.
void require_regular_file(const std::string& path);

// The whole of a regular file (require_regular_file's refusals; opened with O_NONBLOCK, so a file
// swapped for a FIFO after the check cannot block either). IoError names `path` when it cannot be
// read.
std::vector<unsigned char> read_regular_file(const std::string& path);

enum class WriteMode {
  replace,     // an existing file is replaced (atomically)
  no_clobber,  // an existing file is left alone and IoError is thrown, even against a racing writer
};

// Writes `bytes` to <dir>/.<name>.tmp-<pid>-<n>, fsyncs it and renames it onto `path`, so readers
// see either the old file (or none) or the complete new one. On any failure the temporary file is
// removed and IoError names `path`. A process killed mid-write can leave only the hidden temporary.
void write_file_atomic(const std::string& path, std::string_view bytes, WriteMode mode = WriteMode::replace);
void write_file_atomic(const std::string& path, const std::vector<unsigned char>& bytes,
                       WriteMode mode = WriteMode::replace);

// Replaces several files together: each (path, bytes) is first written in full (write_file_atomic)
// under a hidden name beside its target, and only when all are there are they renamed into place.
// A failure before that (a full disk, say) removes the hidden files and leaves every old file.
void replace_files_together(const std::vector<std::pair<std::string, std::string>>& files);

// A batch's output directory: refused (OptionError naming it as `option`) when it is one of
// `input_dirs`, created with its parents when missing (IoError when that fails).
void prepare_output_dir(const std::string& output_dir, const std::vector<std::string>& input_dirs,
                        const std::string& option);

}  // namespace efcnet
