// Volumes through the Fuser (efcnet/volume_fusion.h): slice k is exactly Fuser::fuse_pair on the
// k-th prepared slice pair; the same anatomy stored another way gives the same fused volume.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "efcnet/volume.h"
#include "efcnet/volume_fusion.h"
#include "support/temp_dir.h"
#include "volume/volume_files.h"

namespace efcnet {
namespace {

using testing::make_geometry;
using testing::TempDir;

const std::string kModels = std::string(EFCNET_SOURCE_DIR) + "/models";

class VolumeFusion : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    FuserOptions options;
    options.weights = kModels + "/efcnet_default.pth";
    options.seem_weights = kModels + "/seem_default.pth";
    fuser_ = std::make_unique<Fuser>(options);
  }
  static void TearDownTestSuite() { fuser_.reset(); }
  static std::unique_ptr<Fuser> fuser_;
};
std::unique_ptr<Fuser> VolumeFusion::fuser_;

TEST_F(VolumeFusion, SliceKIsFusePairOnTheKthPreparedSlicePair) {
  const VolumePhantom phantom = make_volume_phantom(48, 6);
  for (const Colormap colormap : {Colormap::hot_iron, Colormap::grey}) {
    VolumeFusionOptions options;
    options.colormap = colormap;
    const PreparedVolumes prepared = prepare_volumes(phantom.anatomical, phantom.functional, options, "a", "f");
    const FusedVolume result = fuse_volume(*fuser_, prepared);
    EXPECT_EQ(result.fused.channels, colormap == Colormap::grey ? 1 : 3);
    EXPECT_TRUE(same_geometry(result.fused.geometry, phantom.anatomical.geometry, 0));
    EXPECT_EQ(result.fused_slices + result.empty_slices, prepared.layout.slices);
    ASSERT_GT(result.fused_slices, 3);
    for (int k = 0; k < prepared.layout.slices; ++k) {
      const cv::Mat a = extract_slice(prepared.anatomical, prepared.layout, k);
      const cv::Mat f = extract_slice(prepared.functional, prepared.layout, k);
      const cv::Mat got = extract_slice(result.fused, prepared.layout, k);
      if (!slice_has_content(prepared, k)) {
        EXPECT_EQ(cv::countNonZero(got.reshape(1)), 0) << "empty slice " << k;
        continue;
      }
      ASSERT_EQ(cv::norm(got, fuser_->fuse_pair(a, f), cv::NORM_INF), 0) << colormap_name(colormap) << " slice " << k;
    }
  }
}

// Values that are whole numbers in int16 DICOM as well as in float NIfTI.
std::vector<float> whole(std::vector<float> values) {
  for (auto& v : values) v = std::round(v);
  return values;
}

// The largest difference between two fused volumes holding the same physical voxels.
int max_difference_at_same_points(const ByteVolume& a, const ByteVolume& b) {
  const auto b_on_a = testing::same_points(b.geometry, b.voxels, a.geometry, b.channels);
  int worst = 0;
  for (std::size_t v = 0; v < a.voxels.size(); ++v)
    worst = std::max(worst, std::abs(int(a.voxels[v]) - int(b_on_a[v])));
  return worst;
}

FusedVolume fuse_files(const Fuser& fuser, const std::string& anatomical, const std::string& functional) {
  const PreparedVolumes prepared =
      prepare_volumes(read_volume(anatomical), read_volume(functional), {}, anatomical, functional);
  return fuse_volume(fuser, prepared);
}

