// Reading follows OpenCV's IMREAD_COLOR / IMREAD_GRAYSCALE exactly, and every bad file is a
// named IoError.
#include <fstream>
#include <functional>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/image.h"
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
