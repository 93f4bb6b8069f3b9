// Registration of a functional volume to an anatomical one (efcnet/registration.h) and its place
// in `efcnet fuse` (--register, --save-transform, --transform), on small phantoms with a known motion.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "efcnet/registration.h"
#include "efcnet/volume.h"
#include "support/command.h"
#include "support/temp_dir.h"
#include "volume/volume_files.h"

namespace efcnet {
namespace {

using efcnet::testing::contains;
using efcnet::testing::list_dir;
using efcnet::testing::quoted;
using efcnet::testing::TempDir;

// An anatomical phantom and a second contrast of it (the intensities remapped, not monotonically,
// as between MRI and CT or SPECT: mutual information's case), aligned by construction, and that
// second volume's content moved by `motion` while its header stays put: moved(p) = other(motion(p)).
struct MovedPair {
  Volume anatomical, functional, moved;
  LinearTransform motion;
};

const MovedPair& moved_phantom() {
  static const MovedPair pair = [] {
    MovedPair p;
    p.anatomical = make_volume_phantom(96, 24).anatomical;  // 2.3 x 2.3 x 6.25 mm voxels
    p.functional = p.anatomical;
    for (float& v : p.functional.voxels) v = v > 50 ? 1000 - std::abs(v - 500) : 0;
    p.motion = rigid_motion({4, -3, 6}, {7, -5, 4}, {0, 0, 20});
    p.moved = resample_through(p.functional, p.motion, p.functional.geometry, "functional", "functional");
    return p;
  }();
  return pair;
}

RegistrationOptions test_options() {
  RegistrationOptions options;
  options.threads = 1;
  return options;
}

// The head's box in the anatomical volume: the TRE's corners.
PhysicalExtent head_box() { return physical_extent(moved_phantom().anatomical.geometry); }

TEST(Registration, RecoversAKnownRigidMotionOfThePhantom) {
  const MovedPair& p = moved_phantom();
  const RegistrationOptions options = test_options();
  const RegistrationResult unmoved = estimate_transform(p.anatomical, p.functional, options, "a", "f");
  int reports = 0;
  const RegistrationResult moved =
      estimate_transform(p.anatomical, p.moved, options, "a", "m", [&](const RegistrationProgress&) { ++reports; });
  EXPECT_EQ(reports, moved.iterations);
  EXPECT_GT(moved.iterations, 0);
  EXPECT_LT(moved.metric_after, moved.metric_before);
  EXPECT_TRUE(moved.transform.rigid);
  // Before registration the motion itself is the error; after it, under half a slice (6.25 mm).
  const double before = mean_corner_distance(p.motion, LinearTransform{}, head_box());
  const double after = mean_corner_distance(compose(p.motion, moved.transform), unmoved.transform, head_box());
  EXPECT_GT(before, 10.0);
  EXPECT_LT(after, 3.0) << "TRE before " << before;
  // The unmoved pair is aligned by construction.
  EXPECT_LT(mean_corner_distance(unmoved.transform, LinearTransform{}, head_box()), 1.5);
}

TEST(Registration, ARerunGivesTheSameBytes) {
  const MovedPair& p = moved_phantom();
  const RegistrationResult a = estimate_transform(p.anatomical, p.moved, test_options(), "a", "m");
  const RegistrationResult b = estimate_transform(p.anatomical, p.moved, test_options(), "a", "m");
  EXPECT_EQ(std::memcmp(a.transform.matrix.data(), b.transform.matrix.data(), sizeof a.transform.matrix), 0);
  EXPECT_EQ(std::memcmp(a.transform.translation.data(), b.transform.translation.data(), 3 * sizeof(double)), 0);
  EXPECT_EQ(a.metric_after, b.metric_after);
}

TEST(Registration, AffineIsNotOfferedYet) {
  const MovedPair& p = moved_phantom();
  RegistrationOptions options = test_options();
  options.kind = RegistrationKind::affine;
  EXPECT_THROW(estimate_transform(p.anatomical, p.moved, options, "a", "m"), OptionError);
}

TEST(Registration, AnAllZeroVolumeIsRefusedByName) {
  const MovedPair& p = moved_phantom();
  Volume zero = p.anatomical;
  std::fill(zero.voxels.begin(), zero.voxels.end(), 0.0f);
  try {
    estimate_transform(zero, p.moved, test_options(), "/data/zero.nii.gz", "/data/spect.nii.gz");
    FAIL() << "an all-zero anatomical volume was registered";
  } catch (const RegistrationError& e) {
    EXPECT_TRUE(contains(e.what(), "/data/zero.nii.gz")) << e.what();
    EXPECT_TRUE(contains(e.what(), "all zero")) << e.what();
  }
  EXPECT_THROW(estimate_transform(p.anatomical, zero, test_options(), "a", "zero"), RegistrationError);
}

TEST(Registration, ALastLevelStoppedByItsIterationLimitIsRefused) {
  const MovedPair& p = moved_phantom();
  RegistrationOptions options = test_options();
  options.iterations = 1;
  try {
    estimate_transform(p.anatomical, p.moved, options, "a.nii", "m.nii");
    FAIL() << "one iteration per level converged";
  } catch (const RegistrationError& e) {
    EXPECT_TRUE(contains(e.what(), "a.nii + m.nii")) << e.what();
    EXPECT_TRUE(contains(e.what(), "did not converge")) << e.what();
  }
}

TEST(Registration, TransformFilesRoundTripInEveryFormat) {
  TempDir dir;
  const LinearTransform rigid = rigid_motion({3, 5, -8}, {10, -4, 2.5}, {1, 2, 3});
  LinearTransform affine = rigid;
  affine.matrix[0] *= 1.1;
  affine.matrix[4] *= 0.95;
  affine.rigid = false;
  for (const std::string name : {"t.tfm", "t.txt", "t.mat", "t.h5"}) {
    for (const LinearTransform& t : {rigid, affine}) {
      const std::string path = dir / name;
      write_transform_atomic(path, t);
      const LinearTransform back = read_transform(path);
      EXPECT_EQ(back.rigid, t.rigid) << name;
      EXPECT_LT(mean_corner_distance(back, t, head_box()), 1e-6) << name;
    }
  }
  write_transform_atomic(dir / "rigid.tfm", rigid);
  EXPECT_TRUE(contains(testing::slurp(dir / "rigid.tfm"), "Transform: VersorRigid3DTransform_double_3_3"));
  write_transform_atomic(dir / "affine.tfm", affine);
  EXPECT_TRUE(contains(testing::slurp(dir / "affine.tfm"), "Transform: AffineTransform_double_3_3"));
  EXPECT_THROW(write_transform_atomic(dir / "affine.tfm", affine, WriteMode::no_clobber), IoError);
  EXPECT_THROW(write_transform_atomic(dir / "t.nii", affine), IoError);
}

TEST(Registration, ATransformFileThatIsNotOneOrIsNotLinearIsRefusedByName) {
  TempDir dir;
  std::ofstream(dir / "notes.tfm") << "these are notes, not a transform\n";
  try {
    read_transform(dir / "notes.tfm");
    FAIL() << "a text file read as a transform";
  } catch (const IoError& e) {
    EXPECT_TRUE(contains(e.what(), dir / "notes.tfm")) << e.what();
  }
  // A B-spline (non-linear) transform as ITK writes it: a 4x4x4 grid of zero displacements.
  {
    std::ofstream out(dir / "bspline.tfm");
    out << "#Insight Transform File V1.0\n#Transform 0\nTransform: BSplineTransform_double_3_3\nParameters:";
    for (int i = 0; i < 3 * 64; ++i) out << " 0";
    out << "\nFixedParameters: 4 4 4 -10 -10 -10 10 10 10 1 0 0 0 1 0 0 0 1\n";
  }
  try {
    read_transform(dir / "bspline.tfm");
    FAIL() << "a B-spline transform read as a linear one";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), dir / "bspline.tfm")) << e.what();
    EXPECT_TRUE(contains(e.what(), "BSplineTransform")) << e.what();
    EXPECT_TRUE(contains(e.what(), "not a linear")) << e.what();
  }
  EXPECT_THROW(read_transform(dir / "missing.tfm"), IoError);
}

