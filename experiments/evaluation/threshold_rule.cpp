// Location threshold rules: parsing, fitting the learning ones, applying. See threshold_rule.h.
#include "experiments/evaluation/threshold_rule.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <sstream>

#include "core/atomic_file.h"
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

ThresholdRule ThresholdRule::F1() { return ThresholdRule(Kind::kF1, 0); }
ThresholdRule ThresholdRule::Youden() { return ThresholdRule(Kind::kYouden, 0); }

ThresholdRule ThresholdRule::Top(int k) {
  if (k < 1 || k > kNumLocations) throw Error("threshold rule: K of top:K must be in 1.." + std::to_string(kNumLocations));
  return ThresholdRule(Kind::kTop, k);
}

ThresholdRule ThresholdRule::Gate(const ThresholdRule& inner) {
  if (inner.kind() == Kind::kGate) throw Error("threshold rule: a gate cannot gate a gate");
  ThresholdRule r(Kind::kGate, 0);
  r.inner_ = std::make_shared<const ThresholdRule>(inner);
  r.learnt_ = inner.learnt_;
  return r;
}

// Parses the whole of `s` as a number; false when anything is left over.
static bool ParseNumber(const std::string& s, double* out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtod(s.c_str(), &end);
  return *end == '\0' && errno != ERANGE && std::isfinite(*out);
}

static bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

ThresholdRule ThresholdRule::Parse(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Error("threshold rule '" + text + "': " + why +
                 " (expected mean+Kstd such as mean+1std, mean+0.5std, mean+std or mean; fixed:T with T in [0, 1]; "
                 "f1; youden; top:K with K in 1..21; or gate:RULE with RULE one of those)");
  };
  if (text == "f1") return F1();
  if (text == "youden") return Youden();
  if (StartsWith(text, "gate:")) {
    const std::string rest = text.substr(5);
    if (StartsWith(rest, "gate:")) throw bad("a gate cannot gate a gate");
    try {
      return Gate(Parse(rest));
    } catch (const Error&) {
      throw bad("'" + rest + "' is not a rule");
    }
  }
  if (StartsWith(text, "top:")) {
    double k = 0;
    if (!ParseNumber(text.substr(4), &k) || k != std::floor(k)) throw bad("K is not a whole number");
    if (k < 1 || k > kNumLocations) throw bad("K is not in 1..21");
    return Top(static_cast<int>(k));
  }
  if (StartsWith(text, "fixed:")) {
    double t = 0;
    if (!ParseNumber(text.substr(6), &t)) throw bad("the threshold is not a number");
    if (t < 0.0 || t > 1.0) throw bad("the threshold is not in [0, 1]");
    return Fixed(t);
  }
  const std::string mean = "mean";
  if (!StartsWith(text, mean)) throw bad("unknown rule");
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
  switch (kind_) {
    case Kind::kFixed: s << "fixed:" << parameter_; break;
    case Kind::kMeanPlusStd: s << "mean" << (parameter_ < 0 ? "-" : "+") << std::fabs(parameter_) << "std"; break;
    case Kind::kF1: s << "f1"; break;
    case Kind::kYouden: s << "youden"; break;
    case Kind::kTop: s << "top:" << static_cast<int>(parameter_); break;
    case Kind::kGate: s << "gate:" << inner_->ToString(); break;
  }
  return s.str();
}

bool ThresholdRule::learns() const {
  if (kind_ == Kind::kGate) return inner_->learns();
  return kind_ == Kind::kF1 || kind_ == Kind::kYouden;
}

namespace {

// A score as the exact fraction num / den (den > 0) of a cut's counts, so that cuts that score
// the same are a tie however floating point would round them (1 - 2/3 is not 1/3 in doubles).
struct Fraction {
  int64_t num = 0, den = 1;
  bool operator>(const Fraction& o) const {  // cross-multiplied in 128 bits: no overflow
    return static_cast<__int128>(num) * o.den > static_cast<__int128>(o.num) * den;
  }
};

// Walks the cuts of "value > cut" from the highest (1: no positive) down to the lowest (0: every
// positive value), the others halfway between consecutive distinct values, and returns the one
// with the best score(tp, fp, positives, negatives); the highest cut wins a tie.
template <class Score>
double BestCut(const std::vector<double>& values, const std::vector<uint8_t>& truth, Score score) {
  if (values.size() != truth.size()) throw Error("threshold rule: predictions and labels differ in number");
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] > values[b]; });
  int64_t positives = 0;
  for (uint8_t t : truth) positives += t != 0;
  const int64_t negatives = static_cast<int64_t>(truth.size()) - positives;
  double best_cut = 1.0;
  Fraction best = score(0, 0, positives, negatives);
  int64_t tp = 0, fp = 0;
  for (size_t i = 0; i < order.size();) {
    const double v = values[order[i]];
    for (; i < order.size() && values[order[i]] == v; ++i) (truth[order[i]] ? tp : fp) += 1;
    // Every value >= v is now positive: the cut lies between v and the next lower value.
    double cut;
    if (i < order.size()) {
      cut = (v + values[order[i]]) / 2;
    } else {
      if (v <= 0) break;  // 0 cannot be a positive under "> cut" with cuts >= 0
      cut = 0.0;
    }
    const Fraction s = score(tp, fp, positives, negatives);
    if (s > best) best = s, best_cut = cut;
  }
  return best_cut;
}

