// Volumes: NIfTI files and DICOM series in, a fused NIfTI volume out (LibTorch-free; ITK behind it).
//
//   read_volume (.nii, .nii.gz, a DICOM series directory, a DICOM file; float, rescale applied)
//     -> resample_onto the anatomical grid (physical space, linear, 0 outside)
//     -> window_to_bytes (one window per volume) -> colourise (DICOM PS3.6 Annex B palettes)
//     -> slices in one canonical patient orientation -> any 2D fusion (Fuser::fuse_pair)
//     -> the same voxels of an output on the anatomical grid -> write_volume_atomic (.nii, .nii.gz)
//
// Geometry is ITK's physical space: millimetres in LPS (x to the patient's left, y posterior,
// z superior), whatever the file stores (NIfTI's RAS affine is converted by the reader). No ITK
// type appears in this header, so programs that embed the 2D API need no ITK include flags.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "efcnet/error.h"
#include "efcnet/image.h"

namespace efcnet {

// A volume that cannot be used as given: a 4D file without a frame choice, extents that do not
// overlap, a directory with several DICOM series, a 2D image where a volume is needed. File
// problems (missing, truncated, corrupt) are IoError. Messages are one line naming the file.
class VolumeError : public Error {
 public:
  using Error::Error;
};

// Where the voxels are: voxel (i, j, k) is at origin + direction * diag(spacing) * (i, j, k) mm.
struct VolumeGeometry {
  std::array<int64_t, 3> size{0, 0, 0};                        // voxels along i (fastest), j, k
  std::array<double, 3> spacing{1, 1, 1};                      // mm
  std::array<double, 3> origin{0, 0, 0};                       // centre of voxel (0, 0, 0), mm, LPS
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};  // row-major 3x3; column c: voxel axis c in LPS

  int64_t voxel_count() const { return size[0] * size[1] * size[2]; }
  std::array<double, 3> physical_point(double i, double j, double k) const;
  // "256x256x64 voxels of 0.9x0.9x2.5 mm", for messages.
  std::string text() const;
};

// The most values (voxels x frames x components) a volume may hold: each extent and slice counts
// fit an int, and 8 GiB as float. A header announcing more is refused before anything is read.
inline constexpr int64_t kMaxVolumeValues = (int64_t{1} << 31) - 1;

// Empty for a geometry the library can use; otherwise what is wrong, in a few words: an extent
// below 1 or more voxels than kMaxVolumeValues, a spacing that is not finite and positive, an
// origin or direction that is not finite, or a singular direction (an axis of zero length, or
// two along one line). Every reader refuses such a header before reading voxels.
std::string geometry_problem(const VolumeGeometry& geometry);

// Shape, spacing, origin and direction equal within `tolerance` (mm, and direction cosines).
bool same_geometry(const VolumeGeometry& a, const VolumeGeometry& b, double tolerance = 1e-6);

// The axis-aligned box (LPS, mm) that the voxels cover, their outer faces included.
struct PhysicalExtent {
  std::array<double, 3> low{}, high{};
  std::string text() const;  // "x -120.0..120.0, y -110.0..130.0, z -50.0..110.0 mm (LPS)"
};
PhysicalExtent physical_extent(const VolumeGeometry& geometry);

// A scalar volume in the file's own units (NIfTI scl_slope/scl_inter and DICOM rescale applied).
struct Volume {
  VolumeGeometry geometry;
  std::vector<float> voxels;  // i fastest, then j, then k
};

// 8-bit voxels: 1 channel (grey) or 3 (B, G, R per voxel, as OpenCV orders colour).
struct ByteVolume {
  VolumeGeometry geometry;
  int channels = 1;
  std::vector<uint8_t> voxels;  // channels per voxel, i fastest
};

// ---- reading ----

// Which frame of a 4D volume to use: none given (a 4D input is then refused), one, or the mean.
struct FrameChoice {
  enum class Kind { none, index, mean } kind = Kind::none;
  int index = 0;
};
// "N" (0-based) or "mean"; throws OptionError otherwise.
FrameChoice parse_frame(const std::string& text);

// How a volume is read.
struct VolumeReadOptions {
  FrameChoice frame;  // which frame of a 4D input
  // A DICOM series with a slice missing or unevenly spaced slices: resampled along its stack onto
  // an even grid at its spacing (the median gap between neighbours), linearly from the slices'
  // true positions, instead of refused. Duplicated positions and tilted slices are refused anyway.
  bool allow_uneven_slices = false;
  // How the caller's user names these fields (error.h): messages suggesting frame or
  // allow_uneven_slices name them so.
  OptionNamer option_name{};
};

