// Reading follows OpenCV's IMREAD_COLOR / IMREAD_GRAYSCALE exactly, and every bad file is a
// named IoError.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <future>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/image.h"
#include "support/png_files.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

using efcnet::testing::TempDir;

std::vector<unsigned char> png_bytes(const cv::Mat& image) {
  std::vector<unsigned char> bytes;
  EXPECT_TRUE(cv::imencode(".png", image, bytes));
  return bytes;
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes, std::size_t count) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), count);
}

cv::Mat noise(int rows, int cols, int type) {
  cv::Mat image(rows, cols, type);
  cv::RNG(7).fill(image, cv::RNG::UNIFORM, cv::Scalar::all(0), cv::Scalar::all(65536));
  return image;
}

bool mats_equal(const cv::Mat& a, const cv::Mat& b) {
  return a.type() == b.type() && a.size() == b.size() && cv::norm(a, b, cv::NORM_INF) == 0;
}

// The message must start with the path and contain the problem.
void expect_named_error(const std::function<void()>& read, const std::string& path, const std::string& problem) {
  try {
    read();
    ADD_FAILURE() << "no error for " << path;
  } catch (const IoError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(problem), std::string::npos) << message;
  }
}

TEST(ReadImage, MissingFileIsNamed) {
  TempDir dir;
  const std::string path = dir / "absent.png";
  expect_named_error([&] { read_anatomical(path); }, path, "no such file");
  expect_named_error([&] { read_functional(path); }, path, "no such file");
}

TEST(ReadImage, DirectoryIsNamed) {
  TempDir dir;
  expect_named_error([&] { read_functional(dir.path().string()); }, dir.path().string(), "is a directory");
}

TEST(ReadImage, EmptyFileIsNamed) {
  TempDir dir;
  const std::string path = dir / "empty.png";
  std::ofstream{path};
  expect_named_error([&] { read_anatomical(path); }, path, "empty file");
}