// F1 = 2 tp / (2 tp + fp + fn); 0 when there is nothing to score.
Fraction F1Score(int64_t tp, int64_t fp, int64_t positives, int64_t) {
  const int64_t fn = positives - tp, den = 2 * tp + fp + fn;
  return den == 0 ? Fraction{} : Fraction{2 * tp, den};
}

// TPR - FPR = tp / P - fp / N = (tp N - fp P) / (P N); a rate over a class without rows is 0.
Fraction YoudenScore(int64_t tp, int64_t fp, int64_t positives, int64_t negatives) {
  const int64_t p = positives ? positives : 1, n = negatives ? negatives : 1;
  return {tp * n - fp * p, p * n};
}

std::vector<double> LocationColumn(const std::vector<LocationProbabilities>& rows, int k) {
  std::vector<double> column(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) column[i] = rows[i][k];
  return column;
}

std::vector<uint8_t> LabelColumn(const std::vector<LocationFlags>& rows, int k) {
  std::vector<uint8_t> column(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) column[i] = rows[i][k];
  return column;
}

double MeanPlusStdOf(const std::vector<double>& values, double k) {
  const size_t n = values.size();
  double mean = 0;
  for (double v : values) mean += v;
  if (n > 0) mean /= static_cast<double>(n);
  double var = 0;
  for (double v : values) var += (v - mean) * (v - mean);
  if (n > 0) var /= static_cast<double>(n);  // population variance
  return mean + k * std::sqrt(var);
}

}  // namespace

double BestF1Cut(const std::vector<double>& values, const std::vector<uint8_t>& truth) {
  return BestCut(values, truth, F1Score);
}
double BestYoudenCut(const std::vector<double>& values, const std::vector<uint8_t>& truth) {
  return BestCut(values, truth, YoudenScore);
}

ThresholdRule ThresholdRule::Fit(const ThresholdInputs& inputs, const ThresholdLabels& labels) const {
  if (!learns()) return *this;
  if (kind_ == Kind::kGate) return Gate(inner_->Fit(inputs, labels));
  if (inputs.locations.size() != labels.locations.size())
    throw Error("threshold rule " + ToString() + ": " + std::to_string(inputs.locations.size()) +
                " predictions but " + std::to_string(labels.locations.size()) + " labelled patients");
  auto cut = kind_ == Kind::kF1 ? BestF1Cut : BestYoudenCut;
  LearntThresholds learnt;
  for (int k = 0; k < kNumLocations; ++k)
    learnt.locations[k] = cut(LocationColumn(inputs.locations, k), LabelColumn(labels.locations, k));
  if (!inputs.presence.empty() && inputs.presence.size() == labels.presence.size())
    learnt.presence = cut(inputs.presence, labels.presence);
  return WithLearnt(learnt);
}

ThresholdRule ThresholdRule::WithLearnt(const LearntThresholds& learnt) const {
  if (!learns()) return *this;
  if (kind_ == Kind::kGate) return Gate(inner_->WithLearnt(learnt));
  ThresholdRule r = *this;
  r.learnt_ = learnt;
  return r;
}

double ThresholdRule::ColumnThreshold(const std::vector<double>& values, int location) const {
  switch (kind_) {
    case Kind::kMeanPlusStd: return MeanPlusStdOf(values, parameter_);
    case Kind::kFixed: return parameter_;
    case Kind::kTop: return 0.5;  // only asked for the presence column of gate:top:K
    case Kind::kF1:
    case Kind::kYouden:
      if (!learnt_)
        throw Error("threshold rule " + ToString() +
                    " learns its thresholds from labelled predictions: fit it on validation predictions first, "
                    "or read them from a run's thresholds file");
      return location < 0 ? learnt_->presence : learnt_->locations[location];
    case Kind::kGate: break;
  }
  throw Error("threshold rule " + ToString() + " has no threshold of its own per column");
}

LocationProbabilities ThresholdRule::Thresholds(const std::vector<LocationProbabilities>& probabilities) const {
  if (kind_ == Kind::kTop || kind_ == Kind::kGate)
    throw Error("threshold rule " + ToString() + " has no per-location thresholds");
  LocationProbabilities t{};
  for (int k = 0; k < kNumLocations; ++k)
    t[k] = kind_ == Kind::kMeanPlusStd ? ColumnThreshold(LocationColumn(probabilities, k), k) : ColumnThreshold({}, k);
  return t;
}

