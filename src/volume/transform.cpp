// Linear transforms of physical space: applying them, resampling through them, ITK's transform
// files (registration.h, volume.h).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <string>

#include <itkCompositeTransform.h>
#include <itkHDF5TransformIOFactory.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkMatlabTransformIOFactory.h>
#include <itkResampleImageFilter.h>
#include <itkTransformFileReader.h>
#include <itkTransformFileWriter.h>
#include <itkTxtTransformIOFactory.h>
#include <itkVersorRigid3DTransform.h>

#include "efcnet/files.h"
#include "efcnet/registration.h"
#include "volume/itk_convert.h"
#include "volume/itk_transform.h"

namespace efcnet {
namespace detail {

LinearTransform linear_transform_of(const LinearItkTransform& transform, bool rigid) {
  LinearTransform t;
  const auto& m = transform.GetMatrix();
  for (unsigned r = 0; r < 3; ++r) {
    for (unsigned c = 0; c < 3; ++c) t.matrix[r * 3 + c] = m(r, c);
    t.centre[r] = transform.GetCenter()[r];
    t.translation[r] = transform.GetTranslation()[r];
  }
  t.rigid = rigid;
  return t;
}

itk::AffineTransform<double, 3>::Pointer itk_affine(const LinearTransform& t) {
  auto affine = itk::AffineTransform<double, 3>::New();
  itk::AffineTransform<double, 3>::MatrixType m;
  itk::AffineTransform<double, 3>::CenterType centre;
  itk::AffineTransform<double, 3>::OutputVectorType translation;
  for (unsigned r = 0; r < 3; ++r) {
    for (unsigned c = 0; c < 3; ++c) m(r, c) = t.matrix[r * 3 + c];
    centre[r] = t.centre[r];
    translation[r] = t.translation[r];
  }
  affine->SetCenter(centre);
  affine->SetMatrix(m);
  affine->SetTranslation(translation);
  return affine;
}

}  // namespace detail

namespace {

namespace fs = std::filesystem;

// The transform IO factories are registered here, not through ITK_USE_FILE (see CMakeLists.txt).
void register_transform_io() {
  static std::once_flag once;
  std::call_once(once, [] {
    itk::TxtTransformIOFactory::RegisterOneFactory();
    itk::MatlabTransformIOFactory::RegisterOneFactory();
    itk::HDF5TransformIOFactory::RegisterOneFactory();
  });
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

std::string transform_extension(const std::string& path) {
  const std::string name = lower(fs::path(path).filename().string());
  for (const char* ext : {".tfm", ".txt", ".mat", ".h5"}) {
    const std::string e = ext;
    if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) return e;
  }
  return "";
}

bool is_rotation(const std::array<double, 9>& m) {
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      double dot = 0;
      for (int k = 0; k < 3; ++k) dot += m[r * 3 + k] * m[c * 3 + k];
      if (std::abs(dot - (r == c ? 1.0 : 0.0)) > 1e-6) return false;
    }
  }
  const double det =
      m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
  return det > 0;
}

// Removes the temporary on every path.
struct ScratchFile {
  std::string path;
  ~ScratchFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

std::string scratch_name(const std::string& path, const std::string& extension) {
  static std::atomic<unsigned> counter{0};
  const fs::path target(path);
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  return dir + "/." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1)) + extension;
}

}  // namespace

std::array<double, 3> LinearTransform::apply(const std::array<double, 3>& p) const {
  std::array<double, 3> out{};
  for (int r = 0; r < 3; ++r) {
    out[r] = centre[r] + translation[r];
    for (int c = 0; c < 3; ++c) out[r] += matrix[r * 3 + c] * (p[c] - centre[c]);
  }
  return out;
}

