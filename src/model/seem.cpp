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

void set_identity(SmoothEdgeExtractorImpl& seem) {
  torch::NoGradGuard no_grad;
  for (const auto& module : seem.modules(/*include_self=*/false)) {
    if (auto* norm = module->as<nn::BatchNorm2dImpl>()) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
      norm->running_mean.zero_();
      norm->running_var.fill_(1.0 - norm->options.eps());  // so that sqrt(var + eps) is 1
      norm->num_batches_tracked.zero_();
    } else if (auto* conv = module->as<nn::Conv2dImpl>()) {
      // Output channel 0 takes input channel 0 at the kernel's centre; every other channel stays 0.
      const int64_t centre = conv->weight.size(2) / 2;
      conv->weight.zero_();
      conv->weight[0][0][centre][centre] = 1.0;
    }
  }
  // The merge's two inputs (conv_efg's and conv_1X1's channel) both carry the image: their mean.
  auto& merge = seem.conv_revert[0]->as<nn::Conv2dImpl>()->weight;
  merge[0][0][0][0] = 0.5;
  merge[0][1][0][0] = 0.5;
}

}  // namespace efcnet