std::vector<LocationFlags> ThresholdRule::Apply(const ThresholdInputs& inputs) const {
  const auto& p = inputs.locations;
  std::vector<LocationFlags> flags(p.size());
  if (kind_ == Kind::kGate) {
    if (inputs.presence.size() != p.size())
      throw Error("threshold rule " + ToString() + " needs the presence probability of every patient (" +
                  std::to_string(inputs.presence.size()) + " for " + std::to_string(p.size()) + " patients)");
    const double gate = inner_->ColumnThreshold(inputs.presence, -1);
    flags = inner_->Apply(inputs);
    for (size_t i = 0; i < p.size(); ++i)
      if (!(inputs.presence[i] > gate)) flags[i].fill(0);
    return flags;
  }
  if (kind_ == Kind::kTop) {
    const int top = static_cast<int>(parameter_);
    for (size_t i = 0; i < p.size(); ++i) {
      std::array<int, kNumLocations> order;
      std::iota(order.begin(), order.end(), 0);
      // Highest first; ties go to the earlier location of the K-ium column order.
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[i][a] > p[i][b]; });
      for (int j = 0; j < top; ++j) flags[i][order[j]] = 1;
    }
    return flags;
  }
  const LocationProbabilities t = Thresholds(p);
  for (size_t i = 0; i < p.size(); ++i)
    for (int k = 0; k < kNumLocations; ++k) flags[i][k] = p[i][k] > t[k] ? 1 : 0;
  return flags;
}

std::vector<LocationFlags> ThresholdRule::Apply(const std::vector<LocationProbabilities>& probabilities) const {
  return Apply(ThresholdInputs{{}, probabilities});
}

std::vector<LocationFlags> CrossFittedFlags(const ThresholdRule& rule, const ThresholdInputs& inputs,
                                            const ThresholdLabels& labels) {
  const size_t n = inputs.locations.size();
  if (!rule.learns() || n < 2) return rule.Fit(inputs, labels).Apply(inputs);
  const bool with_presence = inputs.presence.size() == n && labels.presence.size() == n;
  auto half = [&](size_t parity) {
    ThresholdInputs in;
    ThresholdLabels lab;
    for (size_t i = parity; i < n; i += 2) {
      in.locations.push_back(inputs.locations[i]);
      lab.locations.push_back(labels.locations[i]);
      if (with_presence) in.presence.push_back(inputs.presence[i]), lab.presence.push_back(labels.presence[i]);
    }
    return std::make_pair(in, lab);
  };
  const auto even = half(0), odd = half(1);
  const auto even_flags = rule.Fit(odd.first, odd.second).Apply(even.first);
  const auto odd_flags = rule.Fit(even.first, even.second).Apply(odd.first);
  std::vector<LocationFlags> flags(n);
  for (size_t i = 0; i < n; ++i) flags[i] = i % 2 ? odd_flags[i / 2] : even_flags[i / 2];
  return flags;
}

std::string LearntThresholdsJson(int64_t epoch, const ThresholdInputs& inputs, const ThresholdLabels& labels) {
  nlohmann::ordered_json j;
  j["epoch"] = epoch;
  j["patients"] = inputs.locations.size();
  for (const ThresholdRule& rule : {ThresholdRule::F1(), ThresholdRule::Youden()}) {
    const LearntThresholds learnt = *rule.Fit(inputs, labels).learnt();
    nlohmann::ordered_json r;
    r["presence"] = learnt.presence;
    for (int k = 0; k < kNumLocations; ++k) r["locations"][LocationNames()[k]] = learnt.locations[k];
    j[rule.ToString()] = r;
  }
  return j.dump(1) + "\n";
}

ThresholdRule WithLearntFromFile(const ThresholdRule& rule, const std::string& path, int64_t* epoch) {
  if (!rule.learns()) return rule;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ReadFile(path));
  } catch (const nlohmann::json::exception& e) {
    throw FileError(path, std::string("not a thresholds file (") + e.what() + ")");
  }
  const std::string name = (rule.kind() == ThresholdRule::Kind::kGate ? *rule.inner() : rule).ToString();
  auto missing = [&](const std::string& what) {
    return FileError(path, "no " + what + " for threshold rule " + rule.ToString());
  };
  if (!j.is_object() || !j.contains(name) || !j[name].is_object()) throw missing("'" + name + "' thresholds");
  const auto& r = j[name];
  LearntThresholds learnt;
  if (!r.contains("presence") || !r["presence"].is_number()) throw missing("'" + name + ".presence'");
  learnt.presence = r["presence"].get<double>();
  for (int k = 0; k < kNumLocations; ++k) {
    const std::string& loc = LocationNames()[k];
    if (!r.contains("locations") || !r["locations"].contains(loc) || !r["locations"][loc].is_number())
      throw missing("'" + name + ".locations." + loc + "'");
    learnt.locations[k] = r["locations"][loc].get<double>();
  }
  if (epoch) *epoch = j.value("epoch", int64_t{-1});
  return rule.WithLearnt(learnt);
}

}  // namespace angiotrain
