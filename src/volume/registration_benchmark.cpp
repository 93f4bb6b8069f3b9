// registration_bench.h's benchmark: efcnet's rigid registration against elastix's rigid Mattes
// registration, in one run on the same cases: a subject's consecutive slices stacked into an
// anatomical and a functional volume, the functional content moved by a known rigid motion
// (seeded), both headers left as they were.
#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_support.h"
#include "efcnet/files.h"
#include "efcnet/image.h"
#include "efcnet/registration.h"
#include "efcnet/registration_bench.h"
#include "efcnet/runtime.h"
#include "efcnet/volume.h"
#include "io/output_text.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using CaseCallback = std::function<void(const RegistrationCaseReport&)>;

ordered_json to_json(const RegistrationCaseResult& r) {
  if (!r.error.empty()) return {{"error", r.error}};
  return {{"tre_mm", r.tre_mm}, {"seconds", r.seconds}, {"unmoved_from_identity_mm", r.unmoved_mm}};
}

// One method on one case: its transform for the unmoved pair and for the moved one; the error
// of the second against the motion composed with the first.
template <class Register>
RegistrationCaseResult measure(const Register& method, const LinearTransform& motion, const PhysicalExtent& head,
                               LinearTransform* moved_result = nullptr) {
  RegistrationCaseResult r;
  try {
    double seconds = 0;
    const LinearTransform unmoved = method(false, seconds);
    const LinearTransform moved = method(true, seconds);
    r.seconds = seconds;  // of the moved pair
    r.tre_mm = mean_corner_distance(compose(motion, moved), unmoved, head);
    r.unmoved_mm = mean_corner_distance(unmoved, LinearTransform{}, head);
    if (moved_result) *moved_result = moved;
  } catch (const Error& e) {
    r.error = e.what();
  }
  return r;
}

// Both methods' sums over the cases where both gave a transform.
struct Totals {
  int cases = 0, within = 0;  // within: efcnet's error at most elastix's + 0.5 mm
  double efcnet_tre = 0, elastix_tre = 0, efcnet_seconds = 0, elastix_seconds = 0;
};

// One case: the volumes stacked, the motion drawn from seed, both methods run; its report entry.
ordered_json run_case(const RegistrationBenchmarkOptions& s, const SliceStack& stack, uint32_t seed,
                      const ScratchDir& scratch, Totals& totals, const CaseCallback& on_case) {
  const std::string name = stack.modality + "-" + stack.subject;
  StackSpacing spacing;
  spacing.slice_mm = s.slice_mm;
  spacing.functional_downsample = s.functional_downsample;
  const StackedPair volumes = stack_slices(stack, spacing);
  const PhysicalExtent head = content_box(volumes.anatomical, 0.1);
  std::array<double, 3> centre{};
  for (int a = 0; a < 3; ++a) centre[a] = (head.low[a] + head.high[a]) / 2;
  const LinearTransform motion = random_rigid_motion(seed, s.max_degrees, s.max_shift_mm, centre);
  const Volume moved = resample_through(volumes.functional, motion, volumes.functional.geometry, name, name);
  const std::string anatomical_path = scratch / (name + "-anatomical.nii.gz");
  const std::string functional_path = scratch / (name + "-functional.nii.gz");
  const std::string moved_path = scratch / (name + "-moved.nii.gz");
  write_volume_atomic(anatomical_path, volumes.anatomical);
  write_volume_atomic(functional_path, volumes.functional);
  write_volume_atomic(moved_path, moved);

  RegistrationOptions options;
  options.threads = s.threads;
  LinearTransform efcnet_moved;
  const RegistrationCaseResult efcnet = measure(
      [&](bool use_moved, double& seconds) {
        const auto start = BenchClock::now();
        const RegistrationResult result =
            estimate_transform(volumes.anatomical, use_moved ? moved : volumes.functional, options, anatomical_path,
                               use_moved ? moved_path : functional_path);
        seconds = seconds_since(start);
        return result.transform;
      },
      motion, head, &efcnet_moved);
  std::optional<RegistrationCaseResult> elastix;
  if (s.elastix != "none") {
    elastix = measure(
        [&](bool use_moved, double& seconds) {
          const ElastixRun result =
              run_elastix(s.elastix, s.elastix_parameters, anatomical_path, use_moved ? moved_path : functional_path,
                          scratch / (name + (use_moved ? "-elastix-moved" : "-elastix")), s.threads);
          seconds = result.seconds;
          return result.transform;
        },
        motion, head);
  }
  if (!s.qc_dir.empty() && efcnet.error.empty()) {
    write_image_atomic((fs::path(s.qc_dir) / (name + ".png")).string(),
                       make_registration_qc(volumes.anatomical, moved, LinearTransform{}, efcnet_moved));
  }

  const double before = mean_corner_distance(motion, LinearTransform{}, head);
  if (on_case) on_case({name, before, efcnet, elastix});
  if (efcnet.error.empty() && elastix && elastix->error.empty()) {
    ++totals.cases;
    totals.efcnet_tre += efcnet.tre_mm, totals.elastix_tre += elastix->tre_mm;
    totals.efcnet_seconds += efcnet.seconds, totals.elastix_seconds += elastix->seconds;
    if (efcnet.tre_mm <= elastix->tre_mm + 0.5) ++totals.within;
  }
  ordered_json entry = {{"case", name},
                        {"slices", stack.anatomical.size()},
                        {"anatomical", volumes.anatomical.geometry.text()},
                        {"functional", volumes.functional.geometry.text()},
                        {"motion_tre_mm", before},
                        {"efcnet", to_json(efcnet)}};
  entry["elastix"] = elastix ? to_json(*elastix) : ordered_json(nullptr);
  return entry;
}

}  // namespace

