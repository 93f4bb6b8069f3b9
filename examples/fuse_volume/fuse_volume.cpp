// Fuses a pair of volumes with the efcnet library as `efcnet fuse` does, from another program:
// the options structure, a progress callback, the one error type. It includes the umbrella header,
// so building it checks that every installed header compiles on its own terms.
//   fuse_volume ANATOMICAL FUNCTIONAL OUTPUT.nii.gz NETWORK.pth SEEM.pth
#include <cstdio>

#include "efcnet/efcnet.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s ANATOMICAL FUNCTIONAL OUTPUT.nii.gz NETWORK.pth SEEM.pth\n", argv[0]);
    return 2;
  }
  try {
    efcnet::set_threads(0);  // a process setting: this program opts into every core
    efcnet::FuseVolumeOptions options;
    options.fuser.weights = argv[4];
    options.fuser.seem_weights = argv[5];
    const efcnet::VolumeFusionSummary summary =
        efcnet::fuse_volume_files(argv[1], argv[2], argv[3], options, [](const efcnet::VolumeFusionEvent& event) {
          if (event.kind == efcnet::VolumeFusionEvent::Kind::slice_done)
            std::fprintf(stderr, "\r%zu/%zu slices", event.index, event.count);
        });
    std::fprintf(stderr, "\n%s (%s): %d slices fused, %d empty\n", argv[3], efcnet::kVersionText, summary.fused_slices,
                 summary.empty_slices);
  } catch (const efcnet::Error& e) {
    std::fprintf(stderr, "fuse_volume: %s\n", e.what());
    return 1;
  }
  return 0;
}
