// The Flex-MoE model: patch-embedding layout, the bank filling exactly the missing
// (sample, modality) pairs, keyed dropout, and a finite-difference gradient check in double
// precision over every parameter group.
#include "trainer/model/model.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/utils.h>

#include <map>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

config::ModelConfig TinyModel(double dropout) {
  config::ModelConfig m;
  m.set_patches(2);
  m.set_hidden_dim(8);
  m.set_num_heads(2);
  m.set_num_layers_fus(2);  // sparse then dense
  m.set_num_layers_pred(2);
  m.set_num_experts(4);
  m.set_top_k(2);
  m.set_dropout(dropout);
  return m;
}

BatchTensors TinyBatch(at::ScalarType type) {
  BatchTensors b;
  torch::manual_seed(5);
  b.features = {at::randn({4, 3}).to(type), at::randn({4, 5}).to(type)};
  // Samples: both, first only, second only, both.
  b.observed = at::tensor({1, 1, 1, 0, 0, 1, 1, 1}, at::kLong).to(at::kBool).view({4, 2});
  b.combination = at::tensor({0, 1, 2, 0}, at::kLong);
  for (int i = 0; i < 4; ++i) {
    if (!b.observed[i][0].item<bool>()) b.features[0][i].zero_();
    if (!b.observed[i][1].item<bool>()) b.features[1][i].zero_();
  }
  b.label = at::tensor({0, 1, 1, 0}, at::kLong);
  return b;
}

TEST(PatchEmbeddingTest, PaddingAndRowMajorPatches) {
  // F = 13, P = 4: patch size ceil(13/4) = 4, three zeros padded at the end.
  PatchEmbedding embed(13, 4, 4);
  EXPECT_EQ(embed->patch_size(), 4);
  {
    torch::NoGradGuard no_grad;
    auto params = embed->named_parameters();
    params["proj.weight"].copy_(at::eye(4));  // output d = input position d of the patch
    params["proj.bias"].zero_();
  }
  at::Tensor x = at::arange(1, 14, at::kFloat).view({1, 13});
  at::Tensor out = embed->forward(x);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 4, 4}));
  // Patch p holds features p*4 .. p*4+3 (values 1..13, then three padded zeros).
  at::Tensor expected = at::cat({at::arange(1, 14, at::kFloat), at::zeros({3})}).view({1, 4, 4});
  EXPECT_TRUE(at::equal(out, expected)) << out;
}

TEST(FeatureTokensTest, EachPatchIsTheMeanOfItsFeaturesTokens) {
  // F = 5, P = 3: patch size 2; patch 2 holds feature 4 only.
  config::Modality modality;
  modality.set_encoder(config::FEATURE_TOKENS);
  config::ModelConfig m = TinyModel(0.0);
  m.set_patches(3);
  m.set_hidden_dim(4);
  torch::manual_seed(1);
  auto encoder = MakeEncoder(modality, EncoderData{5, {}, {}}, m, 0);
  auto params = encoder->named_parameters();
  const at::Tensor w = params["weight"], b = params["bias"];
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{5, 4}));
  EXPECT_LE(w.abs().max().item<float>(), 0.5f);  // 1/sqrt(D)
  at::Tensor x = at::randn({2, 5}, at::TensorOptions().requires_grad(false));
  at::Tensor out = encoder->Encode(x, {}, false);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 3, 4}));
  for (int i = 0; i < 2; ++i) {
    auto token = [&](int f) { return at::gelu(x[i][f] * w[f] + b[f]); };
    EXPECT_TRUE(at::allclose(out[i][0], (token(0) + token(1)) / 2));
    EXPECT_TRUE(at::allclose(out[i][1], (token(2) + token(3)) / 2));
    EXPECT_TRUE(at::allclose(out[i][2], token(4)));
  }
  // More patches than features: the empty patches are zeros.
  m.set_patches(8);
  auto wide = MakeEncoder(modality, EncoderData{5, {}, {}}, m, 0);
  at::Tensor sparse = wide->Encode(x, {}, false);
  ASSERT_EQ(sparse.sizes(), (std::vector<int64_t>{2, 8, 4}));
  EXPECT_TRUE(at::equal(sparse.slice(1, 5), at::zeros({2, 3, 4})));
  out.sum().backward();
  for (const auto& p : encoder->parameters()) ASSERT_TRUE(p.grad().defined());
}