std::string benchmark_registration(const RegistrationBenchmarkOptions& s, const CaseCallback& on_case) {
  if (s.elastix != "none" && !fs::is_regular_file(s.elastix_parameters)) {
    throw IoError(s.elastix_parameters + ": no such file (the elastix parameters; or elastix \"none\")");
  }
  // Every pair folder is read before any work: a wrong one stops the run at once.
  std::vector<SliceStack> stacks;
  for (const std::string& pair_name : s.pairs) {
    const auto found = find_slice_stacks((fs::path(s.data) / pair_name).string(), s.max_slices);
    stacks.insert(stacks.end(), found.begin(),
                  found.begin() + std::min<std::ptrdiff_t>(s.cases_per_pair, found.size()));
  }
  if (!s.qc_dir.empty()) fs::create_directories(s.qc_dir);
  ScratchDir scratch("efcnet-bench-register");
  ordered_json cases = ordered_json::array();
  Totals totals;
  for (std::size_t n = 0; n < stacks.size(); ++n) {
    cases.push_back(run_case(s, stacks[n], s.seed + static_cast<uint32_t>(n), scratch, totals, on_case));
  }

  ordered_json report;
  report["cpu"] = cpu_model();
  report["threads"] = s.threads;
  report["load_average_after"] = load_average<ordered_json>();
  report["settings"] = {{"slices_at_most", s.max_slices},
                        {"slice_mm", s.slice_mm},
                        {"anatomical_pixel_mm", 1.0},
                        {"functional_pixel_mm", 1.0 * s.functional_downsample},
                        {"max_degrees", s.max_degrees},
                        {"max_shift_mm", s.max_shift_mm},
                        {"seed", s.seed},
                        {"elastix_parameters", s.elastix != "none" ? s.elastix_parameters : std::string()}};
  report["cases"] = cases;
  if (totals.cases > 0) {
    const double n = totals.cases;
    report["both_measured"] = {{"cases", totals.cases},
                               {"efcnet_mean_tre_mm", totals.efcnet_tre / n},
                               {"elastix_mean_tre_mm", totals.elastix_tre / n},
                               {"efcnet_within_elastix_plus_0_5_mm", totals.within},
                               {"efcnet_mean_seconds", totals.efcnet_seconds / n},
                               {"elastix_mean_seconds", totals.elastix_seconds / n},
                               {"efcnet_over_elastix_time", totals.efcnet_seconds / totals.elastix_seconds}};
  }
  return json_text(report);
}

}  // namespace efcnet
