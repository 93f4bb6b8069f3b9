// Between efcnet's LinearTransform (volume.h) and ITK's linear transforms; internal to efcnet_volume.
#pragma once

#include <itkAffineTransform.h>
#include <itkMatrixOffsetTransformBase.h>

#include "efcnet/volume.h"

namespace efcnet::detail {

using LinearItkTransform = itk::MatrixOffsetTransformBase<double, 3, 3>;

// Matrix, centre and translation of any ITK linear transform; `rigid` as the caller knows it.
LinearTransform linear_transform_of(const LinearItkTransform& transform, bool rigid);

// The same map as an ITK AffineTransform (for resampling and the metric).
itk::AffineTransform<double, 3>::Pointer itk_affine(const LinearTransform& transform);

}  // namespace efcnet::detail
