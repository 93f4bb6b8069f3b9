// Image writing (image.h): encoded by OpenCV, written through write_file_atomic.
#include <filesystem>

#include <opencv2/imgcodecs.hpp>

#include "efcnet/image.h"

namespace efcnet {

void write_image_atomic(const std::string& path, const cv::Mat& image, WriteMode mode) {
  const std::string extension = std::filesystem::path(path).extension().string();
  if (extension.empty() || !cv::haveImageWriter(path)) {
    throw IoError(path + ": no image format for the extension '" + extension + "' (use .png, .jpg, .tif or .bmp)");
  }
  std::vector<unsigned char> encoded;
  try {
    if (!cv::imencode(extension, image, encoded)) throw IoError(path + ": cannot encode the image");
  } catch (const cv::Exception& e) {
    throw IoError(path + ": cannot encode the image: " + e.msg);
  }
  write_file_atomic(path, encoded, mode);
}

}  // namespace efcnet
