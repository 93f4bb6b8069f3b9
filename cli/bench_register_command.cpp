// `efcnet bench-register`: the accuracy and speed of `efcnet fuse --register rigid` against
// elastix's rigid Mattes registration, in one run on the same cases (registration_bench.h): a
// subject's consecutive slices stacked into an anatomical and a functional volume, the functional
// content moved by a known rigid motion (seeded), both headers left as they were.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "command_support.h"
#include "commands.h"
#include "efcnet/files.h"
#include "efcnet/image.h"
#include "efcnet/registration.h"
#include "efcnet/registration_bench.h"
#include "efcnet/runtime.h"
#include "efcnet/volume.h"

namespace efcnet::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

struct Settings {
  std::string data, elastix = "elastix", elastix_parameters = "scripts/elastix-rigid.txt", output, qc_dir;
  std::vector<std::string> pairs{"CT-MRI", "PET-MRI", "SPECT-MRI"};
  int per_pair = 2, max_slices = 24, downsample = 2, threads = 2;
  double slice_mm = 4, max_degrees = 10, max_shift_mm = 20;
  uint32_t seed = 1;
};

struct MethodResult {
  double tre_mm = 0, seconds = 0;
  double unmoved_mm = 0;  // the result on the unmoved pair away from the identity (the data set's own misalignment)
  std::string error;
};

ordered_json to_json(const MethodResult& r) {
  if (!r.error.empty()) return {{"error", r.error}};
  return {{"tre_mm", r.tre_mm}, {"seconds", r.seconds}, {"unmoved_from_identity_mm", r.unmoved_mm}};
}

