// efcnet/benchmark.h's volume benchmark: what the volume path of `efcnet fuse` costs beyond the
// network. A phantom volume is fused stage by stage as fuse runs it (read, resample + window +
// colour, slicing, network, write), and the same slices as 2D pairs from PNG files as fuse's image
// mode runs them, interleaved slice by slice in the same process with the same networks.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_support.h"
#include "efcnet/benchmark.h"
#include "efcnet/image.h"
#include "efcnet/pipeline.h"
#include "efcnet/runtime.h"
#include "efcnet/volume.h"
#include "io/output_text.h"

namespace efcnet {

using nlohmann::ordered_json;

std::string benchmark_volume_fusion(const VolumeBenchmarkOptions& s, const SliceProgress& progress) {
  ScratchDir scratch("efcnet-bench-volume");
  const std::string anatomical_path = scratch / "anatomical.nii.gz", functional_path = scratch / "functional.nii.gz";
  {
    const VolumePhantom phantom = make_volume_phantom(s.size, s.slices);
    write_volume_atomic(anatomical_path, phantom.anatomical);
    write_volume_atomic(functional_path, phantom.functional);
  }
  FuserOptions options;
  options.weights = s.model.network;
  options.seem_weights = s.model.seem;
  const Fuser fuser(options);

  // The 2D pairs: the slices the volume path will fuse, as PNG files (prepared untimed).
  std::vector<std::pair<std::string, std::string>> pairs;
  {
    const PreparedVolumes untimed = prepare_volumes(read_volume(anatomical_path), read_volume(functional_path), {},
                                                    anatomical_path, functional_path);
    for (int k = 0; k < untimed.layout.slices; ++k) {
      if (!slice_has_content(untimed, k)) continue;
      const std::string a = scratch / ("a" + std::to_string(k) + ".png"),
                        f = scratch / ("f" + std::to_string(k) + ".png");
      write_image_atomic(a, extract_slice(untimed.anatomical, untimed.layout, k));
      write_image_atomic(f, extract_slice(untimed.functional, untimed.layout, k));
      pairs.emplace_back(a, f);
    }
  }
  if (!pairs.empty()) fuser.fuse_pair(read_anatomical(pairs[0].first), read_functional(pairs[0].second));  // warm-up

  // ---- the volume path, stage by stage; after each slice's network call the next 2D pair is
  // fused as fuse's image mode does it (PNG in, fuse_pair, PNG out), so that both see the same
  // machine load (other jobs on shared cores change the network's speed by 3x here) ----
  double pair_io_s = 0, pair_network_s = 0;
  std::size_t next_pair = 0;
  auto fuse_next_pair = [&] {
    if (next_pair >= pairs.size()) return;
    auto start = BenchClock::now();
    const cv::Mat a = read_anatomical(pairs[next_pair].first), f = read_functional(pairs[next_pair].second);
    pair_io_s += seconds_since(start);
    start = BenchClock::now();
    const cv::Mat fused = fuser.fuse_pair(a, f);
    pair_network_s += seconds_since(start);
    start = BenchClock::now();
    write_image_atomic(scratch / ("o" + std::to_string(next_pair) + ".png"), fused);
    pair_io_s += seconds_since(start);
    ++next_pair;
  };

  auto start = BenchClock::now();
  const Volume anatomical = read_volume(anatomical_path);
  const Volume functional = read_volume(functional_path);
  const double read_s = seconds_since(start);
  start = BenchClock::now();
  const PreparedVolumes prepared = prepare_volumes(anatomical, functional, {}, anatomical_path, functional_path);
  const double prepare_s = seconds_since(start);

  double slicing_s = 0, network_s = 0;
  FusedVolume result;
  result.fused.geometry = prepared.anatomical.geometry;
  result.fused.channels = prepared.functional.channels;
  result.fused.voxels.assign(prepared.functional.voxels.size(), 0);
  std::vector<int> fused_slices;
  {
    for (int k = 0; k < prepared.layout.slices; ++k) {
      start = BenchClock::now();
      const bool content = slice_has_content(prepared, k);
      const cv::Mat a = extract_slice(prepared.anatomical, prepared.layout, k);
      const cv::Mat f = extract_slice(prepared.functional, prepared.layout, k);
      slicing_s += seconds_since(start);
      if (content) {
        start = BenchClock::now();
        const cv::Mat fused = fuser.fuse_pair(a, f);
        network_s += seconds_since(start);
        start = BenchClock::now();
        insert_slice(result.fused, prepared.layout, k, fused);
        slicing_s += seconds_since(start);
        fused_slices.push_back(k);
        fuse_next_pair();  // timed on its own, between the volume's stages
      }
      if (progress) progress(k + 1, prepared.layout.slices);
    }
  }
  start = BenchClock::now();
  write_volume_atomic(scratch / "fused.nii.gz", result.fused);
  const double write_s = seconds_since(start);
  const double volume_total = read_s + prepare_s + slicing_s + network_s + write_s;
  while (next_pair < pairs.size()) fuse_next_pair();
  const double pairs_total = pair_io_s + pair_network_s;
  const double n = static_cast<double>(std::max<std::size_t>(fused_slices.size(), 1));

  ordered_json report;
  report["cpu"] = cpu_model();
  report["threads"] = thread_count(s.threads);
  report["load_average_after"] = load_average<ordered_json>();
  const auto& g = prepared.anatomical.geometry;
  report["volume"] = {
      {"anatomical", {g.size[0], g.size[1], g.size[2]}},
      {"functional", {functional.geometry.size[0], functional.geometry.size[1], functional.geometry.size[2]}},
      {"slices", prepared.layout.slices},
      {"fused_slices", fused_slices.size()},
      {"read_s", read_s},
      {"resample_window_colour_s", prepare_s},
      {"slicing_s", slicing_s},
      {"network_s", network_s},
      {"write_s", write_s},
      {"total_s", volume_total},
      {"seconds_per_slice", volume_total / n},
      {"overhead_s", volume_total - network_s},
      {"overhead_fraction_of_network", (volume_total - network_s) / network_s},
  };
  report["pairs_2d"] = {
      {"pairs", pairs.size()},
      {"read_write_s", pair_io_s},
      {"network_s", pair_network_s},
      {"total_s", pairs_total},
      {"seconds_per_pair", pairs_total / static_cast<double>(std::max<std::size_t>(pairs.size(), 1))},
  };
  report["volume_seconds_per_slice_over_2d_seconds_per_pair"] =
      (volume_total / n) / (pairs_total / static_cast<double>(std::max<std::size_t>(pairs.size(), 1)));
  return json_text(report);
}

}  // namespace efcnet