TEST(PiecewiseLinearTokensTest, BinCoordinatesOfTheQuantileEdges) {
  // Feature 0: bins [0, 1], [1, 2], [2, 4]; feature 1 (binary): one bin [0, 1], two empty.
  config::Modality modality;
  modality.set_encoder(config::PIECEWISE_LINEAR);
  config::ModelConfig m = TinyModel(0.0);
  m.set_patches(2);  // one feature per patch
  m.set_hidden_dim(4);
  torch::manual_seed(1);
  EncoderData data{2, {}, {0, 1, 2, 4, 0, 1, 1, 1}};
  auto encoder = MakeEncoder(modality, data, m, 0);
  auto params = encoder->named_parameters();
  const at::Tensor w = params["weight"], b = params["bias"];
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{2, 3, 4}));
  at::Tensor x = at::tensor({1.5f, 1.0f, -1.0f, 0.0f, 10.0f, 3.0f}).view({3, 2});
  at::Tensor out = encoder->Encode(x, {}, false);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 2, 4}));
  // Below the first bin and above the last the coordinates are not clamped.
  const float e0[3][3] = {{1, 0.5f, 0}, {-1, 0, 0}, {1, 1, 4}};
  const float e1[3][3] = {{1, 0, 0}, {0, 0, 0}, {3, 0, 0}};
  for (int i = 0; i < 3; ++i) {
    at::Tensor token0 =
        at::relu(at::matmul(at::tensor(std::vector<float>(e0[i], e0[i] + 3)), w[0]) + b[0]);
    at::Tensor token1 =
        at::relu(at::matmul(at::tensor(std::vector<float>(e1[i], e1[i] + 3)), w[1]) + b[1]);
    EXPECT_TRUE(at::allclose(out[i][0], token0)) << i;
    EXPECT_TRUE(at::allclose(out[i][1], token1)) << i;
  }
  out.sum().backward();
  for (const auto& p : encoder->parameters()) ASSERT_TRUE(p.grad().defined());
  // Edges that do not match the features are refused (data prepared without them).
  EXPECT_THROW(MakeEncoder(modality, {3, {}, {0, 1, 2, 4}}, m, 0), Error);
  EXPECT_THROW(MakeEncoder(modality, {2, {}, {}}, m, 0), Error);
}

TEST(PeriodicTokensTest, SinesAndCosinesOfLearnedFrequencies) {
  config::Modality modality;
  modality.set_encoder(config::PERIODIC);
  config::ModelConfig m = TinyModel(0.0);
  m.set_patches(3);
  m.set_hidden_dim(4);
  m.set_periodic_frequencies(5);
  m.set_periodic_sigma(0.5);
  torch::manual_seed(1);
  auto encoder = MakeEncoder(modality, EncoderData{3, {}, {}}, m, 0);
  auto params = encoder->named_parameters();
  const at::Tensor c = params["frequency"], w = params["weight"], b = params["bias"];
  ASSERT_EQ(c.sizes(), (std::vector<int64_t>{3, 5}));
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{3, 10, 4}));
  at::Tensor x = at::randn({2, 3});
  at::Tensor out = encoder->Encode(x, {}, false);
  for (int i = 0; i < 2; ++i) {
    for (int f = 0; f < 3; ++f) {
      at::Tensor v = c[f] * x[i][f] * (2 * M_PI);
      at::Tensor token = at::relu(at::matmul(at::cat({at::sin(v), at::cos(v)}), w[f]) + b[f]);
      EXPECT_TRUE(at::allclose(out[i][f], token, 1e-5, 1e-6)) << i << " " << f;
    }
  }
  out.sum().backward();
  ASSERT_TRUE(c.grad().defined());
}

