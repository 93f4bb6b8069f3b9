// Registration of a functional volume (SPECT, PET) to an anatomical one (MRI, CT) acquired
// apart: their headers place each in its own scanner's space, so physical space alone fuses them
// misaligned. LibTorch-free; ITK's v4 registration framework behind it (no ITK type here).
//
//   estimate_transform: Mattes mutual information, a rigid (versor) transform,
//     multi-resolution (shrink and smooth), started from the images' centres, fixed sampling
//     -> a LinearTransform, anatomical (fixed) to functional (moving) points
//   read_transform / write_transform_atomic: ITK's transform files (.tfm, .txt, .mat, .h5), which
//     ITK, SimpleITK, 3D Slicer and ANTs read
//   VolumeFusionOptions::functional_transform (volume.h): the fusion resamples through it
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <opencv2/core.hpp>

#include "efcnet/image.h"
#include "efcnet/volume.h"

namespace efcnet {

// Registration could not give a transform to trust: an input without content, a metric that could
// not be evaluated, no convergence, a result worse than the start. One line naming both files.
class RegistrationError : public VolumeError {
 public:
  using VolumeError::VolumeError;
};

enum class RegistrationKind { none, rigid, affine };
// "none", "rigid", "affine"; throws OptionError otherwise.
RegistrationKind parse_registration_kind(const std::string& name);
const char* registration_kind_name(RegistrationKind kind);

// Where the optimisation starts: the header's placement or the images' centres matched, whichever
// the metric prefers (`geometry`: the centres of the grids; `moments`: the centres of mass).
enum class RegistrationStart { geometry, moments };

struct RegistrationOptions {
  RegistrationKind kind = RegistrationKind::rigid;
  RegistrationStart start = RegistrationStart::moments;
  int levels = 3;              // resolutions, each twice as fine as the one before (the last: the voxels)
  int iterations = 300;        // at most per level; the last level must converge before them
  double sampling_rate = 0.2;  // of the (shrunk) anatomical voxels per level, on a jittered regular grid
  int max_samples = 40000;     // per level, whatever the rate gives
  int histogram_bins = 32;
  uint32_t seed = 20240;  // of the sampling's jitter
  // Work units of the smoothing and shrinking (>= 1). The metric itself runs on one, so that the
  // result depends on the inputs and the options only: a rerun gives the same bytes.
  int threads = 1;
};

// Reported after every iteration.
struct RegistrationProgress {
  int level = 0, levels = 0;  // level counts from 0 (coarsest)
  int iteration = 0;          // within the level
  double metric = 0;
};
using RegistrationObserver = std::function<void(const RegistrationProgress&)>;

struct RegistrationResult {
  LinearTransform transform;  // anatomical (fixed) points to functional (moving) points
  // Mattes mutual information (negative: lower is better) on one fixed set of full-resolution
  // anatomical samples: at the headers' placement (or, where that leaves too little overlap, at
  // the centred start) and at the result.
  double metric_before = 0, metric_after = 0;
  int iterations = 0;  // all levels
};

// Estimates the transform that aligns `moving` (the functional volume, one frame) with `fixed`
// (the anatomical one). options.kind must be rigid (affine is refused with OptionError for now). Throws
// RegistrationError naming both files for an input without content (all zero or constant), a metric that cannot be
// evaluated (no overlap), a last level that stops on its iteration limit, or a result whose
// metric is worse than before; OptionError for options out of range.
RegistrationResult estimate_transform(const Volume& fixed, const Volume& moving, const RegistrationOptions& options,
                                      const std::string& fixed_name, const std::string& moving_name,
                                      const RegistrationObserver& observer = {});

// The metric of estimate_transform (same samples) at `fixed_to_moving`.
double registration_metric(const Volume& fixed, const Volume& moving, const LinearTransform& fixed_to_moving,
                           const RegistrationOptions& options, const std::string& fixed_name,
                           const std::string& moving_name);

// ---- transforms ----

// A rigid motion about `centre`: rotations about x, then y, then z (degrees), then `shift` (mm).
LinearTransform rigid_motion(const std::array<double, 3>& degrees, const std::array<double, 3>& shift,
                             const std::array<double, 3>& centre);
// p -> outer.apply(inner.apply(p)); rigid when both are.
LinearTransform compose(const LinearTransform& outer, const LinearTransform& inner);
// The mean distance (mm) between a.apply(p) and b.apply(p) over the 8 corners of `box`: the
// target registration error of a against b on that box.
double mean_corner_distance(const LinearTransform& a, const LinearTransform& b, const PhysicalExtent& box);

// Reads one linear 3D transform (ITK's AffineTransform, VersorRigid3DTransform, Euler3DTransform,
// Similarity3DTransform, ... any MatrixOffsetTransformBase) from an ITK transform file: .tfm or
// .txt (text), .mat (MATLAB, as ANTs writes), .h5 (HDF5, as Slicer writes). Throws IoError for a
// missing file or one that is not a transform file, VolumeError for a non-linear transform, a 2D
// one, or a file holding several.
LinearTransform read_transform(const std::string& path);

// Writes the transform as ITK's VersorRigid3DTransform_double_3_3 (rigid) or
// AffineTransform_double_3_3, in the format the extension names (.tfm, .txt, .mat, .h5),
// atomically. Throws IoError for another extension or a write failure.
void write_transform_atomic(const std::string& path, const LinearTransform& transform,
                            WriteMode mode = WriteMode::replace);

// Whether the name ends in one of the transform file extensions above (any letter case).
bool has_transform_extension(const std::string& path);

// A picture to judge a registration by eye: for the middle slice of each plane (axial, coronal,
// sagittal; the anatomical grid), a checkerboard of the anatomical slice and the functional one
// resampled through `before` (left) and through `after` (right), both grey, each window robust.
// BGR, `tile` pixels per slice.
cv::Mat make_registration_qc(const Volume& fixed, const Volume& moving, const LinearTransform& before,
                             const LinearTransform& after, int tile = 256);

}  // namespace efcnet
