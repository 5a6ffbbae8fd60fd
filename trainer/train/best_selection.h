// Best-epoch selection and early stopping, as rules on the run's progress (no model, no
// tensors): the validation score that training.selection names, whether an epoch may be
// chosen (training.select_after_warmup), and whether the run has gone
// training.early_stopping_patience epochs after warm-up without a better one.
#pragma once

#include "proto/config.pb.h"
#include "trainer/checkpoint/train_progress.h"
#include "trainer/train/metrics.h"

namespace flexmoe {

// The epoch's score under training.selection: accuracy, AUC, macro-F1, or for LOG_LOSS
// 1 / (1 + log-loss) (in (0, 1], falling as the log-loss grows); NaN reads as -1, below
// every real score and above BestScore's -2.
double SelectionScore(const config::TrainingConfig& tc, const ClassificationMetrics& validation);
// Whether the epoch that just ended (`epoch`) may be chosen: with select_after_warmup, not a
// warm-up epoch (but for the last epoch of a run that has no other).
bool SelectionCandidate(const config::TrainingConfig& tc, int epoch);
// Records `epoch` (ending at `global_step`) as the best when it is a candidate whose score
// is strictly higher than the best so far (as the authors' code); true when it is.
bool TakeIfBest(const config::TrainingConfig& tc, int epoch, int64_t global_step, double score,
                BestScore* best);
// training.early_stopping_patience epochs after warm-up without a better score.
bool EarlyStopped(const config::TrainingConfig& tc, const TrainProgress& progress);

}  // namespace flexmoe
