// Calibration (prior correction, temperature and biases) and the expected calibration error
// (trainer/train/calibration.h).
#include "trainer/train/calibration.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

// Rows of K = 3 logits z ~ N(0, 3) with labels drawn from softmax(z / t + bias).
void DrawRows(double t, const std::vector<double>& bias, int n, std::vector<double>* logits,
              std::vector<int>* labels) {
  std::mt19937 rng(5);
  std::normal_distribution<double> normal(0, 3);
  std::uniform_real_distribution<double> uniform(0, 1);
  const int k = static_cast<int>(bias.size());
  for (int i = 0; i < n; ++i) {
    std::vector<double> z(k), e(k);
    double sum = 0;
    for (int c = 0; c < k; ++c) {
      z[c] = normal(rng);
      e[c] = std::exp(z[c] / t + bias[c]);
      sum += e[c];
    }
    double u = uniform(rng) * sum;
    int label = k - 1;
    for (int c = 0; c < k; ++c) {
      u -= e[c];
      if (u <= 0) {
        label = c;
        break;
      }
    }
    logits->insert(logits->end(), z.begin(), z.end());
    labels->push_back(label);
  }
}

TEST(CalibrationTest, FitRecoversTheTemperatureAndBiasesThatMadeTheLabels) {
  std::vector<double> logits;
  std::vector<int> labels;
  DrawRows(2.0, {0, -1.0, 0.5}, 20000, &logits, &labels);
  const Calibration fit = FitCalibration(logits, labels, 3);
  EXPECT_NEAR(fit.temperature, 2.0, 0.1);
  ASSERT_EQ(fit.bias.size(), 3u);
  EXPECT_EQ(fit.bias[0], 0.0);
  EXPECT_NEAR(fit.bias[1], -1.0, 0.1);
  EXPECT_NEAR(fit.bias[2], 0.5, 0.1);
  // A minimum: every one-parameter move makes the NLL worse.
  const double best = CalibrationNll(logits, labels, 3, fit);
  EXPECT_LT(best, CalibrationNll(logits, labels, 3, Calibration{}));
  for (double factor : {1.05, 1 / 1.05}) {
    Calibration moved = fit;
    moved.temperature *= factor;
    EXPECT_LE(best, CalibrationNll(logits, labels, 3, moved));
  }
  for (int c = 1; c < 3; ++c) {
    for (double step : {0.05, -0.05}) {
      Calibration moved = fit;
      moved.bias[c] += step;
      EXPECT_LE(best, CalibrationNll(logits, labels, 3, moved));
    }
  }
  const Calibration none = FitCalibration({}, {}, 3);
  EXPECT_DOUBLE_EQ(none.temperature, 1.0);
  EXPECT_TRUE(none.bias.empty());
}

TEST(CalibrationTest, TheBiasMovesTheMeanProbabilityToThePrevalence) {
  // A binary model whose logits carry a prior shift (class weights 0.25 / 0.75 put
  // log 3 into class 1's logit): a temperature alone cannot bring its mean probability to
  // the prevalence; the fitted bias does, on the rows it was fitted on.
  std::vector<double> logits;
  std::vector<int> labels;
  DrawRows(1.0, {0, -2.0}, 40000, &logits, &labels);
  for (size_t i = 0; i < labels.size(); ++i) logits[2 * i + 1] += std::log(3.0);
  double prevalence = 0;
  for (int y : labels) prevalence += y;
  prevalence /= labels.size();
  auto mean_p1 = [&](const std::vector<float>& p) {
    double sum = 0;
    for (size_t i = 0; i < labels.size(); ++i) sum += p[2 * i + 1];
    return sum / labels.size();
  };
  EXPECT_GT(mean_p1(Calibrate(logits, 2, Calibration{})), prevalence + 0.05);
  const Calibration fit = FitCalibration(logits, labels, 2);
  // The bias's score equation: sum(p - y) + prior * b = 0, so the mean probability is the
  // prevalence less prior * b / N.
  const double n = static_cast<double>(labels.size());
  EXPECT_NEAR(mean_p1(Calibrate(logits, 2, fit)), prevalence - kCalibrationPrior * fit.bias[1] / n,
              1e-6);
  EXPECT_NEAR(mean_p1(Calibrate(logits, 2, fit)), prevalence, 0.01);
  // The labels came from softmax(z + (0, -2)): the fit undoes the shift and the prior.
  EXPECT_NEAR(fit.temperature, 1.0, 0.05);
  EXPECT_NEAR(fit.bias[1], -2 - std::log(3.0), 0.15);
  // Undoing the weights by their log-ratio gives the same correction.
  const std::vector<double> offset = PriorCorrection({0.25, 0.75});
  EXPECT_NEAR(offset[1] - offset[0], -std::log(3.0), 1e-12);
  EXPECT_THROW(PriorCorrection({1.0, 0.0}), Error);
}