TEST(ReadImage, TruncatedPngIsNamedWithoutLibpngNoise) {
  TempDir dir;
  const std::string path = dir / "cut.png";
  const auto bytes = png_bytes(noise(40, 40, CV_8UC3));
  write_bytes(path, bytes, bytes.size() / 2);
  ::testing::internal::CaptureStderr();
  expect_named_error([&] { read_functional(path); }, path, "truncated PNG");
  expect_named_error([&] { read_anatomical(path); }, path, "truncated PNG");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(ReadImage, PngCutJustBeforeIendIsTruncated) {
  TempDir dir;
  const std::string path = dir / "no_iend.png";
  const auto bytes = png_bytes(noise(8, 8, CV_8UC1));
  write_bytes(path, bytes, bytes.size() - 12);  // IEND is the last 12 bytes
  expect_named_error([&] { read_anatomical(path); }, path, "truncated PNG");
}

TEST(ReadImage, CorruptPixelDataIsNamed) {
  TempDir dir;
  const std::string path = dir / "corrupt.png";
  auto bytes = png_bytes(noise(40, 40, CV_8UC3));
  for (std::size_t i = 60; i < bytes.size() - 20; ++i) bytes[i] ^= 0x5a;  // chunk layout intact, data not
  write_bytes(path, bytes, bytes.size());
  ::testing::internal::CaptureStderr();  // libpng may complain; only our exception matters here
  expect_named_error([&] { read_functional(path); }, path, "cannot decode");
  ::testing::internal::GetCapturedStderr();
}

TEST(ReadImage, TextFileIsNamed) {
  TempDir dir;
  const std::string path = dir / "notes.png";
  std::ofstream(path) << "not an image at all";
  expect_named_error([&] { read_functional(path); }, path, "cannot decode");
}

TEST(ReadImage, ColourFunctionalIsImreadColour) {
  TempDir dir;
  const std::string path = dir / "f.png";
  ASSERT_TRUE(cv::imwrite(path, noise(20, 30, CV_8UC3)));
  const cv::Mat image = read_functional(path);
  EXPECT_EQ(image.type(), CV_8UC3);
  EXPECT_TRUE(mats_equal(image, cv::imread(path, cv::IMREAD_COLOR)));
}

TEST(ReadImage, GreyFunctionalStaysGrey) {
  TempDir dir;
  const std::string path = dir / "ct.png";
  const cv::Mat grey = noise(20, 30, CV_8UC1);
  ASSERT_TRUE(cv::imwrite(path, grey));
  const cv::Mat image = read_functional(path);
  EXPECT_EQ(image.type(), CV_8UC1);
  EXPECT_TRUE(mats_equal(image, grey));
}

TEST(ReadImage, ColourAnatomicalIsConvertedByTheCodec) {
  TempDir dir;
  const std::string path = dir / "a.png";
  ASSERT_TRUE(cv::imwrite(path, noise(20, 30, CV_8UC3)));
  const cv::Mat image = read_anatomical(path);
  EXPECT_EQ(image.type(), CV_8UC1);
  EXPECT_TRUE(mats_equal(image, cv::imread(path, cv::IMREAD_GRAYSCALE)));
}

TEST(ReadImage, SixteenBitPngKeepsTheHighByte) {
  TempDir dir;
  const std::string grey_path = dir / "g16.png", colour_path = dir / "c16.png";
  cv::Mat grey(1, 4, CV_16UC1), colour(1, 4, CV_16UC3);
  const uint16_t values[4] = {255, 4255, 40000, 65535};
  for (int i = 0; i < 4; ++i) {
    grey.at<uint16_t>(0, i) = values[i];
    colour.at<cv::Vec3w>(0, i) = cv::Vec3w(values[i], values[3 - i], 0x1234);
  }
  ASSERT_TRUE(cv::imwrite(grey_path, grey));
  ASSERT_TRUE(cv::imwrite(colour_path, colour));

  const cv::Mat g = read_functional(grey_path);
  ASSERT_EQ(g.type(), CV_8UC1);
  const cv::Mat c = read_functional(colour_path);
  ASSERT_EQ(c.type(), CV_8UC3);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(g.at<uint8_t>(0, i), values[i] >> 8);
    EXPECT_EQ(c.at<cv::Vec3b>(0, i), cv::Vec3b(values[i] >> 8, values[3 - i] >> 8, 0x12));
  }
  EXPECT_TRUE(mats_equal(read_anatomical(grey_path), g));
}

TEST(ReadImage, SixteenBitTiffRounds) {
  TempDir dir;
  const std::string path = dir / "c16.tif";
  cv::Mat colour(1, 4, CV_16UC3);
  const uint16_t values[4] = {255, 4255, 8255, 65535};
  for (int i = 0; i < 4; ++i) colour.at<cv::Vec3w>(0, i) = cv::Vec3w::all(values[i]);
  ASSERT_TRUE(cv::imwrite(path, colour));
  const cv::Mat c = read_functional(path);
  ASSERT_EQ(c.type(), CV_8UC3);
  EXPECT_TRUE(mats_equal(c, cv::imread(path, cv::IMREAD_COLOR)));
  const uint8_t expected[4] = {1, 17, 32, 255};  // round(v / 256), saturated
  for (int i = 0; i < 4; ++i) EXPECT_EQ(c.at<cv::Vec3b>(0, i), cv::Vec3b::all(expected[i])) << values[i];
}

TEST(ReadImage, RgbaDropsAlpha) {
  TempDir dir;
  const std::string path = dir / "rgba.png";
  cv::Mat bgra(3, 5, CV_8UC4, cv::Scalar(10, 120, 230, 0));  // fully transparent: colour must survive
  bgra.at<cv::Vec4b>(1, 2) = cv::Vec4b(1, 2, 3, 128);
  ASSERT_TRUE(cv::imwrite(path, bgra));
  const cv::Mat image = read_functional(path);
  ASSERT_EQ(image.type(), CV_8UC3);
  EXPECT_EQ(image.at<cv::Vec3b>(0, 0), cv::Vec3b(10, 120, 230));
  EXPECT_EQ(image.at<cv::Vec3b>(1, 2), cv::Vec3b(1, 2, 3));
  EXPECT_TRUE(mats_equal(image, cv::imread(path, cv::IMREAD_COLOR)));
}

