// What a sweep ranks by, and the figures of one epoch's stored validation predictions under one
// threshold rule: the one scoring used by the best-epoch checkpoint (best.pt), by successive
// halving and by the sweep's results table, so that they all agree.
#pragma once

#include <optional>
#include <string>

#include "core/choice.h"
#include "experiments/evaluation/threshold_rule.h"

namespace angiotrain {

// presence_auroc: AUROC of Aneurysm. location_auroc: mean of the defined per-location AUROCs.
// kium: the K-ium pair as one number, (presence AUROC + K-ium location accuracy) / 2.
// rsna: the RSNA 2025 weighted AUC over K-ium's columns (experiments/evaluation/metrics.h).
enum class Objective { kPresenceAuroc, kLocationAuroc, kKium, kRsna };
const ChoiceTable<Objective>& ObjectiveChoices();

// The figures of a labelled set of predictions under `rule` (a learning rule is cross-fitted:
// CrossFittedFlags). Undefined figures (one class in the truth) are nullopt.
struct EvidenceScore {
  std::optional<double> presence_auroc, location_auroc, rsna;
  double kium_accuracy = 0, no_location_accuracy = 0;
  std::optional<double> kium;
  std::optional<double> Value(Objective objective) const;
};
EvidenceScore ScoreEvidence(const ThresholdInputs& inputs, const ThresholdLabels& labels, const ThresholdRule& rule);

// True when `a` ranks before `b` (higher is better; undefined ranks last).
bool Better(const std::optional<double>& a, const std::optional<double>& b);

}  // namespace angiotrain