// What a file says about itself, read from its header only (nothing is decoded).
struct VolumeInfo {
  VolumeGeometry geometry;  // of the first three dimensions
  int dimensions = 3;       // 2 (one slice), 3 or 4
  int frames = 1;           // the fourth dimension's length
  int components = 1;       // 1 scalar, 3 RGB (a fused volume)
};

// Whether `path` names a volume rather than a 2D image: .nii, .nii.gz (any letter case), a
// directory, or a file with DICOM's "DICM" marker at byte 128.
bool is_volume_path(const std::string& path);

// Whether `path` is a regular file with DICOM's "DICM" marker at byte 128 (a FIFO or device is
// not opened).
bool is_dicom_file(const std::string& path);

// The header of a NIfTI file, of a DICOM series directory or of a DICOM file. Throws IoError for
// a missing or unreadable file, VolumeError for a directory with no DICOM series or several (each
// named with its UID and description), and VolumeError for a header whose geometry_problem is not
// empty or that announces more than kMaxVolumeValues values. A series is checked file by file:
// one 2D slice each, one orientation, one pixel spacing, one size, distinct positions, evenly
// spaced within 1 % with no slice missing (unless options.allow_uneven_slices; its geometry is
// then the even grid it will be read onto); a failure is a VolumeError naming the directory, the
// files and the positions concerned.
VolumeInfo read_volume_info(const std::string& path, const VolumeReadOptions& options = {});

// Reads a scalar volume as float in the file's units. A 4D file needs options.frame (VolumeError
// naming the frame count otherwise); a 2D file reads as one slice. DICOM series are sorted by
// position along the slice normal (not by file name). Throws IoError for truncated or corrupt
// files, and refuses what read_volume_info refuses before allocating anything.
Volume read_volume(const std::string& path, const VolumeReadOptions& options = {});

// Reads an 8-bit volume as written by write_volume_atomic (grey or RGB24 NIfTI): a fused volume.
ByteVolume read_byte_volume(const std::string& path);

// ---- geometry ----

// `moving` resampled onto `grid` in physical space (ITK's ResampleImageFilter, linear
// interpolation, 0 outside `moving`). Throws VolumeError naming both extents in mm when the two
// do not overlap; `moving_name` / `grid_name` are the files, for that message.
Volume resample_onto(const Volume& moving, const VolumeGeometry& grid, const std::string& moving_name,
                     const std::string& grid_name);

// A linear map of physical space (LPS, mm), as ITK's MatrixOffsetTransformBase stores one:
// p -> matrix * (p - centre) + centre + translation. Used fixed (anatomical) to moving
// (functional): the functional value shown at anatomical point p is the one at apply(p).
struct LinearTransform {
  std::array<double, 9> matrix{1, 0, 0, 0, 1, 0, 0, 0, 1};  // row-major
  std::array<double, 3> translation{0, 0, 0};               // mm
  std::array<double, 3> centre{0, 0, 0};                    // of rotation, mm
  bool rigid = true;                                        // matrix is a rotation (else affine)

  std::array<double, 3> apply(const std::array<double, 3>& point) const;
};

// `moving` resampled onto `grid` through `fixed_to_moving` (grid point p takes moving's value at
// fixed_to_moving.apply(p)); otherwise as resample_onto, whose overlap check it makes on the
// transformed grid.
Volume resample_through(const Volume& moving, const LinearTransform& fixed_to_moving, const VolumeGeometry& grid,
                        const std::string& moving_name, const std::string& grid_name);

// ---- intensities ----

// File units mapped to 0..255: low -> 0, high -> 255, linear, clamped, rounded.
struct Window {
  double low = 0, high = 1;
};
// The 0.5 and 99.5 percentiles of the volume's non-zero finite voxels ({0, 1} without any).
Window robust_window(const Volume& volume);
// "LO:HI" with LO < HI; throws OptionError otherwise.
Window parse_window(const std::string& text);
// One byte per voxel (NaN -> 0).
ByteVolume window_to_bytes(const Volume& volume, const Window& window);

// ---- colour ----

