// A synthetic head (never patient data) defined in physical space and sampled on two grids, as a
// scanner pair would be: an MRI-like volume and a coarser SPECT/PET-like uptake volume stored
// with another voxel order and direction.
#include <algorithm>
#include <cmath>

#include "efcnet/volume.h"

namespace efcnet {
namespace {

struct Point {
  double x, y, z;  // LPS, mm
};

// Soft membership of an ellipsoid: 1 inside, 0 outside, a ramp `edge` mm wide at the surface.
// `ripple` folds the surface (the cortex).
double ellipsoid(const Point& p, Point centre, Point radii, double edge, double ripple = 0) {
  const double dx = (p.x - centre.x) / radii.x, dy = (p.y - centre.y) / radii.y, dz = (p.z - centre.z) / radii.z;
  double r = std::sqrt(dx * dx + dy * dy + dz * dz);
  if (ripple != 0) {
    const double theta = std::atan2(dy, dx), phi = std::atan2(dz, std::hypot(dx, dy));
    r /= 1 + ripple * (std::sin(9 * theta) * 0.7 + std::sin(7 * phi + 1.3) * 0.5 + std::cos(5 * theta + 2 * phi) * 0.4);
  }
  const double distance = (r - 1) * std::min({radii.x, radii.y, radii.z});  // mm, roughly
  return std::clamp(0.5 - distance / edge, 0.0, 1.0);
}

double gaussian(const Point& p, Point centre, double sigma) {
  const double d2 =
      (p.x - centre.x) * (p.x - centre.x) + (p.y - centre.y) * (p.y - centre.y) + (p.z - centre.z) * (p.z - centre.z);
  return std::exp(-d2 / (2 * sigma * sigma));
}

// Fine texture of tissue, deterministic.
double texture(const Point& p) {
  return std::sin(p.x * 0.9 + 0.3 * p.z) * std::sin(p.y * 0.8 - 0.2 * p.x) * 0.6 +
         std::sin(p.z * 1.1 + p.y * 0.5) * 0.4;
}

const Point kCentre{0, 0, 20};

struct Regions {
  double head, skull_outer, brain, white, ventricles, basal_ganglia;
};

Regions regions(const Point& p, double edge) {
  Regions r;
  r.head = ellipsoid(p, kCentre, {76, 96, 72}, edge);
  r.skull_outer = ellipsoid(p, kCentre, {71, 91, 67}, edge);
  r.brain = ellipsoid(p, kCentre, {65, 85, 61}, edge);
  r.white = std::min(r.brain, ellipsoid(p, {0, 2, 24}, {46, 62, 40}, edge, 0.07));
  r.ventricles = std::max(ellipsoid(p, {-8, -6, 28}, {5, 20, 11}, edge), ellipsoid(p, {8, -6, 28}, {5, 20, 11}, edge));
  r.basal_ganglia = std::max(ellipsoid(p, {-21, 4, 16}, {7, 11, 9}, edge), ellipsoid(p, {21, 4, 16}, {7, 11, 9}, edge));
  return r;
}

// T1-like: bright scalp, dark skull, grey cortex, brighter white matter, dark ventricles (int16-like units).
float mri(const Point& p) {
  const Regions r = regions(p, 1.2);
  const double grey = r.brain - r.white;
  double v = 760 * (r.head - r.skull_outer) + 140 * (r.skull_outer - r.brain) + 420 * grey + 660 * r.white;
  v = v * (1 - r.ventricles) + 100 * r.ventricles * r.brain;
  v += 28 * texture(p) * r.head;
  return static_cast<float>(std::max(0.0, v));
}

// Perfusion-like uptake: cortex > white matter > ventricles (none), hot basal ganglia and a focal
// lesion, a defect; smooth edges as nuclear imaging's resolution gives (kBq/ml-like units).
float uptake(const Point& p) {
  const Regions r = regions(p, 7.0);
  double a = 0.5 * r.brain + 0.45 * (r.brain - r.white);
  a *= 1 - r.ventricles;
  a += 0.55 * r.basal_ganglia + 0.9 * gaussian(p, {32, -38, 44}, 7) * r.brain;
  a -= 0.4 * gaussian(p, {-36, 30, 10}, 12);
  return static_cast<float>(std::max(0.0, a * r.brain) * 1000.0);
}

template <typename F>
Volume sample(const VolumeGeometry& geometry, F&& value) {
  Volume volume;
  volume.geometry = geometry;
  volume.voxels.resize(static_cast<std::size_t>(geometry.voxel_count()));
  std::size_t v = 0;
  for (int64_t k = 0; k < geometry.size[2]; ++k) {
    for (int64_t j = 0; j < geometry.size[1]; ++j) {
      for (int64_t i = 0; i < geometry.size[0]; ++i) {
        const auto q = geometry.physical_point(static_cast<double>(i), static_cast<double>(j), static_cast<double>(k));
        volume.voxels[v++] = value(Point{q[0], q[1], q[2]});
      }
    }
  }
  return volume;
}

}  // namespace

VolumePhantom make_volume_phantom(int size, int slices) {
  if (size < 16 || slices < 2) throw OptionError("a volume phantom needs at least 16x16 voxels and 2 slices");
  // Anatomical: axial slices, voxel axes along +x (R->L), +y (A->P), +z (I->S); 220 x 220 x 150 mm.
  VolumeGeometry a;
  a.size = {size, size, slices};
  a.spacing = {220.0 / size, 220.0 / size, 150.0 / slices};
  a.origin = {-110 + a.spacing[0] / 2, -110 + a.spacing[1] / 2, 20 - 75 + a.spacing[2] / 2};

  // Functional: half the resolution, a larger field of view shifted by a few mm, and stored as
  // coronal slices in another voxel order: i runs L->R (-x), j runs I->S (+z), k runs A->P (+y).
  VolumeGeometry f;
  const int64_t fs = std::max(8, size / 2), fk = std::max(2, slices / 2);
  f.size = {fs, fk, fs};
  f.spacing = {240.0 / fs, 160.0 / fk, 240.0 / fs};
  f.direction = {-1, 0, 0,  //
                 0,  0, 1,  //
                 0,  1, 0};
  f.origin = {120 - f.spacing[0] / 2 + 3, -120 + f.spacing[2] / 2 - 2, 20 - 80 + f.spacing[1] / 2 + 1.5};

  VolumePhantom phantom;
  phantom.anatomical = sample(a, mri);
  phantom.functional = sample(f, uptake);
  return phantom;
}

}  // namespace efcnet
