// The registration benchmark's parts (efcnet/registration_bench.h): slice stacks, seeded motions,
// the head's box and elastix's transform files.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/registration.h"
#include "efcnet/registration_bench.h"
#include "support/command.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

using efcnet::testing::contains;
using efcnet::testing::TempDir;

void write_slice(const std::string& path, int value, int channels = 1) {
  ASSERT_TRUE(cv::imwrite(path, cv::Mat(16, 20, channels == 1 ? CV_8UC1 : CV_8UC3, cv::Scalar::all(value))));
}

TEST(RegistrationBench, StacksTheLongestRunOfConsecutiveSlicesOnBothSides) {
  TempDir dir;
  std::filesystem::create_directories(dir / "PET-MRI/MRI");
  std::filesystem::create_directories(dir / "PET-MRI/PET");
  // Subject 3: slices 4, 5 and 7..10 on both sides, 11 only as MRI: the run is 7..10.
  for (const int slice : {4, 5, 7, 8, 9, 10, 11}) {
    write_slice(dir / ("PET-MRI/MRI/3" + std::string(slice < 10 ? "00" : "0") + std::to_string(slice) + ".png"), slice);
    if (slice != 11) {
      write_slice(dir / ("PET-MRI/PET/3" + std::string(slice < 10 ? "00" : "0") + std::to_string(slice) + ".png"),
                  slice, 3);
    }
  }
  // Subject 12: slices 1 and 2.
  for (const char* name : {"12001.png", "12002.png"}) {
    write_slice(dir / ("PET-MRI/MRI/" + std::string(name)), 1);
    write_slice(dir / ("PET-MRI/PET/" + std::string(name)), 1, 3);
  }
  const auto stacks = find_slice_stacks(dir / "PET-MRI", 3);
  ASSERT_EQ(stacks.size(), 2u);
  EXPECT_EQ(stacks[0].subject, "3");
  EXPECT_EQ(stacks[0].modality, "PET");
  ASSERT_EQ(stacks[0].anatomical.size(), 3u);  // the middle 3 of 7..10
  EXPECT_TRUE(contains(stacks[0].anatomical[0], "MRI/3007.png")) << stacks[0].anatomical[0];
  EXPECT_TRUE(contains(stacks[0].functional[2], "PET/3009.png")) << stacks[0].functional[2];
  EXPECT_EQ(stacks[1].subject, "12");

  StackSpacing spacing;
  spacing.slice_mm = 3;
  const StackedPair pair = stack_slices(stacks[0], spacing);
  EXPECT_EQ(pair.anatomical.geometry.size, (std::array<int64_t, 3>{20, 16, 3}));
  EXPECT_EQ(pair.functional.geometry.size, (std::array<int64_t, 3>{10, 8, 3}));
  EXPECT_FLOAT_EQ(pair.anatomical.voxels.back(), 9.0f);
  EXPECT_FLOAT_EQ(pair.functional.voxels.front(), 7.0f);  // the luma of grey is grey
  const PhysicalExtent a = physical_extent(pair.anatomical.geometry), f = physical_extent(pair.functional.geometry);
  for (int axis = 0; axis < 3; ++axis) {
    EXPECT_NEAR(a.low[axis], f.low[axis], 1e-9);
    EXPECT_NEAR(a.high[axis], -a.low[axis], 1e-9);  // centred
  }
  EXPECT_THROW(find_slice_stacks(dir / "PET-MRI/MRI", 3), IoError);
}

TEST(RegistrationBench, MotionsAreSeededAndWithinTheirBounds) {
  const std::array<double, 3> centre{1, 2, 3};
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    const LinearTransform m = random_rigid_motion(seed, 10, 20, centre);
    EXPECT_TRUE(m.rigid);
    const double shift = std::sqrt(m.translation[0] * m.translation[0] + m.translation[1] * m.translation[1] +
                                   m.translation[2] * m.translation[2]);
    EXPECT_GE(shift, 5 - 1e-9);
    EXPECT_LE(shift, 20 + 1e-9);
    // No rotation by more than 10 degrees about each axis: at most sqrt(3) * 10 in all.
    const double angle = std::acos(std::clamp((m.matrix[0] + m.matrix[4] + m.matrix[8] - 1) / 2, -1.0, 1.0));
    EXPECT_LE(angle * 180 / std::acos(-1.0), std::sqrt(3.0) * 10 + 1e-6);
    const LinearTransform again = random_rigid_motion(seed, 10, 20, centre);
    EXPECT_EQ(again.matrix, m.matrix);
    EXPECT_EQ(again.translation, m.translation);
  }
  EXPECT_NE(random_rigid_motion(1, 10, 20, centre).matrix, random_rigid_motion(2, 10, 20, centre).matrix);
}