// DICOM PS3.6 Annex B well-known colour palettes (256 entries each), and grey.
enum class Colormap { grey, hot_iron, pet, hot_metal_blue, pet_20_step };
inline constexpr Colormap kDefaultFunctionalColormap = Colormap::hot_iron;  // README: "Volumes"
// "grey", "hot-iron", "pet", "hot-metal-blue", "pet-20-step"; parse throws OptionError.
Colormap parse_colormap(const std::string& name);
const char* colormap_name(Colormap colormap);
// Entry v: {R, G, B} of the palette's 256-entry table (grey: {v, v, v}).
const std::array<std::array<uint8_t, 3>, 256>& palette_rgb(Colormap colormap);
// A 1-channel volume through the palette: 3 channels (BGR) for a palette, itself for grey.
ByteVolume colourise(const ByteVolume& grey, Colormap colormap);

// ---- slices ----

enum class Plane { axial, coronal, sagittal };
Plane parse_plane(const std::string& name);  // "axial", "coronal", "sagittal"; else OptionError
const char* plane_name(Plane plane);

// How a volume's voxels are presented as 2D slices in one canonical patient orientation,
// whatever their order on disk: the voxel axis closest to the plane's normal (S-I for axial,
// A-P for coronal, L-R for sagittal) indexes the slices, from inferior / anterior / right; the
// two others become rows and columns in the radiological display convention (axial: columns run
// from the patient's right to left, rows from anterior to posterior; coronal: columns right to
// left, rows superior to inferior; sagittal: columns anterior to posterior, rows superior to
// inferior). A flip reverses a voxel axis. The same anatomy stored in any voxel order gives the
// same slices.
struct SliceLayout {
  int slice_axis = 2, row_axis = 1, column_axis = 0;  // voxel axes (0 = i)
  bool slice_flip = false, row_flip = false, column_flip = false;
  int slices = 0, rows = 0, columns = 0;
};
// Throws VolumeError for a direction that is not finite or is singular.
SliceLayout slice_layout(const VolumeGeometry& geometry, Plane plane);
// Throws VolumeError (naming `name`, and the plane option as `option_name` names it) when the
// plane's slices are smaller than the fusion's 11x11.
void check_slice_size(const VolumeGeometry& geometry, Plane plane, const std::string& name,
                      const OptionNamer& option_name = {});

// Slice k (0 <= k < layout.slices) as a rows x columns CV_8UC1 / CV_8UC3 image (a copy).
cv::Mat extract_slice(const ByteVolume& volume, const SliceLayout& layout, int k);
// Writes `slice` (as extract_slice returns it) back into the same voxels.
void insert_slice(ByteVolume& volume, const SliceLayout& layout, int k, const cv::Mat& slice);

// ---- fusion of volumes ----

struct VolumeFusionOptions {
  VolumeReadOptions read;                   // both inputs: a 4D input's frame, uneven DICOM series
  std::optional<Window> anatomical_window;  // default: robust_window
  std::optional<Window> functional_window;
  Colormap colormap = kDefaultFunctionalColormap;  // of the functional volume
  Plane plane = Plane::axial;
  // Anatomical to functional points (efcnet/registration.h estimates or reads one); none: the
  // headers' physical space as it is.
  std::optional<LinearTransform> functional_transform;
};

// VolumeFusionOptions as text, as a command line gives them ("": not given, the default).
struct VolumeOptionTexts {
  std::string frame, anatomical_window, functional_window, colormap, plane;
  bool allow_uneven_slices = false;
  bool any() const {
    return !frame.empty() || !anatomical_window.empty() || !functional_window.empty() || !colormap.empty() ||
           !plane.empty() || allow_uneven_slices;
  }
};

// The texts parsed (parse_frame, parse_window, parse_colormap, parse_plane); `option_name` names
// the fields ("frame", "anatomical_window", ...) in an OptionError, and goes into
// VolumeReadOptions::option_name.
VolumeFusionOptions parse_volume_options(const VolumeOptionTexts& texts, const OptionNamer& option_name = {});

// Both volumes as the 2D fusion sees them, on the anatomical grid.
struct PreparedVolumes {
  ByteVolume anatomical;  // 1 channel
  ByteVolume functional;  // resampled, windowed, coloured (3 channels) or grey (1)
  Window anatomical_window, functional_window;
  SliceLayout layout;
};

