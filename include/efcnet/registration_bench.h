// Cases for measuring registration (`efcnet bench-register`): volumes stacked from a 2D pair data
// set's slices, a known rigid motion of the functional volume's content, and elastix, the
// reference method, run on the same files. LibTorch-free.
//
// The target registration error of a method is measured against the known motion composed with
// the method's own result on the unmoved pair, so that the data set's residual misalignment
// between its anatomical and functional slices does not count.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "efcnet/volume.h"

namespace efcnet {

// One subject's slices in a pair directory laid out as AANLIB's (<pair_dir>/MRI/<subject><3-digit
// slice>.png beside <pair_dir>/<modality>/ with the same names, e.g. SPECT-MRI/SPECT/25016.png).
struct SliceStack {
  std::string modality;                             // the functional folder: "CT", "PET", "SPECT"
  std::string subject;                              // the file names' prefix
  std::vector<std::string> anatomical, functional;  // files, in slice order
};

// Each subject of `pair_dir` with its longest run of consecutive slice numbers present on both
// sides (at most `max_slices` of them, from the run's middle), longest first, then by subject.
// Throws IoError for a directory without an MRI folder and one other folder.
std::vector<SliceStack> find_slice_stacks(const std::string& pair_dir, int max_slices);

struct StackSpacing {
  double pixel_mm = 1;            // the anatomical slices' pixels
  double slice_mm = 4;            // between slices
  int functional_downsample = 2;  // the functional volume's pixels: this many anatomical ones per side
};

struct StackedPair {
  Volume anatomical;  // grey levels, LPS axes, centred on the origin
  Volume functional;  // the functional slices' luma, on a coarser grid covering the same box
};

// The stack's slices as two volumes in one physical box. Throws IoError for an unreadable slice
// and VolumeError for slices of different sizes.
StackedPair stack_slices(const SliceStack& stack, const StackSpacing& spacing);

// A rigid motion about `centre` drawn from `seed`: each rotation uniform in +-max_degrees, the
// shift in a uniform direction with a length uniform in [max_shift_mm / 4, max_shift_mm]. The
// same seed gives the same motion on every platform.
LinearTransform random_rigid_motion(uint32_t seed, double max_degrees, double max_shift_mm,
                                    const std::array<double, 3>& centre);

// The box of the voxels above `fraction` of the volume's maximum (their outer faces included): the
// head's box, whose corners the target registration error is measured at. The whole volume's
// box when none is above.
PhysicalExtent content_box(const Volume& volume, double fraction);

// ---- elastix ----

// The transform of an elastix TransformParameters file (EulerTransform or AffineTransform in 3D),
// fixed to moving points as efcnet's. Throws IoError for a missing or unparsable file,
// VolumeError for another transform.
LinearTransform read_elastix_transform(const std::string& path);

struct ElastixRun {
  LinearTransform transform;
  double seconds = 0;  // wall clock of the elastix process (reading, registering, writing)
};

// Runs `executable` -f fixed -m moving -p parameters -out work_dir -threads threads (its console
// output into work_dir/console.txt) and reads the transform it wrote. Throws RegistrationError
// naming both files for a failed run (with elastix's first error line where its log has one).
ElastixRun run_elastix(const std::string& executable, const std::string& parameters, const std::string& fixed,
                       const std::string& moving, const std::string& work_dir, int threads);

// ---- the benchmark (`efcnet bench-register`) ----

struct RegistrationBenchmarkOptions {
  std::string data;  // the pair data set: folders such as SPECT-MRI/{MRI,SPECT} (find_slice_stacks)
  std::vector<std::string> pairs{"CT-MRI", "PET-MRI", "SPECT-MRI"};  // its pair folders
  int cases_per_pair = 2;  // subjects per pair folder, those with the longest runs of slices
  int max_slices = 24;     // consecutive slices per volume at most
  double slice_mm = 4;
  int functional_downsample = 2;
  double max_degrees = 10, max_shift_mm = 20;  // random_rigid_motion's
  uint32_t seed = 1;                           // case n's motion: seed + n
  int threads = 2;                             // of both methods
  std::string elastix = "elastix";             // the executable, or "none": efcnet alone
  std::string elastix_parameters = "scripts/elastix-rigid.txt";
  std::string qc_dir;  // each case's make_registration_qc picture as <case>.png; "" none
};

// One method on one case.
struct RegistrationCaseResult {
  double tre_mm = 0, seconds = 0;  // of the moved pair
  double unmoved_mm = 0;           // the unmoved pair's result away from the identity (the data set's own misalignment)
  std::string error;               // the method failed: why
};

// A case done, for a caller's table.
struct RegistrationCaseReport {
  std::string name;      // <modality>-<subject>
  double motion_mm = 0;  // the motion's own error (before registration)
  RegistrationCaseResult efcnet;
  std::optional<RegistrationCaseResult> elastix;  // none without elastix
};

// Every case of the options' pair folders (all read before any work): efcnet's rigid
// registration (estimate_transform) and elastix on the same files, their errors at the head box's
// corners against the known motion, and their times; `on_case` after each. The report as JSON
// text. Throws Error for a missing elastix parameter file or an unreadable pair folder.
std::string benchmark_registration(const RegistrationBenchmarkOptions& options,
                                   const std::function<void(const RegistrationCaseReport&)>& on_case = {});

}  // namespace efcnet
