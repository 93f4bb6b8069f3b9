#include "efcnet/model.h"

namespace efcnet {
namespace {

namespace nn = torch::nn;

// Convolution without bias, BatchNorm, ReLU: the SEEM unit. Appended to `seq` so the indices
// (conv i, BN i+1, ReLU i+2) are the reference's state-dict indices.
void append_conv_bn_relu(nn::Sequential& seq, int64_t in, int64_t out, int64_t kernel) {
  seq->push_back(nn::Conv2d(nn::Conv2dOptions(in, out, kernel).padding(kernel / 2).bias(false)));
  seq->push_back(nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(1e-5).momentum(0.1)));
  seq->push_back(nn::ReLU());
}

nn::Sequential conv_bn_relu(int64_t in, int64_t out, int64_t kernel) {
  nn::Sequential seq;
  append_conv_bn_relu(seq, in, out, kernel);
  return seq;
}

}  // namespace

SmoothEdgeExtractorImpl::SmoothEdgeExtractorImpl() {
  up = register_module("up", conv_bn_relu(1, 8, 3));
  nn::Sequential efg;
  append_conv_bn_relu(efg, 8, 2, 1);
  append_conv_bn_relu(efg, 2, 2, 3);
  append_conv_bn_relu(efg, 2, 8, 1);
  append_conv_bn_relu(efg, 8, 1, 1);
  conv_efg = register_module("conv_efg", efg);
  conv_1X1 = register_module("conv_1X1", conv_bn_relu(8, 1, 1));
  conv_revert = register_module("conv_revert", conv_bn_relu(2, 8, 1));
  down = register_module("down", conv_bn_relu(8, 1, 3));
}

torch::Tensor SmoothEdgeExtractorImpl::forward(const torch::Tensor& functional) {
  const auto features = up->forward(functional);
  const auto merged = torch::cat({conv_efg->forward(features), conv_1X1->forward(features)}, 1);
  return down->forward(conv_revert->forward(merged));
}

}  // namespace efcnet
