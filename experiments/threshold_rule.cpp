// Location threshold rules. See threshold_rule.h.
#include "experiments/threshold_rule.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/error.h"

namespace angiotrain {

ThresholdRule ThresholdRule::MeanPlusStd(double k) {
  if (!std::isfinite(k)) throw Error("threshold rule: k of mean+k std must be finite");
  return ThresholdRule(Kind::kMeanPlusStd, k);
}

ThresholdRule ThresholdRule::Fixed(double threshold) {
  if (!(threshold >= 0.0 && threshold <= 1.0)) {
    throw Error("threshold rule: fixed threshold " + std::to_string(threshold) + " is not in [0, 1]");
  }
  return ThresholdRule(Kind::kFixed, threshold);
}

// Parses the whole of `s` as a number; false when anything is left over.
static bool ParseNumber(const std::string& s, double* out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtod(s.c_str(), &end);
  return *end == '\0' && errno != ERANGE && std::isfinite(*out);
}

ThresholdRule ThresholdRule::Parse(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Error("threshold rule '" + text + "': " + why +
                 " (expected mean+Kstd such as mean+1std, mean+0.5std, mean+std or mean, or fixed:T with T in [0, 1])");
  };
  const std::string fixed = "fixed:";
  if (text.compare(0, fixed.size(), fixed) == 0) {
    double t = 0;
    if (!ParseNumber(text.substr(fixed.size()), &t)) throw bad("the threshold is not a number");
    if (t < 0.0 || t > 1.0) throw bad("the threshold is not in [0, 1]");
    return Fixed(t);
  }
  const std::string mean = "mean";
  if (text.compare(0, mean.size(), mean) != 0) throw bad("unknown rule");
  std::string rest = text.substr(mean.size());
  if (rest.empty()) return MeanPlusStd(0.0);
  const std::string std_suffix = "std";
  if (rest.size() <= std_suffix.size() || rest.compare(rest.size() - 3, 3, std_suffix) != 0 ||
      (rest[0] != '+' && rest[0] != '-')) {
    throw bad("unknown rule");
  }
  const double sign = rest[0] == '-' ? -1.0 : 1.0;
  std::string number = rest.substr(1, rest.size() - 1 - std_suffix.size());
  if (number.empty()) return MeanPlusStd(sign);
  double k = 0;
  if (number[0] == '+' || number[0] == '-' || !ParseNumber(number, &k)) throw bad("'" + number + "' is not a number");
  return MeanPlusStd(sign * k);
}

std::string ThresholdRule::ToString() const {
  std::ostringstream s;
  s.precision(15);
  if (kind_ == Kind::kFixed) {
    s << "fixed:" << parameter_;
  } else {
    s << "mean" << (parameter_ < 0 ? "-" : "+") << std::fabs(parameter_) << "std";
  }
  return s.str();
}

LocationProbabilities ThresholdRule::Thresholds(const std::vector<LocationProbabilities>& probabilities) const {
  LocationProbabilities t{};
  if (kind_ == Kind::kFixed) {
    t.fill(parameter_);
    return t;
  }
  const size_t n = probabilities.size();
  for (int k = 0; k < kNumLocations; ++k) {
    double mean = 0;
    for (const auto& p : probabilities) mean += p[k];
    if (n > 0) mean /= static_cast<double>(n);
    double var = 0;
    for (const auto& p : probabilities) var += (p[k] - mean) * (p[k] - mean);
    if (n > 0) var /= static_cast<double>(n);  // population variance
    t[k] = mean + parameter_ * std::sqrt(var);
  }
  return t;
}

std::vector<LocationFlags> ThresholdRule::Apply(const std::vector<LocationProbabilities>& probabilities) const {
  const LocationProbabilities t = Thresholds(probabilities);
  std::vector<LocationFlags> flags(probabilities.size());
  for (size_t i = 0; i < probabilities.size(); ++i)
    for (int k = 0; k < kNumLocations; ++k) flags[i][k] = probabilities[i][k] > t[k] ? 1 : 0;
  return flags;
}

}  // namespace angiotrain