// The anatomy as a NIfTI (voxel axes +x, +y, +z) and as a DICOM series whose rows run -x and whose
// slices run -z (int16 with rescale): one fused volume, within 1 level, compared point by point.
TEST_F(VolumeFusion, TheSameAnatomyAsNiftiOrAsDicomSeriesGivesTheSameFusedVolume) {
  TempDir dir;
  const VolumePhantom phantom = make_volume_phantom(48, 6);
  const VolumeGeometry& g = phantom.anatomical.geometry;
  const auto values = whole(phantom.anatomical.voxels);
  testing::write_nifti<float>(dir / "functional.nii.gz", phantom.functional.geometry, phantom.functional.voxels);

  VolumeGeometry flipped = g;  // the same voxel centres, i and k reversed
  flipped.direction = {-1, 0, 0, 0, 1, 0, 0, 0, -1};
  flipped.origin = g.physical_point(double(g.size[0] - 1), 0, double(g.size[2] - 1));
  std::filesystem::create_directory(dir / "dicom");
  testing::DicomSeriesOptions options;
  options.slope = 2;
  options.intercept = -8;
  options.shuffle_seed = 5;
  std::vector<float> even = values;  // whole after (v + 8) / 2
  for (auto& v : even) v = std::round(v / 2) * 2;
  testing::write_nifti<float>(dir / "anatomical.nii.gz", g, even);
  testing::write_dicom_series(dir / "dicom", flipped, testing::same_points(g, even, flipped), options);

  const FusedVolume from_nifti = fuse_files(*fuser_, dir / "anatomical.nii.gz", dir / "functional.nii.gz");
  const FusedVolume from_dicom = fuse_files(*fuser_, dir / "dicom", dir / "functional.nii.gz");
  ASSERT_FALSE(same_geometry(from_nifti.fused.geometry, from_dicom.fused.geometry, 1e-3))
      << "the test wants two voxel orders";
  EXPECT_GT(from_nifti.fused_slices, 3);
  EXPECT_LE(max_difference_at_same_points(from_nifti.fused, from_dicom.fused), 1);
}

// The functional volume stored in another voxel order (axes permuted and reversed) fuses the same.
TEST_F(VolumeFusion, AFunctionalVolumeInAnotherVoxelOrderGivesTheSameFusedVolume) {
  TempDir dir;
  const VolumePhantom phantom = make_volume_phantom(48, 6);
  const VolumeGeometry& f = phantom.functional.geometry;
  VolumeGeometry other;  // same centres: i <- old k reversed, j <- old i, k <- old j
  other.size = {f.size[2], f.size[0], f.size[1]};
  other.spacing = {f.spacing[2], f.spacing[0], f.spacing[1]};
  for (int r = 0; r < 3; ++r) {
    other.direction[r * 3 + 0] = -f.direction[r * 3 + 2];
    other.direction[r * 3 + 1] = f.direction[r * 3 + 0];
    other.direction[r * 3 + 2] = f.direction[r * 3 + 1];
  }
  other.origin = f.physical_point(0, 0, double(f.size[2] - 1));
  testing::write_nifti<float>(dir / "anatomical.nii.gz", phantom.anatomical.geometry, phantom.anatomical.voxels);
  testing::write_nifti<float>(dir / "f1.nii.gz", f, phantom.functional.voxels);
  testing::write_nifti<float>(dir / "f2.nii.gz", other, testing::same_points(f, phantom.functional.voxels, other));
  const FusedVolume one = fuse_files(*fuser_, dir / "anatomical.nii.gz", dir / "f1.nii.gz");
  const FusedVolume two = fuse_files(*fuser_, dir / "anatomical.nii.gz", dir / "f2.nii.gz");
  int worst = 0;
  for (std::size_t v = 0; v < one.fused.voxels.size(); ++v)
    worst = std::max(worst, std::abs(int(one.fused.voxels[v]) - int(two.fused.voxels[v])));
  EXPECT_LE(worst, 1);
  EXPECT_GT(one.fused_slices, 3);
}

TEST(VolumeMemory, EstimateGrowsWithTheVolumesAndRefusesWhatCannotFit) {
  VolumeInfo a, f;
  a.geometry = make_geometry({256, 256, 64}, {1, 1, 1}, {0, 0, 0});
  f.geometry = make_geometry({128, 128, 32}, {2, 2, 2}, {0, 0, 0});
  const int64_t small = estimated_volume_bytes(a, f, Plane::axial, true, true);
  f.frames = 40;
  f.dimensions = 4;
  EXPECT_GT(estimated_volume_bytes(a, f, Plane::axial, true, true), small);
  a.geometry.size = {4096, 4096, 2048};
  const std::string shortfall = volume_memory_shortfall(a, f, Plane::axial, true, true);
  EXPECT_NE(shortfall.find("MemAvailable"), std::string::npos) << shortfall;
  EXPECT_NE(shortfall.find("4096x4096x2048"), std::string::npos) << shortfall;
}

}  // namespace
}  // namespace efcnet
