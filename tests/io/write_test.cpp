// Atomic writes: the target holds the old content or the complete new one, never a part, and no
// temporary file survives a failure the process lives through.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/image.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

using efcnet::testing::list_dir;
using efcnet::testing::TempDir;
using Names = std::set<std::string>;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string expect_io_error(const std::function<void()>& write) {
  try {
    write();
  } catch (const IoError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no IoError";
  return {};
}

// Runs `body` in a child process whose files may not grow beyond `limit` bytes; returns its wait status.
int run_with_file_size_limit(rlim_t limit, bool ignore_sigxfsz, const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (ignore_sigxfsz) ::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG instead
    const rlimit rl{limit, limit};
    ::setrlimit(RLIMIT_FSIZE, &rl);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(WriteFileAtomic, WritesContentAndNothingElse) {
  TempDir dir;
  write_file_atomic(dir / "out.csv", std::string_view("a,b\n1,2\n"));
  EXPECT_EQ(slurp(dir / "out.csv"), "a,b\n1,2\n");
  EXPECT_EQ(list_dir(dir.path()), Names{"out.csv"});
}

TEST(WriteFileAtomic, ReplacesAnExistingFile) {
  TempDir dir;
  write_file_atomic(dir / "f.bin", std::string_view("old"));
  write_file_atomic(dir / "f.bin", std::vector<unsigned char>{'n', 'e', 'w', '!'});
  EXPECT_EQ(slurp(dir / "f.bin"), "new!");
  EXPECT_EQ(list_dir(dir.path()), Names{"f.bin"});
}

TEST(WriteFileAtomic, NoClobberKeepsTheExistingFile) {
  TempDir dir;
  const std::string path = dir / "keep.txt";
  write_file_atomic(path, std::string_view("precious"));
  const std::string message =
      expect_io_error([&] { write_file_atomic(path, std::string_view("other"), WriteMode::no_clobber); });
  EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
  EXPECT_NE(message.find("already exists"), std::string::npos) << message;
  EXPECT_EQ(slurp(path), "precious");
  EXPECT_EQ(list_dir(dir.path()), Names{"keep.txt"});
}

TEST(WriteFileAtomic, NoClobberWritesANewFile) {
  TempDir dir;
  write_file_atomic(dir / "new.txt", std::string_view("x"), WriteMode::no_clobber);
  EXPECT_EQ(slurp(dir / "new.txt"), "x");
}

TEST(WriteFileAtomic, MissingDirectoryIsNamedAndNothingIsCreated) {
  TempDir dir;
  const std::string path = dir / "missing/out.png";
  const std::string message = expect_io_error([&] { write_file_atomic(path, std::string_view("data")); });
  EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
  EXPECT_TRUE(list_dir(dir.path()).empty());
}

TEST(WriteFileAtomic, TargetThatIsADirectoryIsNamedAndTheTempRemoved) {
  TempDir dir;
  std::filesystem::create_directory(dir / "taken");
  std::filesystem::create_directory(dir / "taken/inside");  // a non-empty directory cannot be renamed over
  const std::string message = expect_io_error([&] { write_file_atomic(dir / "taken", std::string_view("data")); });
  EXPECT_NE(message.find(dir / "taken"), std::string::npos) << message;
  EXPECT_EQ(list_dir(dir.path()), Names{"taken"});
}

TEST(WriteFileAtomic, ReadOnlyDirectoryIsNamedAndLeavesNothing) {
  TempDir dir;
  namespace fs = std::filesystem;
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  const std::string locked = dir / "locked", path = locked + "/f";
  fs::create_directory(locked);
  fs::permissions(locked,
                  fs::perms::owner_read | fs::perms::owner_exec | fs::perms::others_read | fs::perms::others_exec);
  auto attempt = [&] {  // 0: IoError naming the file, 1: no error, 2: error without the name
    try {
      write_file_atomic(path, std::string_view("x"));
    } catch (const IoError& e) {
      return std::string(e.what()).rfind(path + ": ", 0) == 0 ? 0 : 2;
    }
    return 1;
  };
  int result = 0;
  if (::geteuid() == 0) {  // root ignores permissions: try as nobody
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(::setgid(65534) == 0 && ::setuid(65534) == 0 ? attempt() : 3);
    int status = 0;
    ::waitpid(pid, &status, 0);
    result = WIFEXITED(status) ? WEXITSTATUS(status) : 4;
  } else {
    result = attempt();
  }
  EXPECT_EQ(result, 0) << "1: the write succeeded, 2: the error did not name the file, 3: cannot drop root";
  EXPECT_TRUE(list_dir(locked).empty());
}

TEST(WriteFileAtomic, FailedWriteMidwayLeavesNoTempAndKeepsTheOldFile) {
  TempDir dir;
  const std::string path = dir / "big.bin";
  write_file_atomic(path, std::string_view("old content"));
  const std::string big(1 << 20, 'x');
  const int status = run_with_file_size_limit(64 * 1024, true, [&] {
    try {
      write_file_atomic(path, big);
    } catch (const IoError& e) {
      return std::string(e.what()).rfind(path + ": ", 0) == 0 ? 0 : 2;
    }
    return 1;  // the limit should have made the write fail
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: write did not fail, 2: error did not name the file";
  EXPECT_EQ(slurp(path), "old content");
  EXPECT_EQ(list_dir(dir.path()), Names{"big.bin"});
}

TEST(WriteFileAtomic, ProcessKilledMidWriteLeavesNoPartialTarget) {
  TempDir dir;
  const std::string path = dir / "killed.bin";
  const std::string big(1 << 20, 'x');
  // SIGXFSZ's default action kills the writer in the middle of write().
  const int status = run_with_file_size_limit(64 * 1024, false, [&] {
    write_file_atomic(path, big);
    return 0;
  });
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGXFSZ);
  EXPECT_FALSE(std::filesystem::exists(path));
  for (const auto& name : list_dir(dir.path())) EXPECT_EQ(name.rfind(".killed.bin.tmp-", 0), 0u) << name;
}

TEST(WriteImageAtomic, MatchesImwriteByteForByte) {
  TempDir dir;
  cv::Mat image(17, 23, CV_8UC3);
  cv::randu(image, 0, 256);
  for (const char* ext : {".png", ".jpg", ".tif", ".bmp"}) {
    write_image_atomic(dir / (std::string("ours") + ext), image);
    ASSERT_TRUE(cv::imwrite(dir / (std::string("cv") + ext), image));
    EXPECT_EQ(slurp(dir / (std::string("ours") + ext)), slurp(dir / (std::string("cv") + ext))) << ext;
  }
}

TEST(WriteImageAtomic, UnknownExtensionIsNamedAndNothingWritten) {
  TempDir dir;
  const cv::Mat image(4, 4, CV_8UC1, cv::Scalar(9));
  for (const char* name : {"out.xyz", "no_extension"}) {
    const std::string message = expect_io_error([&] { write_image_atomic(dir / name, image); });
    EXPECT_NE(message.find(dir / name), std::string::npos) << message;
  }
  EXPECT_TRUE(list_dir(dir.path()).empty());
}

}  // namespace
}  // namespace efcnet
