// training.average_epochs (trainer/train/weight_average.h): the decay, the update and the
// swap that lends the parameters the average's values.
#include "trainer/train/weight_average.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace flexmoe {
namespace {

TEST(WeightAverageTest, DecayFollowsTheTimeConstantOnceTheWarmStartCapPasses) {
  // 2 epochs of 50 steps: 1 - 1/100. Early steps are capped at (1 + t) / (10 + t).
  EXPECT_DOUBLE_EQ(AverageDecay(2, 50, 1), 2.0 / 11.0);
  EXPECT_DOUBLE_EQ(AverageDecay(2, 50, 100), 101.0 / 110.0);
  EXPECT_DOUBLE_EQ(AverageDecay(2, 50, 100000), 0.99);
  // A horizon under one step does not average: decay 0.
  EXPECT_DOUBLE_EQ(AverageDecay(0.1, 5, 100000), 0.0);
}

TEST(WeightAverageTest, UpdateMovesTheAverageTowardTheParameters) {
  std::vector<at::Tensor> parameters = {at::full({3}, 10.0), at::full({2, 2}, -4.0)};
  std::vector<at::Tensor> average = {at::zeros({3}), at::zeros({2, 2})};
  UpdateAverage(parameters, 0.75, &average);
  EXPECT_TRUE(at::allclose(average[0], at::full({3}, 2.5)));
  EXPECT_TRUE(at::allclose(average[1], at::full({2, 2}, -1.0)));
  UpdateAverage(parameters, 0.0, &average);  // decay 0: the parameters themselves
  EXPECT_TRUE(at::equal(average[0], parameters[0]));
}

TEST(WeightAverageTest, SwapLendsTheAverageAndGivesTheParametersBack) {
  at::Tensor p = at::arange(4, at::kFloat).requires_grad_();
  std::vector<at::Tensor> parameters = {p};
  std::vector<at::Tensor> average = {at::full({4}, 7.0)};
  const at::Tensor before = p.detach().clone();
  {
    AverageSwappedIn swapped(parameters, average);
    EXPECT_TRUE(at::equal(p.detach(), average[0]));
  }
  EXPECT_TRUE(at::equal(p.detach(), before));
  {
    AverageSwappedIn off(parameters, {});  // no average: nothing changes
    EXPECT_TRUE(at::equal(p.detach(), before));
  }
}

}  // namespace
}  // namespace flexmoe