TEST(CalibrationTest, ThePriorCentresOnTheTrainingPrevalence) {
  // 60 rows from a binary model whose logits carry a shift of log 3: the centre bias makes
  // their mean probability the training prevalence exactly, and with a fit the prior pulls
  // towards that centre, not towards no bias.
  std::vector<double> logits;
  std::vector<int> labels;
  DrawRows(1.0, {0, -1.0}, 60, &logits, &labels);
  for (size_t i = 0; i < labels.size(); ++i) logits[2 * i + 1] += std::log(3.0);
  const std::vector<double> shares = {0.7, 0.3};
  const std::vector<double> centre = PrevalenceBias(logits, 2, shares);
  ASSERT_EQ(centre.size(), 2u);
  EXPECT_EQ(centre[0], 0.0);
  Calibration at_centre;
  at_centre.bias = centre;
  const std::vector<float> p = Calibrate(logits, 2, at_centre);
  double mean = 0;
  for (size_t i = 0; i < labels.size(); ++i) mean += p[2 * i + 1] / labels.size();
  EXPECT_NEAR(mean, 0.3, 1e-6);
  // The bias's score equation: sum(p - y) + prior * (b - centre) = 0.
  const Calibration fit = FitCalibration(logits, labels, 2, shares);
  const std::vector<float> q = Calibrate(logits, 2, fit);
  double residual = 0;
  for (size_t i = 0; i < labels.size(); ++i) residual += q[2 * i + 1] - labels[i];
  EXPECT_NEAR(residual + kCalibrationPrior * (fit.bias[1] - centre[1]), 0.0, 1e-6);
  EXPECT_NE(fit.bias[1], FitCalibration(logits, labels, 2).bias[1]);
  // No shares (or a class never seen): the centre is no bias.
  EXPECT_EQ(PrevalenceBias(logits, 2, {}), (std::vector<double>{0, 0}));
  EXPECT_EQ(PrevalenceBias(logits, 2, {1.0, 0.0}), (std::vector<double>{0, 0}));
  EXPECT_THROW(PrevalenceBias(logits, 2, {0.2, 0.3, 0.5}), Error);
}

TEST(CalibrationTest, CalibratedRowsSumToOne) {
  const std::vector<double> logp = {std::log(0.7), std::log(0.2), std::log(0.1)};
  std::vector<float> p1 = Calibrate(logp, 3, Calibration{});
  EXPECT_NEAR(p1[0], 0.7, 1e-6);
  std::vector<float> p2 = Calibrate(logp, 3, Calibration{2.0, {}});
  EXPECT_NEAR(p2[0] + p2[1] + p2[2], 1.0, 1e-6);
  EXPECT_LT(p2[0], 0.7);  // softer
  EXPECT_NEAR(p2[0] / p2[1], std::sqrt(0.7 / 0.2), 1e-5);
  std::vector<float> p3 = Calibrate(logp, 3, Calibration{1.0, {0, std::log(2.0), 0}});
  EXPECT_NEAR(p3[1] / p3[0], 2 * 0.2 / 0.7, 1e-5);
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
