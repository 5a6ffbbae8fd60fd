// Tests of trainer/metrics: hand-computed accuracy, macro-F1 and AUC values (the same
// numbers sklearn's accuracy_score, f1_score(average='macro') and roc_auc_score give).
#include "trainer/train/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

// Binary rows [1 - p, p].
std::vector<float> BinaryProbs(const std::vector<float>& p) {
  std::vector<float> probs;
  for (float v : p) {
    probs.push_back(1 - v);
    probs.push_back(v);
  }
  return probs;
}

// One-hot rows: the argmax is the prediction.
std::vector<float> OneHot(const std::vector<int>& predictions, int k) {
  std::vector<float> probs(predictions.size() * k, 0.0f);
  for (size_t i = 0; i < predictions.size(); ++i) probs[i * k + predictions[i]] = 1.0f;
  return probs;
}

TEST(MetricsTest, BinaryAucOfSklearnExample) {
  // sklearn's roc_auc_score docs example: y = [0, 0, 1, 1], s = [0.1, 0.4, 0.35, 0.8]:
  // pairs (pos, neg) ranked right: 0.35 > 0.1, 0.8 > 0.1, 0.8 > 0.4 -> 3 of 4 = 0.75.
  EXPECT_DOUBLE_EQ(RocAuc({0, 0, 1, 1}, BinaryProbs({0.1f, 0.4f, 0.35f, 0.8f}), 2), 0.75);
}

TEST(MetricsTest, BinaryWithTies) {
  // labels       0    0    1     1    0    1
  // p(class 1)  0.1  0.4  0.35  0.8  0.4  0.4
  // Positives vs the negatives {0.1, 0.4, 0.4}:
  //   0.35: 1 + 0 + 0 = 1;  0.8: 3;  0.4: 1 + 1/2 + 1/2 = 2  -> 6 / 9 = 2/3.
  // Predictions (p > 0.5): 0 0 0 1 0 0 -> 4 of 6 correct.
  // F1: class 0 tp 3 fp 2 fn 0 -> 6/8; class 1 tp 1 fp 0 fn 2 -> 2/4; macro 0.625.
  const std::vector<int> labels = {0, 0, 1, 1, 0, 1};
  const std::vector<float> probs = BinaryProbs({0.1f, 0.4f, 0.35f, 0.8f, 0.4f, 0.4f});
  const ClassificationMetrics m = ComputeMetrics(labels, probs, 2);
  EXPECT_EQ(m.count, 6);
  EXPECT_DOUBLE_EQ(m.auc, 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.accuracy, 4.0 / 6);
  EXPECT_DOUBLE_EQ(m.macro_f1, 0.625);
  EXPECT_DOUBLE_EQ(Accuracy(labels, probs, 2), m.accuracy);
  EXPECT_DOUBLE_EQ(MacroF1(labels, probs, 2), m.macro_f1);
}

TEST(MetricsTest, AllTiedScoresGiveOneHalf) {
  EXPECT_DOUBLE_EQ(BinaryAuc({true, false, true, false}, {0.5f, 0.5f, 0.5f, 0.5f}), 0.5);
  EXPECT_DOUBLE_EQ(BinaryAuc({false, false, true}, {0.1f, 0.2f, 0.3f}), 1.0);
  EXPECT_DOUBLE_EQ(BinaryAuc({true, true, false}, {0.1f, 0.2f, 0.3f}), 0.0);
}

TEST(MetricsTest, ThreeClassOneVsRest) {
  // labels: 0 1 2 2 1 0
  const std::vector<int> labels = {0, 1, 2, 2, 1, 0};
  const std::vector<float> probs = {
      0.6f, 0.3f, 0.1f,  // argmax 0, right
      0.2f, 0.5f, 0.3f,  // 1, right
      0.1f, 0.2f, 0.7f,  // 2, right
      0.3f, 0.4f, 0.3f,  // 1, wrong (label 2)
      0.3f, 0.3f, 0.4f,  // 2, wrong (label 1)
      0.5f, 0.2f, 0.3f,  // 0, right
  };
  // Class 0: positives {0.6, 0.5} beat all of {0.2, 0.1, 0.3, 0.3} -> 1.
  // Class 1: positives {0.5, 0.3} vs {0.3, 0.2, 0.4, 0.2}: 4 + (1/2 + 1 + 0 + 1) = 6.5/8.
  // Class 2: positives {0.7, 0.3} vs {0.1, 0.3, 0.4, 0.3}: 4 + (1 + 1/2 + 0 + 1/2) = 6/8.
  // Macro: (1 + 0.8125 + 0.75) / 3.
  EXPECT_DOUBLE_EQ(RocAuc(labels, probs, 3), (1 + 0.8125 + 0.75) / 3);
  // F1: class 0 -> 1; class 1 tp 1 fp 1 fn 1 -> 0.5; class 2 likewise 0.5 -> 2/3.
  EXPECT_DOUBLE_EQ(MacroF1(labels, probs, 3), 2.0 / 3);
  EXPECT_DOUBLE_EQ(Accuracy(labels, probs, 3), 4.0 / 6);
}

