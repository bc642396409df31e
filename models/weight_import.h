// Pretrained initialisation from torchvision: copying a torchvision EfficientNet state_dict
// (read by models/torch_save_reader.h) into an EfficientNet with any input channel count and
// task head.
#pragma once

#include <string>

#include "models/efficientnet.h"

namespace angiotrain {

// What ImportTorchvisionWeights did.
struct ImportReport {
  int copied = 0;                    // tensors copied unchanged (parameters and buffers)
  bool stem_adapted = false;         // features.0.0.weight was converted from 3 channels
  bool classifier_replaced = false;  // the file's classifier did not fit: the head kept its init
};

// Copies a torchvision EfficientNet state_dict (same variant) into `model`:
//  - every parameter and buffer is taken from the file under the same name and shape;
//  - the stem convolution features.0.0.weight [O, 3, k, k] is adapted when the model has
//    C != 3 input channels: the RGB kernels are averaged, repeated C times and scaled by 3/C, so
//    a grey image copied into all C channels gives the same stem response as in RGB;
//  - classifier.1.* is copied when its shape matches (a 1000-class model) and otherwise left as
//    initialised: the classifier is replaced by the task head.
// Every missing, unexpected or mismatched tensor is listed by name in one Error; on error the
// model is unchanged.
ImportReport ImportTorchvisionWeights(EfficientNet& model, const std::string& path);

// Applies an --init spec: "" or "random" keeps the fresh initialisation (returns an empty
// report), "torchvision:PATH" calls ImportTorchvisionWeights. Throws Error on other specs.
ImportReport InitializeModel(EfficientNet& model, const std::string& init_spec);

}  // namespace angiotrain
