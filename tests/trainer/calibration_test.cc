// Temperature scaling and the expected calibration error (trainer/train/calibration.h).
#include "trainer/train/calibration.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace flexmoe {
namespace {

TEST(CalibrationTest, FitTemperatureRecoversTheTemperatureThatMadeTheLabels) {
  // Labels drawn from softmax(z / 2): the fitted temperature of the logits z is close to 2.
  std::mt19937 rng(5);
  std::normal_distribution<double> normal(0, 3);
  std::uniform_real_distribution<double> uniform(0, 1);
  const int n = 20000, k = 3;
  std::vector<double> logits;
  std::vector<int> labels;
  for (int i = 0; i < n; ++i) {
    double z[k], sum = 0;
    for (double& v : z) {
      v = normal(rng);
      sum += std::exp(v / 2);
    }
    double u = uniform(rng) * sum;
    int label = k - 1;
    for (int c = 0; c < k; ++c) {
      u -= std::exp(z[c] / 2);
      if (u <= 0) {
        label = c;
        break;
      }
    }
    logits.insert(logits.end(), z, z + k);
    labels.push_back(label);
  }
  const double t = FitTemperature(logits, labels, k);
  EXPECT_NEAR(t, 2.0, 0.1);
  EXPECT_LT(TemperatureNll(logits, labels, k, t), TemperatureNll(logits, labels, k, 1.0));
  EXPECT_LE(TemperatureNll(logits, labels, k, t), TemperatureNll(logits, labels, k, t * 1.05));
  EXPECT_LE(TemperatureNll(logits, labels, k, t), TemperatureNll(logits, labels, k, t / 1.05));
  EXPECT_DOUBLE_EQ(FitTemperature({}, {}, k), 1.0);
}

TEST(CalibrationTest, SoftmaxWithTemperatureRowsSumToOne) {
  const std::vector<double> logp = {std::log(0.7), std::log(0.2), std::log(0.1)};
  std::vector<float> p1 = SoftmaxWithTemperature(logp, 3, 1.0);
  EXPECT_NEAR(p1[0], 0.7, 1e-6);
  std::vector<float> p2 = SoftmaxWithTemperature(logp, 3, 2.0);
  EXPECT_NEAR(p2[0] + p2[1] + p2[2], 1.0, 1e-6);
  EXPECT_LT(p2[0], 0.7);  // softer
  EXPECT_NEAR(p2[0] / p2[1], std::sqrt(0.7 / 0.2), 1e-5);
}

TEST(CalibrationTest, ExpectedCalibrationErrorByHand) {
  // Four binary rows: confidences 0.95, 0.95 (one right), 0.65, 0.65 (both right).
  const std::vector<float> probs = {0.95f, 0.05f, 0.05f, 0.95f, 0.65f, 0.35f, 0.35f, 0.65f};
  const std::vector<int> labels = {0, 0, 0, 1};
  Reliability r = ComputeReliability(labels, probs, 2, 10);
  ASSERT_EQ(r.bins.size(), 10u);
  EXPECT_EQ(r.bins[9].count, 2);
  EXPECT_NEAR(r.bins[9].accuracy, 0.5, 1e-12);
  EXPECT_NEAR(r.bins[9].confidence, 0.95, 1e-6);
  EXPECT_EQ(r.bins[6].count, 2);
  EXPECT_NEAR(r.bins[6].accuracy, 1.0, 1e-12);
  // ECE = 2/4 * |0.5 - 0.95| + 2/4 * |1 - 0.65| = 0.4.
  EXPECT_NEAR(r.ece, 0.4, 1e-6);
  std::vector<Reliability> per = ComputeGroupedReliability(labels, probs, 2, {0, 0, 1, 1}, 2, 10);
  EXPECT_NEAR(per[0].ece, 0.45, 1e-6);
  EXPECT_NEAR(per[1].ece, 0.35, 1e-6);
  EXPECT_TRUE(std::isnan(ComputeReliability({}, {}, 2).ece));
}

}  // namespace
}  // namespace flexmoe