TEST(MetricsTest, MultiClassAucSkipsClassesWithoutPositives) {
  // K = 3 but class 2 never occurs: average over classes 0 and 1 only.
  // Class 0 column {0.7, 0.6, 0.2, 0.1}, positives first two -> 1.
  // Class 1 column {0.2, 0.3, 0.3, 0.8}, positives last two vs {0.2, 0.3}:
  //   0.3: 1 + 1/2; 0.8: 2 -> 3.5 / 4.
  const std::vector<int> labels = {0, 0, 1, 1};
  const std::vector<float> probs = {0.7f, 0.2f, 0.1f, 0.6f, 0.3f, 0.1f,
                                    0.2f, 0.3f, 0.5f, 0.1f, 0.8f, 0.1f};
  EXPECT_DOUBLE_EQ(RocAuc(labels, probs, 3), (1 + 3.5 / 4) / 2);
}

TEST(MetricsTest, AucUndefinedWithOneClass) {
  EXPECT_TRUE(std::isnan(RocAuc({1, 1, 1}, BinaryProbs({0.2f, 0.5f, 0.9f}), 2)));
  EXPECT_TRUE(std::isnan(RocAuc({2, 2}, OneHot({0, 2}, 3), 3)));
  EXPECT_TRUE(std::isnan(BinaryAuc({}, {})));
}

TEST(MetricsTest, MacroF1LeavesOutAbsentClass) {
  // K = 4, labels 0 0 1 1 2, predictions 0 1 1 1 0. Class 3 is neither true nor
  // predicted: left out (sklearn's default labels). Class 2 is true but never predicted.
  //   class 0: tp 1 fp 1 fn 1 -> 2/4 = 0.5
  //   class 1: tp 2 fp 1 fn 0 -> 4/5 = 0.8
  //   class 2: tp 0 fp 0 fn 1 -> 0
  // macro = 1.3 / 3 (sklearn: f1_score([0,0,1,1,2], [0,1,1,1,0], average='macro')).
  const std::vector<int> labels = {0, 0, 1, 1, 2};
  const std::vector<float> probs = OneHot({0, 1, 1, 1, 0}, 4);
  EXPECT_DOUBLE_EQ(MacroF1(labels, probs, 4), 1.3 / 3);
  EXPECT_DOUBLE_EQ(Accuracy(labels, probs, 4), 3.0 / 5);
}

TEST(MetricsTest, ArgmaxTakesFirstMaximum) {
  EXPECT_EQ(PredictArgmax({0.5f, 0.5f, 0.2f, 0.1f, 0.4f, 0.4f, 0.1f, 0.2f, 0.7f}, 3),
            (std::vector<int>{0, 1, 2}));
  // A tie at p = 0.5 predicts class 0.
  EXPECT_DOUBLE_EQ(Accuracy({0, 1}, BinaryProbs({0.5f, 0.5f}), 2), 0.5);
}

TEST(MetricsTest, EmptyInputIsNaN) {
  const ClassificationMetrics m = ComputeMetrics({}, {}, 3);
  EXPECT_EQ(m.count, 0);
  EXPECT_TRUE(std::isnan(m.accuracy));
  EXPECT_TRUE(std::isnan(m.macro_f1));
  EXPECT_TRUE(std::isnan(m.auc));
}

