// Best-epoch selection and early stopping (best_selection.h).
#include "trainer/train/best_selection.h"

#include <algorithm>
#include <cmath>

namespace flexmoe {

double SelectionScore(const config::TrainingConfig& tc, const ClassificationMetrics& val) {
  double score = val.accuracy;
  if (tc.selection() == config::TrainingConfig::AUC) score = val.auc;
  if (tc.selection() == config::TrainingConfig::MACRO_F1) score = val.macro_f1;
  if (tc.selection() == config::TrainingConfig::LOG_LOSS) score = 1 / (1 + val.log_loss);
  return std::isnan(score) ? -1 : score;
}

bool SelectionCandidate(const config::TrainingConfig& tc, int epoch) {
  return !tc.select_after_warmup() || epoch >= std::min(tc.warmup_epochs(), tc.epochs() - 1);
}

bool TakeIfBest(const config::TrainingConfig& tc, int epoch, int64_t global_step, double score,
                BestScore* best) {
  if (!SelectionCandidate(tc, epoch) || !(score > best->score)) return false;
  best->score = score;
  best->epoch = epoch;
  best->step = global_step;
  return true;
}

bool EarlyStopped(const config::TrainingConfig& tc, const TrainProgress& p) {
  const int patience = tc.early_stopping_patience();
  if (patience == 0 || p.best.epoch < 0) return false;
  // Epochs since the best one, warm-up epochs not counted.
  const int since = p.position.epoch - 1 - std::max(p.best.epoch, tc.warmup_epochs() - 1);
  return since >= patience;
}

}  // namespace flexmoe