// A 32768x32768 PNG of a few hundred bytes: the header declares the size, the pixel data ends
// after one row. Decoding it would map 3 GiB before finding out.
TEST(ReadImage, DeclaredSizeAboveTheLimitIsRefusedBeforeDecoding) {
  TempDir dir;
  const std::string path = dir / "huge.png";
  const auto bytes = efcnet::testing::zero_png(32768, 32768, 2, 1);
  write_bytes(path, bytes, bytes.size());
  ::testing::internal::CaptureStderr();
  expect_named_error([&] { read_functional(path); }, path, "32768x32768 pixels exceeds the limit of 67108864");
  expect_named_error([&] { read_anatomical(path); }, path, "32768x32768 pixels exceeds the limit of 67108864");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");  // no decoder ran
}

// Each format's header gives the size: PNG IHDR, JPEG SOF, BMP, TIFF's first IFD.
TEST(ReadImage, PixelLimitAppliesToEveryFormat) {
  TempDir dir;
  for (const char* ext : {".png", ".jpg", ".bmp", ".tif"}) {
    for (const int type : {CV_8UC1, CV_8UC3}) {
      const std::string path = dir / ("i" + std::to_string(type) + ext);
      ASSERT_TRUE(cv::imwrite(path, noise(40, 50, type)));
      ImageReadOptions options;
      options.max_pixels = 1999;
      expect_named_error([&] { read_functional(path, options); }, path, "50x40 pixels exceeds the limit of 1999");
      expect_named_error([&] { read_anatomical(path, options); }, path, "50x40 pixels exceeds the limit of 1999");
      options.max_pixels = 2000;
      EXPECT_EQ(read_functional(path, options).size(), cv::Size(50, 40)) << path;
    }
  }
}

TEST(ReadImage, SizeCheckSeesTheDeclaredSize) {
  TempDir dir;
  const std::string path = dir / "f.png";
  ASSERT_TRUE(cv::imwrite(path, noise(20, 30, CV_8UC3)));
  ImageReadOptions options;
  std::int64_t seen_width = 0, seen_height = 0;
  options.size_check = [&](std::int64_t width, std::int64_t height) {
    seen_width = width;
    seen_height = height;
    return std::string("not enough memory for this test");
  };
  expect_named_error([&] { read_functional(path, options); }, path, "not enough memory for this test");
  EXPECT_EQ(seen_width, 30);
  EXPECT_EQ(seen_height, 20);
}