LinearTransform rigid_motion(const std::array<double, 3>& degrees, const std::array<double, 3>& shift,
                             const std::array<double, 3>& centre) {
  const double pi = std::acos(-1.0);
  const double ax = degrees[0] * pi / 180, ay = degrees[1] * pi / 180, az = degrees[2] * pi / 180;
  const std::array<double, 9> rx{1, 0, 0, 0, std::cos(ax), -std::sin(ax), 0, std::sin(ax), std::cos(ax)};
  const std::array<double, 9> ry{std::cos(ay), 0, std::sin(ay), 0, 1, 0, -std::sin(ay), 0, std::cos(ay)};
  const std::array<double, 9> rz{std::cos(az), -std::sin(az), 0, std::sin(az), std::cos(az), 0, 0, 0, 1};
  const auto product = [](const std::array<double, 9>& a, const std::array<double, 9>& b) {
    std::array<double, 9> c{};
    for (int r = 0; r < 3; ++r)
      for (int k = 0; k < 3; ++k)
        for (int j = 0; j < 3; ++j) c[r * 3 + j] += a[r * 3 + k] * b[k * 3 + j];
    return c;
  };
  LinearTransform t;
  t.matrix = product(rz, product(ry, rx));
  t.centre = centre;
  t.translation = shift;
  t.rigid = true;
  return t;
}

LinearTransform compose(const LinearTransform& outer, const LinearTransform& inner) {
  // outer(inner(p)) = Mo Mi (p - ci) + [Mo (ci + ti - co) + co + to]; kept about inner's centre.
  LinearTransform t;
  t.centre = inner.centre;
  t.matrix.fill(0);
  for (int r = 0; r < 3; ++r)
    for (int k = 0; k < 3; ++k)
      for (int j = 0; j < 3; ++j) t.matrix[r * 3 + j] += outer.matrix[r * 3 + k] * inner.matrix[k * 3 + j];
  const std::array<double, 3> at_centre = outer.apply(inner.apply(inner.centre));
  for (int a = 0; a < 3; ++a) t.translation[a] = at_centre[a] - inner.centre[a];
  t.rigid = outer.rigid && inner.rigid;
  return t;
}

double mean_corner_distance(const LinearTransform& a, const LinearTransform& b, const PhysicalExtent& box) {
  double sum = 0;
  for (int corner = 0; corner < 8; ++corner) {
    const std::array<double, 3> p{(corner & 1) ? box.high[0] : box.low[0], (corner & 2) ? box.high[1] : box.low[1],
                                  (corner & 4) ? box.high[2] : box.low[2]};
    const auto pa = a.apply(p), pb = b.apply(p);
    sum += std::sqrt((pa[0] - pb[0]) * (pa[0] - pb[0]) + (pa[1] - pb[1]) * (pa[1] - pb[1]) +
                     (pa[2] - pb[2]) * (pa[2] - pb[2]));
  }
  return sum / 8;
}

Volume resample_through(const Volume& moving, const LinearTransform& fixed_to_moving, const VolumeGeometry& grid,
                        const std::string& moving_name, const std::string& grid_name) {
  // The grid's box carried into the moving volume's space must meet the moving volume's box.
  const PhysicalExtent box = physical_extent(grid), target = physical_extent(moving.geometry);
  PhysicalExtent carried;
  carried.low.fill(std::numeric_limits<double>::infinity());
  carried.high.fill(-std::numeric_limits<double>::infinity());
  for (int corner = 0; corner < 8; ++corner) {
    const std::array<double, 3> p{(corner & 1) ? box.high[0] : box.low[0], (corner & 2) ? box.high[1] : box.low[1],
                                  (corner & 4) ? box.high[2] : box.low[2]};
    const auto q = fixed_to_moving.apply(p);
    for (int a = 0; a < 3; ++a) {
      carried.low[a] = std::min(carried.low[a], q[a]);
      carried.high[a] = std::max(carried.high[a], q[a]);
    }
  }
  for (int axis = 0; axis < 3; ++axis) {
    if (target.high[axis] <= carried.low[axis] || carried.high[axis] <= target.low[axis]) {
      throw VolumeError(moving_name + " (" + target.text() + ") and " + grid_name + " carried by the transform (" +
                        carried.text() + ") do not overlap in physical space");
    }
  }
  using Filter = itk::ResampleImageFilter<detail::FloatImage, detail::FloatImage>;
  using Interpolator = itk::LinearInterpolateImageFunction<detail::FloatImage, double>;
  auto filter = Filter::New();
  filter->SetInput(detail::to_itk(moving));
  filter->SetInterpolator(Interpolator::New());
  filter->SetTransform(detail::itk_affine(fixed_to_moving));
  filter->SetDefaultPixelValue(0);
  filter->SetOutputParametersFromImage(detail::allocate_image<detail::FloatImage>(grid));
  try {
    filter->Update();
  } catch (const itk::ExceptionObject& e) {
    throw VolumeError(moving_name + ": cannot resample onto the grid of " + grid_name + ": " + detail::itk_message(e));
  }
  return detail::from_itk(*filter->GetOutput());
}