TEST(FlexMoeModelTest, TheWidePartStartsAtZeroAndSeesTheObservedFeatures) {
  // The same seed: every other parameter drawn as without it, and the wide part at zero,
  // so the first logits are the same.
  config::ModelConfig plain = TinyModel(0.0), wide = TinyModel(0.0);
  wide.set_wide(true);
  torch::manual_seed(1);
  FlexMoeModel a(plain, ModelShape{{3, 5}, 2, {}, {}, {}}, 1);
  torch::manual_seed(1);
  FlexMoeModel b(wide, ModelShape{{3, 5}, 2, {}, {}, {}}, 1);
  a->eval();
  b->eval();
  BatchTensors batch = TinyBatch(at::kFloat);
  EXPECT_TRUE(at::equal(a->Forward(batch, {}, false).logits, b->Forward(batch, {}, false).logits));
  auto params = b->named_parameters();
  ASSERT_TRUE(params.contains("wide.weight"));
  EXPECT_EQ(params["wide.weight"].sizes(), (std::vector<int64_t>{2, 3 + 5 + 2}));
  // Its input: the features (zeros where missing, whatever the batch holds there) and the
  // observed flags.
  {
    torch::NoGradGuard no_grad;
    params["wide.weight"].fill_(1);
  }
  BatchTensors dirty = batch;
  dirty.features = {batch.features[0].clone(), batch.features[1].clone()};
  dirty.features[0][2].fill_(100);  // sample 2 lacks modality 0
  const at::Tensor clean_logits = b->Forward(batch, {}, false).logits;
  EXPECT_TRUE(at::allclose(b->Forward(dirty, {}, false).logits, clean_logits));
  const at::Tensor shift = clean_logits - a->Forward(batch, {}, false).logits;
  for (int i = 0; i < 4; ++i) {
    const double expected = batch.features[0][i].sum().item<double>() +
                            batch.features[1][i].sum().item<double>() +
                            batch.observed[i].sum().item<double>();
    EXPECT_NEAR(shift[i][0].item<double>(), expected, 1e-4) << i;
  }
}

TEST(FlexMoeModelTest, BankFillsExactlyTheMissingPairs) {
  torch::manual_seed(1);
  FlexMoeModel model(TinyModel(0.0), ModelShape{{3, 5}, 2, {}, {}, {}}, 1);
  BatchTensors batch = TinyBatch(at::kFloat);
  at::Tensor tokens = model->Embed(batch).view({4, 2, 2, 8});
  at::Tensor bank = model->bank();
  ASSERT_EQ(bank.sizes(), (std::vector<int64_t>{3, 2, 2, 8}));
  for (int b = 0; b < 4; ++b) {
    for (int m = 0; m < 2; ++m) {
      int64_t c = batch.combination[b].item<int64_t>();
      at::Tensor got = tokens[b][m];
      if (batch.observed[b][m].item<bool>()) {
        at::Tensor encoded =
            model->encoder(m).Encode(batch.features[m].narrow(0, b, 1), {}, false)[0];
        // The encoder's GEMM on one row may round differently from the batch's (oneDNN
        // picks its kernel by shape), so observed pairs match to float precision; the
        // bank's rows below are copies and match exactly.
        EXPECT_TRUE(at::allclose(got, encoded, 1e-5, 1e-6)) << "sample " << b << " modality " << m;
      } else {
        EXPECT_TRUE(at::equal(got, bank[c][m])) << "sample " << b << " modality " << m;
      }
    }
  }
}

TEST(FlexMoeModelTest, ZeroBankModeFillsZeros) {
  config::ModelConfig m = TinyModel(0.0);
  m.set_bank_mode(config::ModelConfig::ZERO);
  FlexMoeModel model(m, ModelShape{{3, 5}, 2, {}, {}, {}}, 1);
  at::Tensor tokens = model->Embed(TinyBatch(at::kFloat)).view({4, 2, 2, 8});
  EXPECT_TRUE(at::equal(tokens[1][1], at::zeros({2, 8})));
  EXPECT_TRUE(at::equal(tokens[2][0], at::zeros({2, 8})));
  EXPECT_FALSE(model->bank().defined());
}