TEST(MetricsTest, BadInputIsRefused) {
  auto expect_invalid = [](auto&& call, const std::string& part) {
    try {
      call();
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_invalid([] { Accuracy({0, 1}, {0.5f, 0.5f, 0.5f}, 2); }, "4 probabilities");
  expect_invalid([] { MacroF1({0, 3}, OneHot({0, 1}, 2), 2); }, "label 3 of sample 1");
  expect_invalid([] { RocAuc({0, 1}, {0.5f, NAN, 0.5f, 0.5f}, 2); }, "not finite");
  expect_invalid(
      [] {
        ComputeGroupedMetrics({0, 1}, OneHot({0, 1}, 2), 2, {0, 5}, 2);
      },
      "group id 5 of sample 1");
  expect_invalid(
      [] {
        ComputeGroupedMetrics({0, 1}, OneHot({0, 1}, 2), 2, {0}, 2);
      },
      "1 group ids");
  expect_invalid([] { ComputeMetrics({0}, {1.0f}, 0); }, "num_classes 0");
}

TEST(MetricsTest, PerGroupSplit) {
  // The binary example of BinaryWithTies split into group 0 (first three samples),
  // group 1 (last three) and an empty group 2.
  const std::vector<int> labels = {0, 0, 1, 1, 0, 1};
  const std::vector<float> probs = BinaryProbs({0.1f, 0.4f, 0.35f, 0.8f, 0.4f, 0.4f});
  const GroupedMetrics m = ComputeGroupedMetrics(labels, probs, 2, {0, 0, 0, 1, 1, 1}, 3);
  ASSERT_EQ(m.groups.size(), 3u);
  // Group 0: labels 0 0 1, p 0.1 0.4 0.35, predictions 0 0 0.
  //   ACC 2/3; F1 class 0 tp 2 fp 1 -> 4/5, class 1 fn 1 -> 0, macro 0.4;
  //   AUC: 0.35 vs {0.1, 0.4} -> 1/2.
  EXPECT_EQ(m.groups[0].count, 3);
  EXPECT_DOUBLE_EQ(m.groups[0].accuracy, 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.groups[0].macro_f1, 0.4);
  EXPECT_DOUBLE_EQ(m.groups[0].auc, 0.5);
  // Group 1: labels 1 0 1, p 0.8 0.4 0.4, predictions 1 0 0.
  //   ACC 2/3; F1 class 0 tp 1 fp 1 -> 2/3, class 1 tp 1 fn 1 -> 2/3;
  //   AUC: 0.8 vs 0.4 -> 1, 0.4 vs 0.4 -> 1/2 -> 0.75.
  EXPECT_EQ(m.groups[1].count, 3);
  EXPECT_DOUBLE_EQ(m.groups[1].accuracy, 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.groups[1].macro_f1, 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.groups[1].auc, 0.75);
  EXPECT_EQ(m.groups[2].count, 0);
  EXPECT_TRUE(std::isnan(m.groups[2].accuracy));
  EXPECT_TRUE(std::isnan(m.groups[2].auc));
  EXPECT_EQ(m.overall.count, 6);
  EXPECT_DOUBLE_EQ(m.overall.accuracy, 4.0 / 6);
  EXPECT_DOUBLE_EQ(m.overall.macro_f1, 0.625);
  EXPECT_DOUBLE_EQ(m.overall.auc, 2.0 / 3);

  const std::string table = FormatGroupTable(m, {"I", "IG", "G"});
  const std::string expected = std::string("group          n     ACC      F1     AUC\n") +
                               "I              3   66.67   40.00   50.00\n" +
                               "IG             3   66.67   66.67   75.00\n" +
                               "overall        6   66.67   62.50   66.67\n";
  EXPECT_EQ(table, expected);
  EXPECT_THROW(FormatGroupTable(m, {"I", "IG"}), Error);
}

TEST(MetricsTest, MeanStd) {
  const MeanAndStd s = MeanStd({0.6, 0.7, 0.8});
  EXPECT_NEAR(s.mean, 0.7, 1e-15);
  EXPECT_NEAR(s.std, 0.1, 1e-15);  // sqrt((0.01 + 0 + 0.01) / 2)
  const MeanAndStd population = MeanStd({0.6, 0.7, 0.8}, /*ddof=*/0);
  EXPECT_NEAR(population.std, std::sqrt(0.02 / 3), 1e-15);
  EXPECT_EQ(MeanStd({0.5}).std, 0.0);
  EXPECT_EQ(MeanStd({0.5}).mean, 0.5);
  EXPECT_TRUE(std::isnan(MeanStd({}).mean));
  EXPECT_EQ(FormatMeanStd(s), "70.00 +- 10.00");
  EXPECT_EQ(FormatMeanStd({0.65831, 0.01204}), "65.83 +- 1.20");
}

}  // namespace
}  // namespace flexmoe
