// Mattes mutual information registration of a functional volume to an anatomical one, on ITK's
// v4 framework (registration.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <itkCenteredTransformInitializer.h>
#include <itkCommand.h>
#include <itkImageRegistrationMethodv4.h>
#include <itkMattesMutualInformationImageToImageMetricv4.h>
#include <itkPointSet.h>
#include <itkRegistrationParameterScalesFromPhysicalShift.h>
#include <itkRegularStepGradientDescentOptimizerv4.h>
#include <itkVersorRigid3DTransform.h>

#include "efcnet/registration.h"
#include "volume/itk_convert.h"
#include "volume/itk_transform.h"

namespace efcnet {
namespace {

using detail::FloatImage;
// ITK's Mattes metric on one work unit: with several, its threads add their parts of the derivative
// into one sum in whatever order they finish, so reruns differ in the last bits (and, through the
// optimiser, more). Its work units are the domain threaders' own, not the process-wide default.
class Metric : public itk::MattesMutualInformationImageToImageMetricv4<FloatImage, FloatImage> {
 public:
  using Self = Metric;
  using Pointer = itk::SmartPointer<Self>;
  itkNewMacro(Self);

 protected:
  Metric() {
    this->m_SparseGetValueAndDerivativeThreader->SetNumberOfWorkUnits(1);
    this->m_DenseGetValueAndDerivativeThreader->SetNumberOfWorkUnits(1);
    this->SetMaximumNumberOfWorkUnits(1);
  }
};
using Optimizer = itk::RegularStepGradientDescentOptimizerv4<double>;
constexpr double kMinimumStepFraction = 1.0 / 200;
// How much worse than the start (relative) a result may end before it counts as a failure rather
// than the optimiser's last steps around an optimum it started at.
constexpr double kWorseTolerance = 0.02;
using PointSet = Metric::FixedSampledPointSetType;

std::string pair_text(const std::string& fixed_name, const std::string& moving_name) {
  return fixed_name + " + " + moving_name;
}

// Mutual information needs intensities that vary: an all-zero (or constant, or non-finite)
// volume gives no transform, whatever the optimiser reports.
void check_content(const Volume& volume, const std::string& name, const std::string& pair) {
  float low = 0, high = 0;
  bool any = false;
  for (const float v : volume.voxels) {
    if (!std::isfinite(v)) continue;
    if (!any) low = high = v;
    low = std::min(low, v);
    high = std::max(high, v);
    any = true;
  }
  if (!any || !(high > low)) {
    throw RegistrationError(pair + ": cannot register: " + name + " is " +
                            (any && low == 0 ? std::string("all zero") : std::string("constant or not finite")) +
                            " (no content to align)");
  }
}

void check_options(const RegistrationOptions& o) {
  // Affine estimation (AffineTransform through the same method) does not yet recover a known
  // motion on the test phantom: refused rather than offered unverified.
  if (o.kind == RegistrationKind::affine) throw OptionError("registration: affine is not available yet; use rigid");
  if (o.kind != RegistrationKind::rigid) throw OptionError("registration: the kind must be rigid");
  if (o.levels < 1 || o.levels > 6) throw OptionError("registration: levels must be 1..6");
  if (o.iterations < 1) throw OptionError("registration: iterations must be at least 1");
  if (!(o.sampling_rate > 0 && o.sampling_rate <= 1)) throw OptionError("registration: the sampling rate is in (0, 1]");
  if (o.max_samples < 100) throw OptionError("registration: at least 100 samples per level");
  if (o.histogram_bins < 8 || o.histogram_bins > 256) throw OptionError("registration: 8..256 histogram bins");
  if (o.threads < 1) throw OptionError("registration: at least 1 thread");
}

double min_spacing(const VolumeGeometry& g) { return std::min({g.spacing[0], g.spacing[1], g.spacing[2]}); }

// Level l of n shrinks each axis towards a voxel 2^(n-1-l) times the finest spacing, never
// beyond 1 voxel per axis step nor below 8 voxels.
std::array<unsigned, 3> shrink_factors(const VolumeGeometry& g, int level, int levels) {
  const double target = std::ldexp(1.0, levels - 1 - level) * min_spacing(g);
  std::array<unsigned, 3> factors{};
  for (int a = 0; a < 3; ++a) {
    const double wanted = std::max(1.0, std::round(target / g.spacing[a]));
    const double most = std::max(1.0, std::floor(static_cast<double>(g.size[a]) / 8.0));
    factors[a] = static_cast<unsigned>(std::min(wanted, most));
  }
  return factors;
}

// Full-resolution anatomical samples on a regular grid (voxel centres, no jitter), at most
// max_samples: the one set the metric before and after is measured on.
PointSet::Pointer fixed_samples(const FloatImage& fixed, const RegistrationOptions& options) {
  const auto size = fixed.GetLargestPossibleRegion().GetSize();
  const double voxels = static_cast<double>(size[0]) * size[1] * size[2];
  const double wanted = std::min(static_cast<double>(options.max_samples), voxels * options.sampling_rate);
  const auto stride = static_cast<itk::IndexValueType>(std::max(1.0, std::floor(std::cbrt(voxels / wanted))));
  auto points = PointSet::New();
  itk::IdentifierType id = 0;
  FloatImage::IndexType index;
  for (index[2] = stride / 2; index[2] < static_cast<itk::IndexValueType>(size[2]); index[2] += stride) {
    for (index[1] = stride / 2; index[1] < static_cast<itk::IndexValueType>(size[1]); index[1] += stride) {
      for (index[0] = stride / 2; index[0] < static_cast<itk::IndexValueType>(size[0]); index[0] += stride) {
        PointSet::PointType p;
        fixed.TransformIndexToPhysicalPoint(index, p);
        points->SetPoint(id++, p);
      }
    }
  }
  return points;
}

// The metric at one transform on the fixed samples; NaN where too few of them fall inside the
// moving volume to mean anything.
double metric_at(const FloatImage* fixed, const FloatImage* moving, const PointSet* samples,
                 const itk::Transform<double, 3, 3>* transform, const RegistrationOptions& options) {
  auto metric = Metric::New();
  metric->SetNumberOfHistogramBins(static_cast<itk::SizeValueType>(options.histogram_bins));
  metric->SetFixedImage(fixed);
  metric->SetMovingImage(moving);
  metric->SetVirtualDomainFromImage(fixed);
  metric->SetFixedSampledPointSet(samples);
  metric->SetUseSampledPointSet(true);
  metric->SetMovingTransform(const_cast<itk::Transform<double, 3, 3>*>(transform));
  metric->Initialize();
  const double value = metric->GetValue();
  const auto valid = metric->GetNumberOfValidPoints();
  if (valid < std::max<itk::SizeValueType>(50, samples->GetNumberOfPoints() / 10)) return std::nan("");
  return value;
}

// An ITK observer that calls a function (iterations, levels).
class CallbackCommand : public itk::Command {
 public:
  using Self = CallbackCommand;
  using Pointer = itk::SmartPointer<Self>;
  itkNewMacro(Self);
  std::function<void()> callback;
  void Execute(itk::Object*, const itk::EventObject&) override { callback(); }
  void Execute(const itk::Object*, const itk::EventObject&) override { callback(); }
};

template <typename Transform>
RegistrationResult register_with(const FloatImage::Pointer& fixed, const FloatImage::Pointer& moving,
                                 const RegistrationOptions& options, const std::string& pair,
                                 const RegistrationObserver& observer) {
  const PointSet::Pointer samples = fixed_samples(*fixed, options);

  // The start: the header's placement or the centres matched, whichever the metric prefers.
  auto header = Transform::New();
  header->SetIdentity();
  auto transform = Transform::New();
  using Initializer = itk::CenteredTransformInitializer<Transform, FloatImage, FloatImage>;
  auto initializer = Initializer::New();
  initializer->SetTransform(transform);
  initializer->SetFixedImage(fixed);
  initializer->SetMovingImage(moving);
  if (options.start == RegistrationStart::moments) {
    initializer->MomentsOn();
  } else {
    initializer->GeometryOn();
  }
  RegistrationResult result;
  typename Transform::ParametersType start_parameters;
  try {
    initializer->InitializeTransform();
    header->SetCenter(transform->GetCenter());  // the same centre of rotation, no motion
    const double at_header = metric_at(fixed, moving, samples, header, options);
    const double at_centres = metric_at(fixed, moving, samples, transform, options);
    if (std::isnan(at_header) && std::isnan(at_centres)) {
      throw RegistrationError(pair +
                              ": cannot register: the volumes overlap too little, whether placed by their "
                              "headers or centred on each other");
    }
    if (!std::isnan(at_header) && !(at_centres < at_header)) transform->SetParameters(header->GetParameters());
    result.metric_before = std::isnan(at_header) ? at_centres : at_header;
    start_parameters = transform->GetParameters();
  } catch (const itk::ExceptionObject& e) {
    throw RegistrationError(pair + ": cannot start the registration: " + detail::itk_message(e));
  }

  using Registration = itk::ImageRegistrationMethodv4<FloatImage, FloatImage, Transform>;
  auto registration = Registration::New();
  auto metric = Metric::New();
  metric->SetNumberOfHistogramBins(static_cast<itk::SizeValueType>(options.histogram_bins));
  auto optimizer = Optimizer::New();
  auto scales = itk::RegistrationParameterScalesFromPhysicalShift<Metric>::New();
  scales->SetMetric(metric);
  optimizer->SetScalesEstimator(scales);
  optimizer->SetDoEstimateLearningRateOnce(true);
  optimizer->SetLearningRate(1.0);
  optimizer->SetRelaxationFactor(0.8);
  optimizer->SetGradientMagnitudeTolerance(1e-6);
  optimizer->SetNumberOfIterations(static_cast<itk::SizeValueType>(options.iterations));
  optimizer->SetReturnBestParametersAndValue(true);

  registration->SetFixedImage(fixed);
  registration->SetMovingImage(moving);
  registration->SetMetric(metric);
  registration->SetOptimizer(optimizer);
  registration->SetInitialTransform(transform);
  registration->InPlaceOn();
  registration->SetNumberOfWorkUnits(static_cast<itk::ThreadIdType>(options.threads));

  const VolumeGeometry g = detail::geometry_of(*fixed);
  const auto levels = static_cast<unsigned>(options.levels);
  registration->SetNumberOfLevels(levels);
  typename Registration::SmoothingSigmasArrayType sigmas(levels);
  std::vector<double> level_step(levels);  // the first step of each level: half its voxel, mm
  typename Registration::MetricSamplingPercentageArrayType rates(levels);
  for (unsigned level = 0; level < levels; ++level) {
    const auto factors = shrink_factors(g, static_cast<int>(level), options.levels);
    typename Registration::ShrinkFactorsPerDimensionContainerType per_axis;
    double voxels = 1;
    for (int a = 0; a < 3; ++a) {
      per_axis[a] = factors[a];
      voxels *= std::ceil(static_cast<double>(g.size[a]) / factors[a]);
    }
    registration->SetShrinkFactorsPerDimension(level, per_axis);
    const double coarse = std::ldexp(1.0, options.levels - 1 - static_cast<int>(level));
    sigmas[level] = coarse > 1 ? 0.5 * coarse * min_spacing(g) : 0.0;
    level_step[level] = 0.5 * coarse * min_spacing(g);
    rates[level] = std::min(options.sampling_rate, options.max_samples / voxels);
  }
  registration->SetSmoothingSigmasPerLevel(sigmas);
  registration->SetSmoothingSigmasAreSpecifiedInPhysicalUnits(true);
  registration->SetMetricSamplingStrategy(Registration::MetricSamplingStrategyEnum::REGULAR);
  registration->SetMetricSamplingPercentagePerLevel(rates);
  registration->MetricSamplingReinitializeSeed(static_cast<int>(options.seed & 0x7fffffff));

  int level = 0;
  auto on_level = CallbackCommand::New();
  on_level->callback = [&]() {
    level = static_cast<int>(registration->GetCurrentLevel());
    optimizer->SetMaximumStepSizeInPhysicalUnits(level_step[static_cast<std::size_t>(level)]);
    optimizer->SetMinimumStepLength(0);  // until the level's learning rate is known
  };
  registration->AddObserver(itk::MultiResolutionIterationEvent(), on_level);
  auto on_iteration = CallbackCommand::New();
  on_iteration->callback = [&]() {
    ++result.iterations;
    // The optimiser shrinks its step (x0.8) on each change of direction; a level has converged once the
    // step is kMinimumStepFraction of its first one. The learning rate (the first step in
    // parameter units) is estimated on the level's first iteration.
    if (optimizer->GetCurrentIteration() == 0) {
      optimizer->SetMinimumStepLength(optimizer->GetLearningRate() * kMinimumStepFraction);
    }
    if (observer) {
      observer({level, options.levels, static_cast<int>(optimizer->GetCurrentIteration()), optimizer->GetValue()});
    }
  };
  optimizer->AddObserver(itk::IterationEvent(), on_iteration);

  try {
    registration->Update();
  } catch (const itk::ExceptionObject& e) {
    throw RegistrationError(pair + ": the registration failed: " + detail::itk_message(e));
  }
  if (optimizer->GetStopCondition() == itk::StopConditionObjectToObjectOptimizerEnum::MAXIMUM_NUMBER_OF_ITERATIONS) {
    throw RegistrationError(pair + ": the registration did not converge in " + std::to_string(options.iterations) +
                            " iterations at full resolution (nothing written)");
  }
  result.metric_after = metric_at(fixed, moving, samples, transform, options);
  if (std::isnan(result.metric_after) ||
      result.metric_after > result.metric_before + kWorseTolerance * std::abs(result.metric_before)) {
    char text[160];
    std::snprintf(text, sizeof text, "the registration ended worse than it started (Mattes MI %.4f -> %.4f)",
                  result.metric_before, result.metric_after);
    throw RegistrationError(pair + ": " + text + "; nothing written");
  }
  // At an optimum already (an aligned pair) the last steps can only move off its peak: the start stays.
  if (result.metric_after > result.metric_before) {
    transform->SetParameters(start_parameters);
    result.metric_after = result.metric_before;
  }
  result.transform = detail::linear_transform_of(*transform, options.kind == RegistrationKind::rigid);
  return result;
}

}  // namespace

RegistrationKind parse_registration_kind(const std::string& name) {
  if (name == "none") return RegistrationKind::none;
  if (name == "rigid") return RegistrationKind::rigid;
  if (name == "affine") return RegistrationKind::affine;
  throw OptionError("unknown registration '" + name + "' (none, rigid or affine)");
}

const char* registration_kind_name(RegistrationKind kind) {
  switch (kind) {
    case RegistrationKind::none: return "none";
    case RegistrationKind::rigid: return "rigid";
    case RegistrationKind::affine: return "affine";
  }
  return "?";
}

RegistrationResult estimate_transform(const Volume& fixed, const Volume& moving, const RegistrationOptions& options,
                                      const std::string& fixed_name, const std::string& moving_name,
                                      const RegistrationObserver& observer) {
  check_options(options);
  const std::string pair = pair_text(fixed_name, moving_name);
  check_content(fixed, fixed_name, pair);
  check_content(moving, moving_name, pair);
  const auto fixed_image = detail::to_itk(fixed);
  const auto moving_image = detail::to_itk(moving);
  return register_with<itk::VersorRigid3DTransform<double>>(fixed_image, moving_image, options, pair, observer);
}

double registration_metric(const Volume& fixed, const Volume& moving, const LinearTransform& fixed_to_moving,
                           const RegistrationOptions& options, const std::string& fixed_name,
                           const std::string& moving_name) {
  const std::string pair = pair_text(fixed_name, moving_name);
  check_content(fixed, fixed_name, pair);
  check_content(moving, moving_name, pair);
  const auto fixed_image = detail::to_itk(fixed);
  const auto moving_image = detail::to_itk(moving);
  const auto transform = detail::itk_affine(fixed_to_moving);
  try {
    return metric_at(fixed_image, moving_image, fixed_samples(*fixed_image, options), transform, options);
  } catch (const itk::ExceptionObject& e) {
    throw RegistrationError(pair + ": cannot evaluate the registration metric: " + detail::itk_message(e));
  }
}

}  // namespace efcnet
