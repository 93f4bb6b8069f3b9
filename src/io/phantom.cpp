// Synthetic, registered anatomical/functional pairs for the demo, the README pictures and tests.
// Geometry is in units of the image side so every size shows the same slice.
#include <cmath>
#include <stdexcept>

#include <opencv2/imgproc.hpp>

#include "efcnet/image.h"

namespace efcnet {
namespace {

constexpr double kPi = 3.14159265358979323846;

struct Canvas {
  int size;
  cv::Point2d centre() const { return {size / 2.0, size / 2.0}; }
  double px(double fraction) const { return fraction * size; }
};

// Filled (rotated) ellipse as a CV_32F mask in [0, 1], anti-aliased by drawing at 8 bits.
cv::Mat ellipse_mask(const Canvas& c, cv::Point2d centre, double ax, double ay, double angle_deg = 0) {
  cv::Mat mask(c.size, c.size, CV_8UC1, cv::Scalar(0));
  cv::ellipse(mask, cv::RotatedRect(centre, cv::Size2f(c.px(2 * ax), c.px(2 * ay)), angle_deg), cv::Scalar(255),
              cv::FILLED, cv::LINE_AA);
  cv::Mat out;
  mask.convertTo(out, CV_32F, 1.0 / 255);
  return out;
}

// A closed curve r(theta) = base * (1 + sum of ripples): the folded white-matter boundary.
cv::Mat wavy_mask(const Canvas& c, double rx, double ry) {
  std::vector<cv::Point> outline;
  for (int i = 0; i < 360; ++i) {
    const double t = i * kPi / 180;
    const double ripple = 1 + 0.07 * std::sin(9 * t) + 0.04 * std::sin(17 * t + 1.3) + 0.03 * std::cos(5 * t);
    outline.emplace_back(
        cv::Point2d(c.centre().x + c.px(rx) * ripple * std::cos(t), c.centre().y + c.px(ry) * ripple * std::sin(t)));
  }
  cv::Mat mask(c.size, c.size, CV_8UC1, cv::Scalar(0));
  cv::fillPoly(mask, std::vector<std::vector<cv::Point>>{outline}, cv::Scalar(255), cv::LINE_AA);
  cv::Mat out;
  mask.convertTo(out, CV_32F, 1.0 / 255);
  return out;
}

// Smooth random texture with zero mean and unit-ish amplitude.
cv::Mat texture(const Canvas& c, cv::RNG& rng, double blur_sigma) {
  cv::Mat noise(c.size, c.size, CV_32F);
  rng.fill(noise, cv::RNG::NORMAL, cv::Scalar(0), cv::Scalar(1));
  cv::GaussianBlur(noise, noise, cv::Size(), std::max(0.5, blur_sigma));
  cv::Scalar mean, stddev;
  cv::meanStdDev(noise, mean, stddev);
  return (noise - mean[0]) / std::max(stddev[0], 1e-6);
}

cv::Mat gaussian_blob(const Canvas& c, cv::Point2d centre, double sigma) {
  cv::Mat blob(c.size, c.size, CV_32F);
  const double s = c.px(sigma);
  for (int y = 0; y < c.size; ++y) {
    auto* row = blob.ptr<float>(y);
    for (int x = 0; x < c.size; ++x) {
      const double dx = x - centre.x, dy = y - centre.y;
      row[x] = static_cast<float>(std::exp(-(dx * dx + dy * dy) / (2 * s * s)));
    }
  }
  return blob;
}

cv::Mat to_u8(const cv::Mat& image) {
  cv::Mat out;
  image.convertTo(out, CV_8U);  // saturates
  return out;
}

// Regions of the brain slice, each a soft mask in [0, 1].
struct Brain {
  cv::Mat head, skull_outer, brain, white, ventricles, basal_ganglia;
};

Brain brain_regions(const Canvas& c) {
  const cv::Point2d o = c.centre();
  Brain b;
  b.head = ellipse_mask(c, o, 0.40, 0.46);
  b.skull_outer = ellipse_mask(c, o, 0.37, 0.43);
  b.brain = ellipse_mask(c, o, 0.335, 0.395);
  b.white = wavy_mask(c, 0.24, 0.30);
  b.ventricles = cv::max(ellipse_mask(c, o + cv::Point2d(-c.px(0.045), -c.px(0.04)), 0.03, 0.10, 15),
                         ellipse_mask(c, o + cv::Point2d(c.px(0.045), -c.px(0.04)), 0.03, 0.10, -15));
  b.basal_ganglia = cv::max(ellipse_mask(c, o + cv::Point2d(-c.px(0.11), c.px(0.03)), 0.035, 0.06),
                            ellipse_mask(c, o + cv::Point2d(c.px(0.11), c.px(0.03)), 0.035, 0.06));
  return b;
}

// T1-like MRI: bright scalp, dark skull, grey cortex, brighter folded white matter, dark ventricles.
cv::Mat mri_slice(const Canvas& c, const Brain& b, cv::RNG& rng) {
  const cv::Mat skull = b.skull_outer - b.brain;
  const cv::Mat scalp = b.head - b.skull_outer;
  const cv::Mat grey = b.brain - cv::min(b.white, b.brain);
  cv::Mat image = 190 * scalp + 35 * skull + 105 * grey + 165 * cv::min(b.white, b.brain);
  image = image.mul(1 - b.ventricles) + 25 * b.ventricles.mul(b.brain);
  image += 7 * texture(c, rng, c.px(0.006)).mul(b.head);
  cv::GaussianBlur(image, image, cv::Size(), std::max(0.5, c.px(0.002)));
  return to_u8(image);
}

// Perfusion/uptake: cortex > white matter, nothing in the ventricles or outside the brain,
// plus focal spots; blurred to the low resolution of nuclear imaging. Result in [0, 1].
cv::Mat activity(const Canvas& c, const Brain& b, cv::RNG& rng, bool focal) {
  const cv::Point2d o = c.centre();
  cv::Mat a = 0.55 * b.brain + 0.45 * (b.brain - cv::min(b.white, b.brain));
  a = a.mul(1 - b.ventricles) + 0.08 * texture(c, rng, c.px(0.03)).mul(b.brain);
  if (focal) {
    a += 0.6 * b.basal_ganglia + 0.8 * gaussian_blob(c, o + cv::Point2d(c.px(0.17), -c.px(0.2)), 0.035);
  } else {
    a -= 0.4 * gaussian_blob(c, o + cv::Point2d(-c.px(0.2), c.px(0.12)), 0.06);  // a perfusion defect
  }
  a = cv::max(a, 0).mul(b.brain);
  cv::GaussianBlur(a, a, cv::Size(), c.px(0.015));
  double max_value = 0;
  cv::minMaxLoc(a, nullptr, &max_value);
  return a / std::max(max_value, 1e-6);
}

cv::Mat pseudo_colour(const cv::Mat& activity01, cv::ColormapTypes map, double background_below) {
  cv::Mat colour;
  cv::applyColorMap(to_u8(activity01 * 255), colour, map);
  colour.setTo(cv::Scalar::all(0), activity01 < background_below);
  return colour;
}

// CT: bone bright, soft tissue dim with little grey/white contrast, CSF darker.
cv::Mat ct_slice(const Canvas& c, const Brain& b, cv::RNG& rng) {
  const cv::Mat skull = b.skull_outer - b.brain;
  cv::Mat image = 70 * (b.head - b.skull_outer) + 245 * skull + 82 * b.brain + 6 * cv::min(b.white, b.brain) -
                  50 * b.ventricles.mul(b.brain);
  image += 4 * texture(c, rng, c.px(0.004)).mul(b.head);
  return to_u8(image);
}

// Phase contrast: mid-grey field, cells slightly darker with bright halos; GFP lights up some cells.
Phantom cell_culture(const Canvas& c, cv::RNG& rng) {
  cv::Mat field(c.size, c.size, CV_32F, cv::Scalar(120));
  cv::Mat fluorescence(c.size, c.size, CV_32F, cv::Scalar(0));
  const int cells = 14;
  for (int i = 0; i < cells; ++i) {
    const cv::Point2d centre(c.px(rng.uniform(0.12, 0.88)), c.px(rng.uniform(0.12, 0.88)));
    const double ax = rng.uniform(0.04, 0.08), ay = rng.uniform(0.03, 0.06);
    const double angle = rng.uniform(0.0, 180.0);
    const cv::Mat body = ellipse_mask(c, centre, ax, ay, angle);
    const cv::Mat halo = ellipse_mask(c, centre, ax + 0.012, ay + 0.012, angle) - body;
    const cv::Mat nucleus = ellipse_mask(c, centre, ax * 0.35, ay * 0.35, angle);
    field += 70 * halo - 35 * body - 25 * nucleus;
    if (i % 3 != 0) fluorescence += rng.uniform(0.5, 1.0) * (body - 0.5 * nucleus);
  }
  field += 5 * texture(c, rng, c.px(0.004));
  cv::GaussianBlur(field, field, cv::Size(), std::max(0.5, c.px(0.003)));
  cv::GaussianBlur(fluorescence, fluorescence, cv::Size(), c.px(0.01));

  cv::Mat green = to_u8(cv::min(fluorescence, 1) * 255);
  const cv::Mat zero = cv::Mat::zeros(green.size(), CV_8UC1);
  Phantom p;
  p.anatomical = to_u8(field);
  cv::merge(std::vector<cv::Mat>{zero, green, zero}, p.functional);
  return p;
}

}  // namespace

Phantom make_phantom(int size, PhantomKind kind) {
  if (size < 32) throw OptionError("phantom size must be at least 32, got " + std::to_string(size));
  const Canvas canvas{size};
  cv::RNG rng(0x5eed);  // deterministic: tests and pictures see the same slice every time
  if (kind == PhantomKind::gfp) return cell_culture(canvas, rng);

  const Brain brain = brain_regions(canvas);
  Phantom p;
  p.anatomical = mri_slice(canvas, brain, rng);
  switch (kind) {
    case PhantomKind::spect:
      p.functional = pseudo_colour(activity(canvas, brain, rng, false), cv::COLORMAP_JET, 0.08);
      break;
    case PhantomKind::pet:
      p.functional = pseudo_colour(activity(canvas, brain, rng, true), cv::COLORMAP_HOT, 0.0);
      break;
    case PhantomKind::ct: p.functional = ct_slice(canvas, brain, rng); break;
    case PhantomKind::gfp: break;  // returned above
  }
  return p;
}

}  // namespace efcnet