TEST(RegistrationBench, ContentBoxIsTheBoxOfTheVoxelsAboveTheFraction) {
  Volume v;
  v.geometry.size = {10, 8, 4};
  v.geometry.spacing = {1, 2, 5};
  v.voxels.assign(10 * 8 * 4, 1.0f);  // below 10% of the peak
  v.voxels[(2 * 8 + 3) * 10 + 4] = 100;
  v.voxels[(1 * 8 + 5) * 10 + 6] = 50;
  const PhysicalExtent box = content_box(v, 0.1);
  EXPECT_DOUBLE_EQ(box.low[0], 3.5);
  EXPECT_DOUBLE_EQ(box.high[0], 6.5);
  EXPECT_DOUBLE_EQ(box.low[1], 5);  // voxel 3 of 2 mm: 6 - 1
  EXPECT_DOUBLE_EQ(box.high[1], 11);
  EXPECT_DOUBLE_EQ(box.low[2], 2.5);
  EXPECT_DOUBLE_EQ(box.high[2], 12.5);
}

TEST(RegistrationBench, ReadsElastixEulerAndAffineTransforms) {
  TempDir dir;
  // A rotation of 0.1 rad about z and a shift, about the centre (10, 20, 30).
  std::ofstream(dir / "euler.txt") << "(Transform \"EulerTransform\")\n(NumberOfParameters 6)\n"
                                      "(TransformParameters 0 0 0.1 1.5 -2 3)  // comment\n"
                                      "(CenterOfRotationPoint 10 20 30)\n(ComputeZYX \"false\")\n";
  const LinearTransform euler = read_elastix_transform(dir / "euler.txt");
  EXPECT_TRUE(euler.rigid);
  const LinearTransform expected = rigid_motion({0, 0, 0.1 * 180 / std::acos(-1.0)}, {1.5, -2, 3}, {10, 20, 30});
  const PhysicalExtent box{{-50, -50, -50}, {50, 50, 50}};
  EXPECT_LT(mean_corner_distance(euler, expected, box), 1e-9);

  std::ofstream(dir / "affine.txt") << "(Transform \"AffineTransform\")\n"
                                       "(TransformParameters 1.1 0 0 0 1 0 0 0 0.9 1 2 3)\n"
                                       "(CenterOfRotationPoint 0 0 0)\n";
  const LinearTransform affine = read_elastix_transform(dir / "affine.txt");
  EXPECT_FALSE(affine.rigid);
  for (const double x : affine.apply({10, 10, 10})) EXPECT_NEAR(x, 12, 1e-12);

  std::ofstream(dir / "bspline.txt") << "(Transform \"BSplineTransform\")\n(CenterOfRotationPoint 0 0 0)\n";
  EXPECT_THROW(read_elastix_transform(dir / "bspline.txt"), VolumeError);
  std::ofstream(dir / "short.txt") << "(Transform \"EulerTransform\")\n(TransformParameters 1 2)\n"
                                      "(CenterOfRotationPoint 0 0 0)\n";
  EXPECT_THROW(read_elastix_transform(dir / "short.txt"), IoError);
  EXPECT_THROW(read_elastix_transform(dir / "missing.txt"), IoError);
}

TEST(RegistrationBench, AMissingElastixIsARegistrationErrorNamingBothFiles) {
  TempDir dir;
  try {
    run_elastix(dir / "no-elastix", dir / "p.txt", "a.nii.gz", "f.nii.gz", dir / "out", 1);
    FAIL() << "a missing elastix ran";
  } catch (const RegistrationError& e) {
    EXPECT_TRUE(contains(e.what(), "a.nii.gz + f.nii.gz")) << e.what();
  }
}

}  // namespace
}  // namespace efcnet
