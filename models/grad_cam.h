// Grad-CAM (Selvaraju et al., 2017) of one output of an EfficientNet: where in the input a
// convolutional stage of the network found what raised that logit.
//
// The map is taken over one block of `features` (torchvision's names; pytorch-grad-cam's
// "target layer"): each channel of that block's output is weighted by the mean gradient of the
// chosen logit over that channel, the weighted sum is clipped at 0 and up-sampled bilinearly to
// the input side. The default is features.8, the 1x1 head convolution after the last MBConv
// stage (the textbook choice), at 1/32 of the input side: an 8x8 map at 256 px, too coarse to
// point within a few pixels. Earlier stages are finer (features.4 and .5 at 1/16, features.3 at
// 1/8) and see less context. The 8 views of a patient are the channels of one image, so one map
// covers all 8 (the same pixel of every view).
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

#include "models/efficientnet.h"

namespace angiotrain {

struct GradCamResult {
  torch::Tensor coarse;  // [h, w] float: ReLU(sum_k alpha_k A_k) at the stage's resolution
  torch::Tensor map;     // [H, W] float in [0, 1]: coarse up-sampled to the input and divided by its
                         // maximum (all 0 when nothing raised the logit)
  double logit = 0;      // the chosen output, as model->forward computes it in eval mode
};

// The features block Grad-CAM is taken over unless asked otherwise: features.8.
constexpr int kGradCamDefaultLayer = 8;

// "features.N" -> N, for a block of `model`'s features (features.0 to features.8 in every
// variant). Throws Error naming the text and the blocks there are.
int ParseGradCamLayer(const std::string& name, EfficientNet& model);

// The features blocks of every EfficientNet variant: features.0 (stem) to features.8 (head conv).
constexpr int kEfficientNetFeatureBlocks = 9;
// "features.N" -> N when 0 <= N < blocks; nullopt for anything else (for callers that word
// their own message, before any model is loaded).
std::optional<int> GradCamLayerNumber(const std::string& name, int blocks = kEfficientNetFeatureBlocks);

// Grad-CAM of output column `column` for one input [1, C, H, W] (float, on the model's device),
// over the output of features block `layer`. Puts the model in eval mode. Throws Error when the
// input is not one sample, the column is outside the model's outputs or the layer outside its
// features.
GradCamResult ComputeGradCam(EfficientNet& model, const torch::Tensor& input, int column,
                             int layer = kGradCamDefaultLayer);

}  // namespace angiotrain
