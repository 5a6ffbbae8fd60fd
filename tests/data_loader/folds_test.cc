// Cross-fitting's data (data_loader/folds.h): each fold in turn is the validation split, the
// others the training split, the test split untouched, the summary recounted; folds dealt
// without the sample ids (what a worker and a loader hold).
#include "data_loader/folds.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

// n samples, 3 combinations, 2 classes (1 in 4 positive); 70/15/15 splits; no ids.
PreparedDataset MakePrepared(int n) {
  PreparedDataset p;
  for (int i = 0; i < n; ++i) {
    p.index.add_label(i % 4 == 0 ? 1 : 0);
    p.index.add_split(i % 20 < 14 ? 0 : (i % 20 < 17 ? 1 : 2));
    p.index.add_combination(i % 3);
  }
  data::Summary* summary = p.meta.mutable_summary();
  for (const char* name : {"training", "validation", "testing"}) {
    data::SplitSummary* s = summary->add_splits();
    s->set_split(name);
    s->mutable_per_combination()->Resize(3, 0);
    s->mutable_per_class()->Resize(2, 0);
  }
  RecountSplits(p.index, summary);
  return p;
}

TEST(FoldsTest, EachFoldIsOnceTheValidationSplitAndTheTestSplitStays) {
  const PreparedDataset prepared = MakePrepared(400);
  EXPECT_EQ(prepared.split_size(0), 280u);
  EXPECT_EQ(prepared.split_size(1), 60u);
  EXPECT_EQ(prepared.split_size(2), 60u);
  const int k = 4;
  std::vector<int> validated(400, 0);
  uint64_t validation_total = 0;
  for (int f = 0; f < k; ++f) {
    const PreparedDataset member = WithFoldAsValidation(prepared, FoldOfData{k, f, 9});
    uint64_t positives = 0;
    for (int i = 0; i < 400; ++i) {
      if (prepared.index.split(i) == 2) {
        EXPECT_EQ(member.index.split(i), 2u) << i;
        continue;
      }
      ASSERT_LE(member.index.split(i), 1u) << i;
      validated[i] += member.index.split(i) == 1;
      positives += member.index.split(i) == 1 && member.index.label(i) == 1;
    }
    // The summary follows the new splits: the fold's 85 samples (340 / 4), a quarter of
    // them positive within one, and the training split the other 255.
    EXPECT_EQ(member.split_size(1), 85u);
    EXPECT_EQ(member.split_size(0), 255u);
    EXPECT_EQ(member.split_size(2), 60u);
    EXPECT_EQ(member.meta.summary().splits(1).per_class(1), positives);
    uint64_t by_combination = 0;
    for (uint64_t c : member.meta.summary().splits(1).per_combination()) by_combination += c;
    EXPECT_EQ(by_combination, 85u);
    validation_total += member.split_size(1);
  }
  EXPECT_EQ(validation_total, 340u);
  for (int i = 0; i < 400; ++i) {
    EXPECT_EQ(validated[i], prepared.index.split(i) == 2 ? 0 : 1) << i;  // once, in one fold
  }
  // Keyed by the seed: another seed deals other folds.
  const PreparedDataset a = WithFoldAsValidation(prepared, FoldOfData{k, 0, 9});
  const PreparedDataset b = WithFoldAsValidation(prepared, FoldOfData{k, 0, 10});
  EXPECT_FALSE(std::equal(a.index.split().begin(), a.index.split().end(), b.index.split().begin()));
}

TEST(FoldsTest, RefusesFoldsThatCannotBe) {
  const PreparedDataset prepared = MakePrepared(40);
  EXPECT_THROW(WithFoldAsValidation(prepared, FoldOfData{1, 0, 1}), Error);
  EXPECT_THROW(WithFoldAsValidation(prepared, FoldOfData{4, 4, 1}), Error);
  EXPECT_THROW(WithFoldAsValidation(prepared, FoldOfData{4, -1, 1}), Error);
  EXPECT_THROW(WithFoldAsValidation(MakePrepared(3), FoldOfData{5, 0, 1}), Error);
}

}  // namespace
}  // namespace flexmoe