TEST(Registration, ResamplingThroughTheIdentityIsResamplingInPhysicalSpace) {
  const MovedPair& p = moved_phantom();
  const Volume plain = resample_onto(p.functional, p.anatomical.geometry, "f", "a");
  const Volume identity = resample_through(p.functional, LinearTransform{}, p.anatomical.geometry, "f", "a");
  ASSERT_EQ(plain.voxels.size(), identity.voxels.size());
  for (std::size_t v = 0; v < plain.voxels.size(); ++v) ASSERT_NEAR(plain.voxels[v], identity.voxels[v], 1e-3) << v;
  LinearTransform far;
  far.translation = {1000, 0, 0};
  EXPECT_THROW(resample_through(p.functional, far, p.anatomical.geometry, "f", "a"), VolumeError);
}

TEST(Registration, PrepareVolumesResamplesThroughTheFunctionalTransform) {
  const MovedPair& p = moved_phantom();
  VolumeFusionOptions options;
  options.functional_window = Window{0, 1000};
  options.colormap = Colormap::grey;
  options.functional_transform = p.motion;
  const PreparedVolumes prepared = prepare_volumes(p.anatomical, p.functional, options, "a", "f");
  const ByteVolume expected = window_to_bytes(resample_through(p.functional, p.motion, p.anatomical.geometry, "f", "a"),
                                              *options.functional_window);
  EXPECT_EQ(prepared.functional.voxels, expected.voxels);
  options.functional_transform.reset();
  EXPECT_NE(prepare_volumes(p.anatomical, p.functional, options, "a", "f").functional.voxels, expected.voxels);
}

}  // namespace
}  // namespace efcnet