TEST(KeyedDropoutTest, MasksDependOnTheSampleNotItsPosition) {
  StepKey key{7, 1, 3, {10, 20}};
  StepKey swapped{7, 1, 3, {20, 10}};
  at::Tensor a = KeyedTensor(key, RandomSite::kResidual1, 0, {5, 6}, KeyedKind::kMask, 0.5);
  at::Tensor b = KeyedTensor(swapped, RandomSite::kResidual1, 0, {5, 6}, KeyedKind::kMask, 0.5);
  EXPECT_TRUE(at::equal(a[0], b[1]));
  EXPECT_TRUE(at::equal(a[1], b[0]));
  EXPECT_FALSE(at::equal(a[0], a[1]));
  // Values are 0 or 1/(1-p).
  EXPECT_TRUE(at::logical_or(a.eq(0), a.eq(2)).all().item<bool>());
  double kept = a.ne(0).to(at::kDouble).mean().item<double>();
  EXPECT_GT(kept, 0.25);
  EXPECT_LT(kept, 0.75);
}

// Central differences in double precision, on a sample of entries of every parameter,
// through the task loss plus the router loss with fixed dropout masks and router noise.
TEST(FlexMoeModelTest, FiniteDifferenceGradientsOfEveryParameterGroup) {
  torch::manual_seed(3);
  FlexMoeModel model(TinyModel(0.2), ModelShape{{3, 5}, 2, {}, {}, {}}, 3);
  model->to(at::kDouble);
  BatchTensors batch = TinyBatch(at::kDouble);
  StepKey key{11, 0, 0, {0, 1, 2, 3}};
  auto loss_fn = [&]() {
    ModelOutput out = model->Forward(batch, key, /*training=*/true);
    return at::nll_loss(at::log_softmax(out.logits, -1), batch.label) + 0.01 * out.aux_loss;
  };
  model->zero_grad();
  loss_fn().backward();
  std::map<std::string, int> checked_groups;
  const double eps = 1e-6;
  for (auto& item : model->named_parameters()) {
    at::Tensor p = item.value();
    at::Tensor grad = p.grad();
    ASSERT_TRUE(grad.defined()) << item.key();
    at::Tensor flat = p.view({-1});
    int64_t n = flat.numel();
    int64_t stride = std::max<int64_t>(1, n / 12);
    for (int64_t i = 0; i < n; i += stride) {
      double original = flat[i].item<double>();
      double plus, minus;
      {
        torch::NoGradGuard no_grad;
        flat[i].fill_(original + eps);
        plus = loss_fn().item<double>();
        flat[i].fill_(original - eps);
        minus = loss_fn().item<double>();
        flat[i].fill_(original);
      }
      double numeric = (plus - minus) / (2 * eps);
      double analytic = grad.view({-1})[i].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-6 + 1e-4 * std::fabs(numeric))
          << item.key() << "[" << i << "]";
    }
    std::string group = item.key().substr(0, item.key().find('.'));
    if (item.key().find("moe.router") != std::string::npos) group = "router";
    if (item.key().find("moe.experts") != std::string::npos) group = "experts";
    if (item.key().find(".q.") != std::string::npos || item.key().find(".kv.") != std::string::npos)
      group = "attention";
    checked_groups[group]++;
  }
  for (const char* group : {"encoder0", "encoder1", "bank", "pos_embed", "attention", "router",
                            "experts", "head0", "head1"}) {
    EXPECT_GT(checked_groups[group], 0) << group;
  }
}

