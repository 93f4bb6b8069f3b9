// The DICOM palettes against an independent copy of the standard's tables (pydicom's palette
// files, read by pydicom), and the luminance property that makes hot-iron the default.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/volume.h"
#include "support/command.h"
#include "support/required.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

// R, G and B of the 256 entries as pydicom decodes the palette file, one line of 768 numbers.
std::string pydicom_palette(const char* file, const efcnet::testing::TempDir& scratch) {
  const std::string script =
      "import sys, pydicom, os\n"
      "from pydicom.data import get_palette_files\n"
      "from pydicom.pixel_data_handlers.util import apply_color_lut\n"
      "import numpy as np\n"
      "path = [p for p in get_palette_files() if os.path.basename(p) == sys.argv[1]][0]\n"
      "rgb = apply_color_lut(np.arange(256, dtype=np.uint8), ds=pydicom.dcmread(path))\n"
      "assert rgb.dtype == np.uint8 and rgb.shape == (256, 3)\n"
      "print(' '.join(str(int(v)) for v in np.concatenate([rgb[:, 0], rgb[:, 1], rgb[:, 2]])))\n";
  const std::string script_path = scratch / "palette.py";
  FILE* f = std::fopen(script_path.c_str(), "w");
  std::fputs(script.c_str(), f);
  std::fclose(f);
  const auto result = efcnet::testing::run_command(std::string(kPython) + " " + script_path + " " + file, scratch);
  EXPECT_EQ(result.status, 0) << result.err;
  return result.out;
}

bool have_pydicom(const efcnet::testing::TempDir& scratch) {
  if (!std::filesystem::exists(kPython)) return false;
  return efcnet::testing::run_command(std::string(kPython) + " -c 'import pydicom, numpy'", scratch).status == 0;
}

TEST(VolumePalettes, EqualPydicomsCopiesOfTheStandardsTables) {
  efcnet::testing::TempDir scratch;
  if (!have_pydicom(scratch)) {
    EFCNET_SKIP_UNLESS_CI() << "needs /usr/bin/python3 with pydicom and numpy (python3-pydicom)";
  }
  const std::pair<Colormap, const char*> palettes[] = {{Colormap::hot_iron, "hotiron.dcm"},
                                                       {Colormap::pet, "pet.dcm"},
                                                       {Colormap::hot_metal_blue, "hotmetalblue.dcm"},
                                                       {Colormap::pet_20_step, "pet20step.dcm"}};
  for (const auto& [colormap, file] : palettes) {
    std::istringstream numbers(pydicom_palette(file, scratch));
    const auto& rgb = palette_rgb(colormap);
    for (int channel = 0; channel < 3; ++channel) {
      for (int v = 0; v < 256; ++v) {
        int expected = -1;
        ASSERT_TRUE(numbers >> expected) << file << ": pydicom gave fewer than 768 values";
        ASSERT_EQ(rgb[v][channel], expected) << colormap_name(colormap) << " entry " << v << " channel " << channel;
      }
    }
  }
}

// The luminance (Y of BGR2YUV) of each palette entry: the network sees Y, so a palette whose Y does
// not rise with the entry turns higher uptake into darker pixels for it.
std::vector<double> luminance(Colormap colormap) {
  std::vector<double> y;
  for (const auto& [r, g, b] : palette_rgb(colormap)) y.push_back(0.299 * r + 0.587 * g + 0.114 * b);
  return y;
}

// What makes hot-iron the default: its luminance rises with the entry (as hot-metal-blue's; PET's
// falls over 63 entries, PET 20 Step's by up to 63 levels), and of the rising two it keeps the
// most distinct 8-bit Y levels (204 of 256 against 177) and is the closest to a straight line.
TEST(VolumePalettes, HotIronsLuminanceRisesWithUptakeMostEvenly) {
  std::map<Colormap, int> distinct;
  std::map<Colormap, double> straightness;
  for (const Colormap colormap :
       {Colormap::grey, Colormap::hot_iron, Colormap::pet, Colormap::hot_metal_blue, Colormap::pet_20_step}) {
    const auto y = luminance(colormap);
    int falls = 0;
    for (int v = 1; v < 256; ++v) falls += y[v] < y[v - 1] - 1e-9;
    std::set<long> levels;
    double sv = 0, sy = 0, svv = 0, syy = 0, svy = 0;
    for (int v = 0; v < 256; ++v) {
      levels.insert(std::lround(y[v]));
      sv += v, sy += y[v], svv += double(v) * v, syy += y[v] * y[v], svy += v * y[v];
    }
    distinct[colormap] = static_cast<int>(levels.size());
    straightness[colormap] = (svy / 256 - sv / 256 * sy / 256) /
                             std::sqrt((svv / 256 - sv / 256 * sv / 256) * (syy / 256 - sy / 256 * sy / 256));
    std::printf("%-15s Y falls at %3d entries, %3d distinct 8-bit levels, corr(entry, Y) %.4f\n",
                colormap_name(colormap), falls, distinct[colormap], straightness[colormap]);
    EXPECT_EQ(y[0], 0) << colormap_name(colormap);
    EXPECT_NEAR(y[255], 255, 1e-9) << colormap_name(colormap);
    if (colormap == Colormap::pet || colormap == Colormap::pet_20_step) {
      EXPECT_GT(falls, 0) << colormap_name(colormap) << " was expected to darken somewhere";
    } else {
      EXPECT_EQ(falls, 0) << colormap_name(colormap);
    }
  }
  for (const Colormap other : {Colormap::pet, Colormap::hot_metal_blue, Colormap::pet_20_step}) {
    EXPECT_GT(distinct[Colormap::hot_iron], distinct[other]) << colormap_name(other);
    EXPECT_GT(straightness[Colormap::hot_iron], straightness[other]) << colormap_name(other);
  }
  EXPECT_EQ(kDefaultFunctionalColormap, Colormap::hot_iron);
  EXPECT_EQ(parse_colormap("pet-20-step"), Colormap::pet_20_step);
  EXPECT_THROW(parse_colormap("jet"), OptionError);
}

