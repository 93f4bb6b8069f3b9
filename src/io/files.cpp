// Reading regular files only, and atomic whole-file writes (files.h): a hidden temporary beside the
// target, fsynced, renamed into place.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "efcnet/files.h"

namespace efcnet {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& problem, int err) {
  throw IoError(path + ": " + problem + ": " + std::strerror(err));
}

// Owns the temporary file until it has been renamed into place; removes it on every other path.
class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  int close() {  // returns 0 or errno
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }
  void commit() { committed_ = true; }

 private:
  std::string path_;
  int fd_;
  bool committed_ = false;
};

// rename() without replacing an existing target. Where the filesystem lacks RENAME_NOREPLACE,
// link()+unlink() is just as safe; where it lacks hard links too (FAT), a check before rename()
// leaves only a tiny race. Returns 0 or errno.
int rename_no_clobber(const char* from, const char* to) {
  if (::renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return errno;
  if (::link(from, to) == 0) {
    ::unlink(from);
    return 0;
  }
  if (errno != EPERM && errno != ENOTSUP) return errno;
  if (::access(to, F_OK) == 0) return EEXIST;
  return ::rename(from, to) == 0 ? 0 : errno;
}

// Makes the rename itself durable; a failure here cannot undo the write, so it is not reported.
void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// A FIFO or a device would block the reader or stream forever; only regular files are inputs.
void require_regular_mode(const std::string& path, mode_t mode) {
  if (S_ISREG(mode)) return;
  if (S_ISDIR(mode)) throw IoError(path + ": is a directory");
  const char* kind = S_ISFIFO(mode)   ? "a FIFO"
                     : S_ISCHR(mode)  ? "a character device"
                     : S_ISBLK(mode)  ? "a block device"
                     : S_ISSOCK(mode) ? "a socket"
                                      : "a special file";
  throw IoError(path + ": is " + std::string(kind) + ", not a regular file");
}

}  // namespace

void require_regular_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) throw IoError(path + ": no such file");
    fail(path, "cannot open", errno);
  }
  require_regular_mode(path, st.st_mode);
}

std::vector<unsigned char> read_regular_file(const std::string& path) {
  require_regular_file(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open", errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(path, "cannot read", errno);
  require_regular_mode(path, st.st_mode);

  std::vector<unsigned char> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(path, "cannot read", errno);
    if (n == 0) throw IoError(path + ": file shrank while reading");
    got += static_cast<std::size_t>(n);
  }
  return bytes;
}

void write_file_atomic(const std::string& path, std::string_view bytes, WriteMode mode) {
  const std::filesystem::path target(path);
  const std::string name = target.filename().string();
  if (name.empty() || name == "." || name == "..") {
    throw IoError(path + ": not a file name to write to");
  }
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";

  static std::atomic<unsigned> counter{0};
  std::string temp_path =
      dir + "/." + name + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  const int fd = ::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) fail(path, "cannot write", errno);
  TempFile temp(std::move(temp_path), fd);

  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(temp.fd(), bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, "cannot write", errno);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(temp.fd()) != 0) fail(path, "cannot write (fsync)", errno);
  if (const int err = temp.close()) fail(path, "cannot write (close)", err);

  if (mode == WriteMode::replace) {
    if (::rename(temp.path().c_str(), path.c_str()) != 0) fail(path, "cannot rename into place", errno);
  } else if (const int err = rename_no_clobber(temp.path().c_str(), path.c_str())) {
    if (err == EEXIST) throw OutputExistsError(path);
    fail(path, "cannot rename into place", err);
  }
  temp.commit();
  sync_directory(dir);
}

void write_file_atomic(const std::string& path, const std::vector<unsigned char>& bytes, WriteMode mode) {
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), mode);
}

void replace_files_together(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<std::string> staged;
  try {
    for (const auto& [path, bytes] : files) {
      const std::filesystem::path target(path);
      staged.push_back(
          (target.parent_path() / ("." + target.filename().string() + ".staged-" + std::to_string(::getpid())))
              .string());
      write_file_atomic(staged.back(), bytes);
    }
  } catch (...) {
    std::error_code ec;
    for (const std::string& path : staged) std::filesystem::remove(path, ec);
    throw;
  }
  for (std::size_t i = 0; i < files.size(); ++i) {
    std::error_code ec;
    std::filesystem::rename(staged[i], files[i].first, ec);
    if (ec) {
      std::error_code ignored;
      for (std::size_t j = i; j < files.size(); ++j) std::filesystem::remove(staged[j], ignored);
      throw IoError(files[i].first + ": cannot rename into place: " + ec.message());
    }
  }
}

void prepare_output_dir(const std::string& output_dir, const std::vector<std::string>& input_dirs,
                        const std::string& option) {
  std::error_code ec;
  for (const std::string& input_dir : input_dirs) {
    if (std::filesystem::equivalent(output_dir, input_dir, ec)) {
      throw OptionError(output_dir + ": is an input directory; choose another " + option);
    }
  }
  std::filesystem::create_directories(output_dir, ec);
  if (!std::filesystem::is_directory(output_dir)) {
    throw IoError(output_dir + ": cannot create the output directory" + (ec ? ": " + ec.message() : ""));
  }
}

}  // namespace efcnet