// Resamples the functional volume onto the anatomical grid (through options.functional_transform
// when given), windows both and colours the functional one. Names are the files, for messages.
PreparedVolumes prepare_volumes(const Volume& anatomical, const Volume& functional, const VolumeFusionOptions& options,
                                const std::string& anatomical_name, const std::string& functional_name);

// Whether slice k has any non-zero voxel in either input: empty slices are not fused.
bool slice_has_content(const PreparedVolumes& volumes, int k);

// One 2D fusion: anatomical CV_8UC1, functional CV_8UC3 (BGR) or CV_8UC1 -> fused, as
// Fuser::fuse_pair.
using SliceFusion = std::function<cv::Mat(const cv::Mat& anatomical, const cv::Mat& functional)>;

struct FusedVolume {
  ByteVolume fused;      // the anatomical geometry, the functional volume's channels
  int fused_slices = 0;  // sent through `fuse`
  int empty_slices = 0;  // both inputs empty: left at 0
};

// Called after each slice with the slices done so far and their total.
using SliceProgress = std::function<void(int done, int total)>;

// Every slice with content through `fuse`, one at a time, in slice order; `progress` (if given)
// is called once per slice.
FusedVolume fuse_prepared(const PreparedVolumes& volumes, const SliceFusion& fuse, const SliceProgress& progress = {});

// ---- writing ----

// Writes a grey (uint8) or colour (RGB24) NIfTI, .nii or .nii.gz by the name, with the volume's
// geometry (qform and sform). ITK writes a hidden temporary beside the target, which is then
// written to `path` with write_file_atomic (image.h): nothing partial is ever at `path`, and the
// temporary is removed on every path. Throws IoError for another extension or a write failure.
void write_volume_atomic(const std::string& path, const ByteVolume& volume, WriteMode mode = WriteMode::replace);

// Writes a scalar float32 NIfTI the same way (the phantom).
void write_volume_atomic(const std::string& path, const Volume& volume, WriteMode mode = WriteMode::replace);

// Whether the name ends in .nii or .nii.gz (any letter case).
bool has_volume_extension(const std::string& path);

// The name without .nii / .nii.gz (or a directory's name): what directory mode pairs by.
std::string volume_stem(const std::string& path);

// ---- pictures ----

// One grid picture of `columns` evenly spaced slices with content: a row of anatomical slices,
// one of functional slices (coloured), one of fused slices; BGR, each tile `tile` pixels high.
cv::Mat make_montage(const PreparedVolumes& volumes, const ByteVolume& fused, int columns = 8, int tile = 160);

// ---- batches ----

// Volumes of two directories paired by name (volume_stem): .nii / .nii.gz files and DICOM series
// subdirectories; the ImagePair / Pairing of pair_by_name (image.h), with the same rules (hidden
// entries ignored, two volumes with one stem in a directory are both ambiguous).
Pairing pair_volumes_by_name(const std::string& anatomical_dir, const std::string& functional_dir);

// Whether a directory holds volumes rather than 2D images: any .nii/.nii.gz file, or any
// subdirectory holding a DICOM file (is_dicom_file), hidden ones aside. A directory of images
// with other subdirectories (originals, thumbnails) is not one of volumes.
bool directory_holds_volumes(const std::string& dir);

// Whether a pair of paths names volumes (is_volume_path) rather than 2D images, as `efcnet fuse`
// chooses its mode; an empty path does not count. Throws VolumeError for a volume with an image
// (a directory given with an image counts as an image pair gone wrong: false).
bool paths_name_volumes(const std::string& anatomical, const std::string& functional);

// The same for two directories (directory_holds_volumes). Throws VolumeError when only one holds
// volumes.
bool directories_hold_volumes(const std::string& anatomical_dir, const std::string& functional_dir);

// ---- process settings ----

// ITK prints its warnings (several lines each, with source locations) on stderr from any thread;
// this switches that off or on for the whole process (itk::Object's global warning display). The
// library never calls it: the efcnet commands do, so that their errors stay one line.
void show_volume_library_warnings(bool show);

// ---- synthetic data (never patient data) ----

struct VolumePhantom {
  Volume anatomical;  // MRI-like, on a fine grid
  Volume functional;  // SPECT/PET-like uptake on a coarser grid, another origin and voxel orientation
};
// An analytic head phantom sampled on two grids: anatomical `size` x `size` x `slices`,
// functional about half the resolution, its voxel axes in another order and direction.
VolumePhantom make_volume_phantom(int size = 128, int slices = 32);

}  // namespace efcnet
