// Importing torchvision EfficientNet weights: the name mapping, the stem's channel adaptation
// and the classifier's replacement. See weight_import.h; the file is read by torch_save_reader.h.
#include "models/weight_import.h"

#include <map>

#include "core/error.h"
#include "models/torch_save_reader.h"

namespace angiotrain {
namespace {

std::string ShapeString(const torch::Tensor& t) { return c10::str(t.sizes()); }

// Joins up to `limit` names and says how many more there were.
std::string NameList(const std::vector<std::string>& names, size_t limit = 12) {
  std::string s;
  for (size_t k = 0; k < names.size() && k < limit; ++k) s += (k ? ", " : "") + names[k];
  if (names.size() > limit) s += ", ... (" + std::to_string(names.size() - limit) + " more)";
  return s;
}

}  // namespace

ImportReport ImportTorchvisionWeights(EfficientNet& model, const std::string& path) {
  const StateDict file = ReadTorchStateDict(path);
  std::map<std::string, torch::Tensor> by_name(file.begin(), file.end());
  const std::string kStem = "features.0.0.weight";
  const std::string kClassifier = "classifier.";

  // The model's state: parameters and buffers under their torchvision names.
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (const auto& p : model->named_parameters()) targets.emplace_back(p.key(), p.value());
  for (const auto& b : model->named_buffers()) targets.emplace_back(b.key(), b.value());

  // First decide every tensor's source (and collect every problem), then copy.
  ImportReport report;
  std::vector<std::string> missing, mismatched, unexpected;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // destination, source
  std::map<std::string, bool> used;
  bool classifier_fits = true;
  for (const auto& [name, dest] : targets) {
    if (name.rfind(kClassifier, 0) == 0) {
      auto it = by_name.find(name);
      if (it == by_name.end() || !it->second.sizes().equals(dest.sizes())) classifier_fits = false;
    }
  }
  for (const auto& [name, dest] : targets) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      if (name.rfind(kClassifier, 0) == 0 && !classifier_fits) continue;
      missing.push_back(name);
      continue;
    }
    used[name] = true;
    torch::Tensor src = it->second;
    if (name.rfind(kClassifier, 0) == 0 && !classifier_fits) {
      report.classifier_replaced = true;
      continue;
    }
    if (name == kStem && src.dim() == 4 && dest.dim() == 4 && src.size(1) == 3 && dest.size(1) != 3 &&
        src.size(0) == dest.size(0) && src.size(2) == dest.size(2) && src.size(3) == dest.size(3)) {
      const int64_t c = dest.size(1);
      src = src.mean(1, /*keepdim=*/true).repeat({1, c, 1, 1}) * (3.0 / static_cast<double>(c));
      report.stem_adapted = true;
    } else if (!src.sizes().equals(dest.sizes())) {
      mismatched.push_back(name + " (file " + ShapeString(src) + ", model " + ShapeString(dest) + ")");
      continue;
    } else {
      ++report.copied;
    }
    copies.emplace_back(dest, src);
  }
  if (!classifier_fits) report.classifier_replaced = true;
  for (const auto& [name, tensor] : file) {
    if (!used.count(name)) unexpected.push_back(name);
  }

  if (!missing.empty() || !mismatched.empty() || !unexpected.empty()) {
    std::string msg = "cannot import torchvision weights into EfficientNet-" + model->config().variant;
    if (!mismatched.empty()) msg += "; shape mismatch: " + NameList(mismatched);
    if (!missing.empty()) msg += "; missing in the file: " + NameList(missing);
    if (!unexpected.empty()) msg += "; unexpected in the file: " + NameList(unexpected);
    throw FileError(path, msg);
  }
  torch::NoGradGuard no_grad;
  for (auto& [dest, src] : copies) dest.copy_(src);
  return report;
}

ImportReport InitializeModel(EfficientNet& model, const std::string& init_spec) {
  if (init_spec.empty() || init_spec == "random") return {};
  const std::string prefix = "torchvision:";
  if (init_spec.rfind(prefix, 0) == 0 && init_spec.size() > prefix.size()) {
    return ImportTorchvisionWeights(model, init_spec.substr(prefix.size()));
  }
  throw Error("--init '" + init_spec + "': expected 'random' or 'torchvision:PATH'");
}

}  // namespace angiotrain
