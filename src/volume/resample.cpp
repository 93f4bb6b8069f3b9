// Resampling between grids in physical space (ITK), and ITK images to and from Volume.
#include <algorithm>
#include <string>

#include <itkLinearInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

#include "efcnet/volume.h"
#include "volume/itk_convert.h"

namespace efcnet {
namespace detail {

FloatImage::Pointer to_itk(const Volume& volume) {
  auto image = allocate_image<FloatImage>(volume.geometry);
  std::copy(volume.voxels.begin(), volume.voxels.end(), image->GetBufferPointer());
  return image;
}

Volume from_itk(const FloatImage& image) {
  Volume volume;
  volume.geometry = geometry_of(image);
  const float* data = image.GetBufferPointer();
  volume.voxels.assign(data, data + volume.geometry.voxel_count());
  return volume;
}

}  // namespace detail

Volume resample_onto(const Volume& moving, const VolumeGeometry& grid, const std::string& moving_name,
                     const std::string& grid_name) {
  const PhysicalExtent a = physical_extent(moving.geometry), b = physical_extent(grid);
  for (int axis = 0; axis < 3; ++axis) {
    if (a.high[axis] <= b.low[axis] || b.high[axis] <= a.low[axis]) {
      throw VolumeError(moving_name + " (" + a.text() + ") and " + grid_name + " (" + b.text() +
                        ") do not overlap in physical space");
    }
  }
  // Same grid: nothing to interpolate (and exactly the input values).
  if (same_geometry(moving.geometry, grid, 0)) return moving;

  using Filter = itk::ResampleImageFilter<detail::FloatImage, detail::FloatImage>;
  using Interpolator = itk::LinearInterpolateImageFunction<detail::FloatImage, double>;
  auto filter = Filter::New();
  filter->SetInput(detail::to_itk(moving));
  filter->SetInterpolator(Interpolator::New());
  filter->SetDefaultPixelValue(0);
  const auto reference = detail::allocate_image<detail::FloatImage>(grid);
  filter->SetOutputParametersFromImage(reference);
  try {
    filter->Update();
  } catch (const itk::ExceptionObject& e) {
    throw VolumeError(moving_name + ": cannot resample onto the grid of " + grid_name + ": " + detail::itk_message(e));
  }
  return detail::from_itk(*filter->GetOutput());
}

}  // namespace efcnet