// The measurement behind the default colormap: the pseudo-coloured SPECT and PET slices the
// network was trained on (AANLIB) matched pixel by pixel to each palette's nearest entry. For a
// palette whose order agrees with AANLIB's brightness, the matched entry rises with the pixel's
// luminance Y (a high correlation); the distance says how close the colours themselves are.
TEST(VolumePalettes, HotIronsOrderAgreesBestWithAanlibsPseudoColourLuminance) {
  const std::filesystem::path root = std::filesystem::path(EFCNET_SHARED_DIR) / "datasets/aanlib/train";
  if (!std::filesystem::is_directory(root / "SPECT-MRI/SPECT")) {
    EFCNET_SKIP_UNLESS_CI() << "needs " << root.string();
  }
  std::map<uint32_t, double> colours;  // packed RGB -> pixel count
  int files = 0;
  for (const char* dir : {"SPECT-MRI/SPECT", "PET-MRI/PET"}) {
    std::vector<std::filesystem::path> paths;
    for (const auto& entry : std::filesystem::directory_iterator(root / dir)) paths.push_back(entry.path());
    std::sort(paths.begin(), paths.end());
    for (std::size_t i = 0; i < paths.size(); i += 4) {
      const cv::Mat bgr = cv::imread(paths[i].string(), cv::IMREAD_COLOR);
      if (bgr.empty()) continue;
      ++files;
      for (int y = 0; y < bgr.rows; ++y)
        for (int x = 0; x < bgr.cols; ++x) {
          const cv::Vec3b p = bgr.at<cv::Vec3b>(y, x);
          if (std::max({p[0], p[1], p[2]}) < 16) continue;  // background
          colours[(uint32_t(p[2]) << 16) | (uint32_t(p[1]) << 8) | p[0]] += 1;
        }
    }
  }
  ASSERT_GT(files, 10);
  std::map<Colormap, double> correlation;
  for (const Colormap colormap : {Colormap::hot_iron, Colormap::pet, Colormap::hot_metal_blue, Colormap::pet_20_step}) {
    const auto& rgb = palette_rgb(colormap);
    double n = 0, sv = 0, sy = 0, svv = 0, syy = 0, svy = 0, distance = 0;
    for (const auto& [packed, count] : colours) {
      const int r = packed >> 16, g = (packed >> 8) & 255, b = packed & 255;
      int best = 0;
      double best_d = 1e18;
      for (int v = 0; v < 256; ++v) {
        const double d = std::pow(r - rgb[v][0], 2) + std::pow(g - rgb[v][1], 2) + std::pow(b - rgb[v][2], 2);
        if (d < best_d) best_d = d, best = v;
      }
      const double y = 0.299 * r + 0.587 * g + 0.114 * b;
      n += count, sv += count * best, sy += count * y, svv += count * best * best, syy += count * y * y,
          svy += count * best * y, distance += count * std::sqrt(best_d);
    }
    const double cov = svy / n - sv / n * sy / n;
    correlation[colormap] = cov / std::sqrt((svv / n - sv / n * sv / n) * (syy / n - sy / n * sy / n));
    std::printf("AANLIB SPECT/PET (%d files) vs %-15s: corr(entry, Y) %.3f, mean RGB distance %.1f\n", files,
                colormap_name(colormap), correlation[colormap], distance / n);
  }
  const double hot_iron = correlation.at(Colormap::hot_iron);
  for (const auto& [colormap, value] : correlation) {
    if (colormap != Colormap::hot_iron) {
      EXPECT_GT(hot_iron, value) << colormap_name(colormap);
    }
  }
}

TEST(VolumePalettes, ColouriseLooksUpEveryVoxelInBgrOrder) {
  ByteVolume grey;
  grey.geometry.size = {256, 1, 1};
  for (int v = 0; v < 256; ++v) grey.voxels.push_back(static_cast<uint8_t>(v));
  const ByteVolume colour = colourise(grey, Colormap::pet);
  ASSERT_EQ(colour.channels, 3);
  const auto& rgb = palette_rgb(Colormap::pet);
  for (int v = 0; v < 256; ++v) {
    EXPECT_EQ(colour.voxels[3 * v], rgb[v][2]);
    EXPECT_EQ(colour.voxels[3 * v + 1], rgb[v][1]);
    EXPECT_EQ(colour.voxels[3 * v + 2], rgb[v][0]);
  }
  EXPECT_EQ(colourise(grey, Colormap::grey).voxels, grey.voxels);
}

}  // namespace
}  // namespace efcnet