// One decode, with the flag the header's channel count picks, must give what OpenCV's two-step
// reading (IMREAD_UNCHANGED for the channel count, then imread) gives, whatever the layout.
TEST(ReadImage, OneDecodeMatchesImreadForEveryStoredLayout) {
  TempDir dir;
  std::vector<std::string> paths;
  auto written = [&](const std::string& name, const cv::Mat& image) {
    paths.push_back(dir / name);
    ASSERT_TRUE(cv::imwrite(paths.back(), image)) << name;
  };
  for (const char* ext : {".png", ".tif"}) {
    for (const int type : {CV_8UC1, CV_8UC3, CV_8UC4, CV_16UC1, CV_16UC3, CV_16UC4}) {
      written("l" + std::to_string(type) + ext, noise(9, 13, type));
    }
  }
  for (const char* ext : {".jpg", ".bmp"}) {
    for (const int type : {CV_8UC1, CV_8UC3}) written("l" + std::to_string(type) + ext, noise(9, 13, type));
  }
  // Grey + alpha and palette PNGs (cv::imwrite makes neither): OpenCV stores both as colour.
  using efcnet::testing::png_file;
  using efcnet::testing::zlib_compressed;
  efcnet::testing::PngBytes raw;
  for (int y = 0; y < 3; ++y) raw.insert(raw.end(), {0, 10, 200, 90, 30, 250, 255});
  const efcnet::testing::PngBytes palette{0, 0, 0, 10, 10, 10, 200, 200, 200};  // grey entries
  efcnet::testing::PngBytes indices;
  for (int y = 0; y < 3; ++y) indices.insert(indices.end(), {0, 0, 1, 2, 1, 0, 2});
  for (const auto& [name, bytes] :
       {std::pair{"grey_alpha.png", png_file(3, 3, 8, 4, zlib_compressed(raw))},
        std::pair{"palette.png", png_file(6, 3, 8, 3, zlib_compressed(indices), {{"PLTE", palette}})}}) {
    paths.push_back(dir / name);
    write_bytes(paths.back(), bytes, bytes.size());
  }
  for (const std::string& path : paths) {
    const int stored = cv::imread(path, cv::IMREAD_UNCHANGED).channels();
    ASSERT_GT(stored, 0) << path;
    EXPECT_TRUE(
        mats_equal(read_functional(path), cv::imread(path, stored >= 3 ? cv::IMREAD_COLOR : cv::IMREAD_GRAYSCALE)))
        << path;
    EXPECT_TRUE(mats_equal(read_anatomical(path), cv::imread(path, cv::IMREAD_GRAYSCALE))) << path;
  }
}

// A JPEG whose EXIF says "rotate 90 degrees clockwise" (orientation 6) is read rotated, as imread does.
TEST(ReadImage, JpegExifOrientationIsApplied) {
  TempDir dir;
  const std::string path = dir / "rotated.jpg";
  std::vector<unsigned char> bytes;
  ASSERT_TRUE(cv::imencode(".jpg", noise(20, 30, CV_8UC3), bytes));
  const std::vector<unsigned char> exif{0xff, 0xe1, 0, 34,   'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 0x2a, 0, 0, 0, 8,
                                        0,    1,    1, 0x12, 0,   3,   0,   0,   0, 1, 0,   6,   0, 0,    0, 0, 0, 0};
  bytes.insert(bytes.begin() + 2, exif.begin(), exif.end());
  write_bytes(path, bytes, bytes.size());
  const cv::Mat functional = read_functional(path), anatomical = read_anatomical(path);
  EXPECT_EQ(functional.size(), cv::Size(20, 30));
  EXPECT_TRUE(mats_equal(functional, cv::imread(path, cv::IMREAD_COLOR)));
  EXPECT_TRUE(mats_equal(anatomical, cv::imread(path, cv::IMREAD_GRAYSCALE)));
}

// A FIFO would block open() until a writer comes; the reader must refuse it at once.
TEST(ReadImage, FifoIsRefusedWithoutBlocking) {
  TempDir dir;
  const std::string path = dir / "pipe.png";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto reading = std::async(std::launch::async, [&] {
    try {
      read_functional(path);
    } catch (const IoError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  });
  const bool finished = reading.wait_for(std::chrono::seconds(2)) == std::future_status::ready;
  if (!finished) {
    // Releases a reader stuck in open() so the test can end.
    const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  }
  const std::string message = reading.get();
  EXPECT_TRUE(finished) << "read_functional blocked on a FIFO";
  EXPECT_EQ(message, path + ": is a FIFO, not a regular file");
}

TEST(ReadImage, DeviceIsRefused) {
  expect_named_error([] { read_anatomical("/dev/zero"); }, "/dev/zero", "is a character device, not a regular file");
}

TEST(ImageExtension, KnownExtensionsAnyCase) {
  for (const char* name : {"a.png", "a.PNG", "b.jpg", "b.JPEG", "c.tif", "c.tiff", "d.bmp", "dir/e.Png"}) {
    EXPECT_TRUE(has_image_extension(name)) << name;
  }
  for (const char* name : {"a", "a.txt", "a.png.bak", "png", ".png", "a.gif"}) {
    EXPECT_FALSE(has_image_extension(name)) << name;
  }
}

}  // namespace
}  // namespace efcnet
