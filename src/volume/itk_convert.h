// Between efcnet's volume types (efcnet/volume.h) and ITK images; internal to efcnet_volume.
#pragma once

#include <string>

#include <itkImage.h>
#include <itkMacro.h>
#include <itkRGBPixel.h>

#include "efcnet/volume.h"

namespace efcnet::detail {

using FloatImage = itk::Image<float, 3>;
using ByteImage = itk::Image<unsigned char, 3>;
using RgbImage = itk::Image<itk::RGBPixel<unsigned char>, 3>;

template <typename Image>
VolumeGeometry geometry_of(const Image& image) {
  VolumeGeometry g;
  const auto size = image.GetLargestPossibleRegion().GetSize();
  for (unsigned a = 0; a < 3; ++a) {
    g.size[a] = static_cast<int64_t>(size[a]);
    g.spacing[a] = image.GetSpacing()[a];
    g.origin[a] = image.GetOrigin()[a];
    for (unsigned c = 0; c < 3; ++c) g.direction[a * 3 + c] = image.GetDirection()(a, c);
  }
  return g;
}

// An allocated ITK image with `geometry` (contents uninitialised).
template <typename Image>
typename Image::Pointer allocate_image(const VolumeGeometry& geometry) {
  auto image = Image::New();
  typename Image::RegionType region;
  typename Image::SpacingType spacing;
  typename Image::PointType origin;
  typename Image::DirectionType direction;
  for (unsigned a = 0; a < 3; ++a) {
    region.SetSize(a, static_cast<itk::SizeValueType>(geometry.size[a]));
    region.SetIndex(a, 0);
    spacing[a] = geometry.spacing[a];
    origin[a] = geometry.origin[a];
    for (unsigned c = 0; c < 3; ++c) direction(a, c) = geometry.direction[a * 3 + c];
  }
  image->SetRegions(region);
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  image->Allocate();
  return image;
}

FloatImage::Pointer to_itk(const Volume& volume);
Volume from_itk(const FloatImage& image);

// ITK's exception text cut to one line without its source location.
inline std::string itk_message(const itk::ExceptionObject& e) {
  std::string text = e.GetDescription();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const auto newline = text.find('\n');
  if (newline != std::string::npos) text = text.substr(0, newline);
  return text;
}

}  // namespace efcnet::detail
