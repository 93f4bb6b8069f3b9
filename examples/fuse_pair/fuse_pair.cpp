// Fuses one anatomical + functional pair with the efcnet library, as another program embeds it.
//   fuse_pair ANATOMICAL FUNCTIONAL OUTPUT NETWORK.pth SEEM.pth
#include <cstdio>

#include "efcnet/image.h"
#include "efcnet/pipeline.h"
#include "efcnet/runtime.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s ANATOMICAL FUNCTIONAL OUTPUT NETWORK.pth SEEM.pth\n", argv[0]);
    return 2;
  }
  try {
    efcnet::set_threads(0);  // a process setting: this program opts into every core
    efcnet::FuserOptions options;
    options.weights = argv[4];
    options.seem_weights = argv[5];
    const efcnet::Fuser fuser(options);
    const cv::Mat fused = fuser.fuse_pair(efcnet::read_anatomical(argv[1]), efcnet::read_functional(argv[2]));
    efcnet::write_image_atomic(argv[3], fused);
    std::printf("%s: %dx%d, %d channel(s)\n", argv[3], fused.cols, fused.rows, fused.channels());
  } catch (const efcnet::Error& e) {
    std::fprintf(stderr, "fuse_pair: %s\n", e.what());
    return 1;
  }
  return 0;
}