// One method on one case: its transform for the unmoved pair and for the moved one; the error
// of the second against the motion composed with the first.
template <class Register>
MethodResult measure(const Register& method, const LinearTransform& motion, const PhysicalExtent& head,
                     LinearTransform* moved_result = nullptr) {
  MethodResult r;
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

std::string cell(const std::optional<MethodResult>& r, bool seconds) {
  if (!r) return "-";
  if (!r->error.empty()) return "failed";
  char text[32];
  std::snprintf(text, sizeof text, seconds ? "%.1f" : "%.2f", seconds ? r->seconds : r->tre_mm);
  return text;
}

// One case: the volumes stacked, the motion drawn from seed, both methods run; its report entry.
ordered_json run_case(const Settings& s, const SliceStack& stack, uint32_t seed, const ScratchDir& scratch,
                      Totals& totals) {
  const std::string name = stack.modality + "-" + stack.subject;
  StackSpacing spacing;
  spacing.slice_mm = s.slice_mm;
  spacing.functional_downsample = s.downsample;
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
  const MethodResult efcnet = measure(
      [&](bool use_moved, double& seconds) {
        const auto start = Clock::now();
        const RegistrationResult result =
            estimate_transform(volumes.anatomical, use_moved ? moved : volumes.functional, options, anatomical_path,
                               use_moved ? moved_path : functional_path);
        seconds = seconds_since(start);
        return result.transform;
      },
      motion, head, &efcnet_moved);
  std::optional<MethodResult> elastix;
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
  std::fprintf(stderr, "%-14s %6.1f  | %9s %7s | %10s %7s\n", name.c_str(), before, cell(efcnet, false).c_str(),
               cell(efcnet, true).c_str(), cell(elastix, false).c_str(), cell(elastix, true).c_str());
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

void run(const Settings& s) {
  if (s.elastix != "none" && !fs::is_regular_file(s.elastix_parameters)) {
    throw std::runtime_error(s.elastix_parameters + ": no such file (--elastix-parameters; or --elastix none)");
  }
  // Every pair folder is read before any work: a wrong one stops the run at once.
  std::vector<SliceStack> stacks;
  for (const std::string& pair_name : s.pairs) {
    const auto found = find_slice_stacks((fs::path(s.data) / pair_name).string(), s.max_slices);
    stacks.insert(stacks.end(), found.begin(), found.begin() + std::min<std::ptrdiff_t>(s.per_pair, found.size()));
  }
  if (!s.qc_dir.empty()) fs::create_directories(s.qc_dir);
  ScratchDir scratch("efcnet-bench-register");
  ordered_json cases = ordered_json::array();
  Totals totals;
  std::fprintf(stderr, "%-14s %7s | %9s %7s | %10s %7s\n", "case", "motion", "efcnet mm", "s", "elastix mm", "s");
  for (std::size_t n = 0; n < stacks.size(); ++n) {
    cases.push_back(run_case(s, stacks[n], s.seed + static_cast<uint32_t>(n), scratch, totals));
  }

  ordered_json report;
  report["cpu"] = cpu_model();
  report["threads"] = s.threads;
  report["load_average_after"] = load_average<ordered_json>();
  report["settings"] = {{"slices_at_most", s.max_slices},
                        {"slice_mm", s.slice_mm},
                        {"anatomical_pixel_mm", 1.0},
                        {"functional_pixel_mm", 1.0 * s.downsample},
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
  const std::string text = report.dump(2) + "\n";
  if (s.output.empty()) {
    std::fputs(text.c_str(), stdout);
  } else {
    write_file_atomic(s.output, text);
  }
}

}  // namespace

void add_bench_register_command(CLI::App& app) {
  auto settings = std::make_shared<Settings>();
  CLI::App* cmd = app.add_subcommand(
      "bench-register",
      "Measure `efcnet fuse --register rigid` against elastix (rigid, Mattes MI) on volumes stacked from a 2D pair "
      "data set's slices, the functional content moved by known rigid motions: the error (mm, mean over the 8 "
      "corners of the head's box) and the time of each (JSON; a table on stderr)");
  cmd->add_option("--data", settings->data,
                  "The pair data set: folders such as SPECT-MRI/{MRI,SPECT} of <subject><3-digit slice>.png "
                  "(AANLIB's layout)")
      ->required();
  cmd->add_option("--pairs", settings->pairs,
                  "Its pair folders to take cases from (default: CT-MRI PET-MRI SPECT-MRI)");
  cmd->add_option("--cases-per-pair", settings->per_pair,
                  "Subjects per pair folder, those with the longest runs of consecutive slices (default: 2)")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--slices", settings->max_slices, "Consecutive slices per volume at most (default: 24)")
      ->check(CLI::Range(2, 1000));
  cmd->add_option("--slice-mm", settings->slice_mm, "Slice spacing, mm (default: 4; the pixels are 1 mm)")
      ->check(CLI::Range(0.1, 50.0));
  cmd->add_option("--functional-downsample", settings->downsample,
                  "The functional volume's pixels span this many anatomical ones per side (default: 2)")
      ->check(CLI::Range(1, 8));
  cmd->add_option("--max-degrees", settings->max_degrees, "Rotations of the motions about each axis (default: 10)")
      ->check(CLI::Range(0.0, 45.0));
  cmd->add_option("--max-shift-mm", settings->max_shift_mm, "Shift of the motions at most, mm (default: 20)")
      ->check(CLI::Range(0.0, 200.0));
  cmd->add_option("--seed", settings->seed, "The first case's motion seed; case n uses seed + n (default: 1)");
  cmd->add_option("--threads", settings->threads, "Threads of both methods (default: 2)")->check(CLI::Range(1, 256));
  cmd->add_option("--elastix", settings->elastix, "The elastix executable, or none (default: elastix on PATH)");
  cmd->add_option("--elastix-parameters", settings->elastix_parameters,
                  "elastix's parameter file (default: scripts/elastix-rigid.txt)");
  cmd->add_option("--qc-dir", settings->qc_dir,
                  "Write each case's registration picture (efcnet fuse --qc) here as <case>.png");
  cmd->add_option("--output", settings->output, "Write the JSON report here (default: stdout)");
  cmd->callback([settings] { run(*settings); });
}

}  // namespace efcnet::cli
