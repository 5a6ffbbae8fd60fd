// Best-epoch selection and early stopping as rules: the score each training.selection
// names (NaN below every real score), warm-up epochs not candidates with
// select_after_warmup (but a run's only epoch), strictly higher to replace the best, and the
// patience counted after warm-up.
#include "trainer/train/best_selection.h"

#include <gtest/gtest.h>

#include <cmath>

namespace flexmoe {
namespace {

config::TrainingConfig Training(int epochs, int warmup, int patience, bool after_warmup) {
  config::TrainingConfig tc;
  tc.set_epochs(epochs);
  tc.set_warmup_epochs(warmup);
  tc.set_early_stopping_patience(patience);
  tc.set_select_after_warmup(after_warmup);
  return tc;
}

TEST(BestSelectionTest, TheScoreIsTheNamedMetric) {
  ClassificationMetrics m;
  m.accuracy = 0.7;
  m.auc = 0.8;
  m.macro_f1 = 0.6;
  m.log_loss = 0.25;
  config::TrainingConfig tc;
  tc.set_selection(config::TrainingConfig::ACCURACY);
  EXPECT_DOUBLE_EQ(SelectionScore(tc, m), 0.7);
  tc.set_selection(config::TrainingConfig::AUC);
  EXPECT_DOUBLE_EQ(SelectionScore(tc, m), 0.8);
  tc.set_selection(config::TrainingConfig::MACRO_F1);
  EXPECT_DOUBLE_EQ(SelectionScore(tc, m), 0.6);
  tc.set_selection(config::TrainingConfig::LOG_LOSS);
  EXPECT_DOUBLE_EQ(SelectionScore(tc, m), 0.8);  // 1 / (1 + 0.25)
  m.log_loss = NAN;
  EXPECT_DOUBLE_EQ(SelectionScore(tc, m), -1);
}

TEST(BestSelectionTest, WarmupEpochsAreNoCandidatesAndTheBestMustBeStrictlyHigher) {
  const config::TrainingConfig tc = Training(10, 3, 0, true);
  BestScore best;
  EXPECT_FALSE(TakeIfBest(tc, 0, 10, 0.9, &best));  // warm-up
  EXPECT_FALSE(TakeIfBest(tc, 2, 30, 0.9, &best));
  EXPECT_TRUE(TakeIfBest(tc, 3, 40, 0.7, &best));
  EXPECT_FALSE(TakeIfBest(tc, 4, 50, 0.7, &best));  // equal is not better
  EXPECT_TRUE(TakeIfBest(tc, 5, 60, 0.75, &best));
  EXPECT_EQ(best.epoch, 5);
  EXPECT_EQ(best.step, 60);
  // A run of one epoch (all warm-up) still chooses it; without the rule any epoch may win.
  BestScore only;
  EXPECT_TRUE(TakeIfBest(Training(1, 1, 0, true), 0, 5, 0.5, &only));
  BestScore any;
  EXPECT_TRUE(TakeIfBest(Training(10, 3, 0, false), 0, 5, 0.5, &any));
  // -1 (a NaN score) still beats no epoch at all.
  BestScore none;
  EXPECT_TRUE(TakeIfBest(tc, 3, 40, -1, &none));
}

TEST(BestSelectionTest, PatienceCountsEpochsAfterWarmupWithoutABetterScore) {
  const config::TrainingConfig tc = Training(50, 3, 6, true);
  TrainProgress p;
  EXPECT_FALSE(EarlyStopped(tc, p));  // nothing validated yet
  p.best.epoch = 3;
  p.position.epoch = 9;  // epochs 4-8 ended without a better one: 5
  EXPECT_FALSE(EarlyStopped(tc, p));
  p.position.epoch = 10;  // 6
  EXPECT_TRUE(EarlyStopped(tc, p));
  p.best.epoch = 0;  // a warm-up best: counted from the end of warm-up
  p.position.epoch = 8;
  EXPECT_FALSE(EarlyStopped(tc, p));
  p.position.epoch = 9;
  EXPECT_TRUE(EarlyStopped(tc, p));
  EXPECT_FALSE(EarlyStopped(Training(50, 3, 0, true), p));  // patience 0: never
}

}  // namespace
}  // namespace flexmoe