TEST(FlexMoeModelTest, FiniteDifferenceGradientsOfFeatureTokens) {
  torch::manual_seed(4);
  std::vector<config::Modality> modalities(2);
  modalities[1].set_encoder(config::FEATURE_TOKENS);
  FlexMoeModel model(TinyModel(0.0), ModelShape{{3, 5}, 2, modalities, {}, {}}, 3);
  model->to(at::kDouble);
  BatchTensors batch = TinyBatch(at::kDouble);
  StepKey key{11, 0, 0, {0, 1, 2, 3}};
  auto loss = [&]() {
    ModelOutput out = model->Forward(batch, key, /*training=*/false);
    return at::nll_loss(at::log_softmax(out.logits, -1), batch.label);
  };
  model->zero_grad();
  loss().backward();
  int checked = 0;
  for (auto& item : model->named_parameters()) {
    if (item.key().rfind("encoder1.", 0) != 0) continue;
    at::Tensor flat = item.value().view({-1});
    for (int64_t i = 0; i < flat.numel(); i += 3) {
      const double original = flat[i].item<double>();
      double plus, minus;
      {
        torch::NoGradGuard no_grad;
        flat[i].fill_(original + 1e-6);
        plus = loss().item<double>();
        flat[i].fill_(original - 1e-6);
        minus = loss().item<double>();
        flat[i].fill_(original);
      }
      const double numeric = (plus - minus) / 2e-6;
      EXPECT_NEAR(item.value().grad().view({-1})[i].item<double>(), numeric,
                  1e-6 + 1e-4 * std::fabs(numeric))
          << item.key() << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

TEST(Cnn3dEncoderTest, ShapesKeyedChannelDropoutAndGradients) {
  config::Modality image;
  image.set_encoder(config::CNN3D);
  for (int side : {24, 24, 25}) image.add_volume_shape(side);
  config::ModelConfig m = TinyModel(0.0);
  torch::manual_seed(0);
  auto encoder = MakeEncoder(image, EncoderData{24 * 24 * 25, {}, {}}, m, 0);
  at::Tensor x = at::randn({2, 24 * 24 * 25});
  at::Tensor eval = encoder->Encode(x, {}, false);
  ASSERT_EQ(eval.sizes(), (std::vector<int64_t>{2, 2, 8}));
  StepKey key{3, 0, 0, {7, 8}};
  at::Tensor a = encoder->Encode(x, key, true);
  at::Tensor b = encoder->Encode(x, key, true);
  EXPECT_TRUE(at::equal(a, b));  // the same key gives the same channel masks
  a.sum().backward();
  for (const auto& p : encoder->parameters()) {
    ASSERT_TRUE(p.grad().defined());
  }
  // A volume that does not match the prepared feature count is refused.
  EXPECT_THROW(MakeEncoder(image, EncoderData{1000, {}, {}}, m, 0), Error);
}

TEST(Cnn3dEncoderTest, MaskedFeaturesEncodeAsTheirZeroFilledVolume) {
  config::Modality image;
  image.set_encoder(config::CNN3D);
  for (int side : {24, 24, 25}) image.add_volume_shape(side);
  config::ModelConfig m = TinyModel(0.0);
  const std::vector<int64_t> voxels = {0, 17, 5000, 9999, 24 * 24 * 25 - 1};
  torch::manual_seed(5);
  auto masked = MakeEncoder(image, EncoderData{5, voxels, {}}, m, 0);
  torch::manual_seed(5);
  auto whole = MakeEncoder(image, EncoderData{24 * 24 * 25, {}, {}}, m, 0);
  at::Tensor x = at::randn({2, 5});
  at::Tensor volume = at::zeros({2, 24 * 24 * 25});
  volume.index_copy_(1, at::tensor(voxels, at::kLong), x);
  EXPECT_TRUE(at::allclose(masked->Encode(x, {}, false), whole->Encode(volume, {}, false)));
  // As many voxels as features, each inside the volume.
  EXPECT_THROW(MakeEncoder(image, EncoderData{4, voxels, {}}, m, 0), Error);
  EXPECT_THROW(MakeEncoder(image, EncoderData{1, {24 * 24 * 25}, {}}, m, 0), Error);
}

}  // namespace
}  // namespace flexmoe
