// The NIfTI-1 header checks that come before ITK reads a file (nifti_header.h).
#include "volume/nifti_header.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <string>

#include <nifti1_io.h>  // ITK's NIfTI library (ITKniftiio), plain C

#include "efcnet/volume.h"

namespace efcnet::detail {

void check_nifti_header(const std::string& path) {
  int swapped = 0;
  nifti_1_header* raw = nifti_read_header(path.c_str(), &swapped, 1);
  if (raw == nullptr) throw IoError(path + ": cannot read: not a NIfTI-1 header");
  std::string spacing;
  bool spacing_ok = true;
  for (int a = 1; a <= std::min<int>(raw->dim[0], 3); ++a) {
    spacing_ok = spacing_ok && std::isfinite(raw->pixdim[a]) && raw->pixdim[a] != 0;
    spacing += (a > 1 ? "x" : "") + std::to_string(raw->pixdim[a]);
  }
  free(raw);
  if (!spacing_ok) throw VolumeError(path + ": spacing (pixdim) " + spacing + " is not finite and non-zero");
  nifti_image* header = nifti_image_read(path.c_str(), 0);
  if (header == nullptr) throw IoError(path + ": cannot read: not a NIfTI-1 header");
  const auto problem = [](const mat44& m) -> std::string {
    std::array<double, 9> d{};
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 4; ++c) {
        if (!std::isfinite(m.m[r][c])) return "is not finite";
        if (c < 3) d[r * 3 + c] = m.m[r][c];
      }
    }
    VolumeGeometry g;
    g.size = {1, 1, 1};
    g.direction = d;
    return geometry_problem(g).empty() ? "" : "is singular";
  };
  std::string message;
  if (header->qform_code > 0 && !problem(header->qto_xyz).empty())
    message = "direction (qform) " + problem(header->qto_xyz);
  if (message.empty() && header->sform_code > 0 && !problem(header->sto_xyz).empty()) {
    message = "direction (sform) " + problem(header->sto_xyz);
  }
  nifti_image_free(header);
  if (!message.empty()) throw VolumeError(path + ": " + message);
}

}  // namespace efcnet::detail
