// Sweep objectives and scoring of stored validation evidence (see objective.h).
#include "experiments/evaluation/objective.h"

#include "experiments/evaluation/metrics.h"

namespace angiotrain {

const ChoiceTable<Objective>& ObjectiveChoices() {
  static const ChoiceTable<Objective> table = {{"presence_auroc", Objective::kPresenceAuroc},
                                               {"location_auroc", Objective::kLocationAuroc},
                                               {"kium", Objective::kKium},
                                               {"rsna", Objective::kRsna}};
  return table;
}

std::optional<double> EvidenceScore::Value(Objective objective) const {
  switch (objective) {
    case Objective::kPresenceAuroc: return presence_auroc;
    case Objective::kLocationAuroc: return location_auroc;
    case Objective::kKium: return kium;
    case Objective::kRsna: return rsna;
  }
  return std::nullopt;
}

EvidenceScore ScoreEvidence(const ThresholdInputs& inputs, const ThresholdLabels& labels, const ThresholdRule& rule) {
  EvidenceScore s;
  s.presence_auroc = Auroc(inputs.presence, labels.presence);
  const LocationReport report =
      ScoreLocations(CrossFittedFlags(rule, inputs, labels), labels.locations, inputs.locations);
  s.location_auroc = report.macro_auroc;
  s.kium_accuracy = report.kium_accuracy;
  s.no_location_accuracy = report.no_location_accuracy;
  if (s.presence_auroc) s.kium = (*s.presence_auroc + report.kium_accuracy) / 2;
  std::array<std::optional<double>, kNumLocations> aurocs;
  for (int k = 0; k < kNumLocations; ++k) aurocs[k] = report.per_location[k].auroc;
  s.rsna = RsnaWeightedAuc(s.presence_auroc, aurocs);
  return s;
}

bool Better(const std::optional<double>& a, const std::optional<double>& b) {
  if (!a) return false;
  if (!b) return true;
  return *a > *b;
}

}  // namespace angiotrain
