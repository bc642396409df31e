// Grad-CAM (Selvaraju et al., 2017) of one output of an EfficientNet: where in the input the
// network's last convolutional stage found what raised that logit.
//
// The map is taken over features.8 (the 1x1 head convolution after the last MBConv stage, 1/32
// of the input side): each of its channels is weighted by the mean gradient of the chosen logit
// over that channel, the weighted sum is clipped at 0 and up-sampled bilinearly to the input
// side. The 8 views of a patient are the channels of one image, so one map covers all 8 (the
// same pixel of every view).
#pragma once

#include <torch/torch.h>

#include "models/efficientnet.h"

namespace angiotrain {

struct GradCamResult {
  torch::Tensor coarse;  // [h, w] float: ReLU(sum_k alpha_k A_k) at the stage's resolution
  torch::Tensor map;     // [H, W] float in [0, 1]: coarse up-sampled to the input and divided by its
                         // maximum (all 0 when nothing raised the logit)
  double logit = 0;      // the chosen output, as model->forward computes it in eval mode
};

// Grad-CAM of output column `column` for one input [1, C, H, W] (float, on the model's device).
// Puts the model in eval mode. Throws Error when the input is not one sample or the column is
// outside the model's outputs.
GradCamResult ComputeGradCam(EfficientNet& model, const torch::Tensor& input, int column);

}  // namespace angiotrain