bool has_transform_extension(const std::string& path) { return !transform_extension(path).empty(); }

LinearTransform read_transform(const std::string& path) {
  {
    std::error_code ec;
    const auto status = fs::status(path, ec);
    if (!fs::exists(status)) throw IoError(path + ": no such file");
    // A FIFO or a device would block ITK's reader.
    if (!fs::is_regular_file(status)) throw IoError(path + ": not a regular file");
  }
  register_transform_io();
  auto reader = itk::TransformFileReaderTemplate<double>::New();
  reader->SetFileName(path);
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    throw IoError(path + ": not a readable ITK transform file: " + detail::itk_message(e));
  }
  const auto* list = reader->GetTransformList();
  if (list->empty()) throw IoError(path + ": holds no transform");
  if (list->size() > 1) {
    throw VolumeError(path + ": holds " + std::to_string(list->size()) + " transforms; one linear transform is needed");
  }
  const itk::TransformBaseTemplate<double>* transform = list->front().GetPointer();
  // A composite of one transform (as ANTs and Slicer may write) is that transform.
  if (const auto* composite = dynamic_cast<const itk::CompositeTransform<double, 3>*>(transform)) {
    if (composite->GetNumberOfTransforms() != 1) {
      throw VolumeError(path + ": a composite of " + std::to_string(composite->GetNumberOfTransforms()) +
                        " transforms; one linear transform is needed");
    }
    transform = composite->GetNthTransformConstPointer(0);
  }
  const auto* linear = dynamic_cast<const detail::LinearItkTransform*>(transform);
  if (linear == nullptr) {
    throw VolumeError(path + ": holds a " + transform->GetTransformTypeAsString() +
                      ", not a linear 3D transform (rigid or affine)");
  }
  LinearTransform t = detail::linear_transform_of(*linear, false);
  for (const double v : t.matrix) {
    if (!std::isfinite(v)) throw VolumeError(path + ": the transform's matrix is not finite");
  }
  for (int a = 0; a < 3; ++a) {
    if (!std::isfinite(t.translation[a]) || !std::isfinite(t.centre[a]))
      throw VolumeError(path + ": the transform's translation is not finite");
  }
  t.rigid = is_rotation(t.matrix);
  return t;
}

void write_transform_atomic(const std::string& path, const LinearTransform& t, WriteMode mode) {
  const std::string extension = transform_extension(path);
  if (extension.empty()) throw IoError(path + ": a transform is written as .tfm, .txt, .mat or .h5");
  if (mode == WriteMode::no_clobber && fs::exists(fs::symlink_status(path))) {
    throw OutputExistsError(path);
  }
  register_transform_io();
  itk::TransformBaseTemplate<double>::Pointer transform;
  if (t.rigid) {
    if (!is_rotation(t.matrix)) throw VolumeError(path + ": a rigid transform's matrix must be a rotation");
    auto rigid = itk::VersorRigid3DTransform<double>::New();
    itk::VersorRigid3DTransform<double>::MatrixType m;
    itk::VersorRigid3DTransform<double>::CenterType centre;
    itk::VersorRigid3DTransform<double>::OutputVectorType translation;
    for (unsigned r = 0; r < 3; ++r) {
      for (unsigned c = 0; c < 3; ++c) m(r, c) = t.matrix[r * 3 + c];
      centre[r] = t.centre[r];
      translation[r] = t.translation[r];
    }
    rigid->SetCenter(centre);
    rigid->SetMatrix(m, 1e-6);
    rigid->SetTranslation(translation);
    transform = rigid;
  } else {
    transform = detail::itk_affine(t);
  }
  ScratchFile scratch{scratch_name(path, extension)};
  auto writer = itk::TransformFileWriterTemplate<double>::New();
  writer->SetFileName(scratch.path);
  writer->SetInput(transform);
  try {
    writer->Update();
  } catch (const itk::ExceptionObject& e) {
    throw IoError(path + ": cannot write: " + detail::itk_message(e));
  }
  std::ifstream in(scratch.path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw IoError(path + ": cannot write: the temporary file could not be read back");
  write_file_atomic(path, bytes, mode);
}

}  // namespace efcnet
