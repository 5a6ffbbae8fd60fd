// Config loading: defaults made explicit, --set overrides, and errors naming the file,
// line and field.
#include "proto/config_loader.h"

#include <gtest/gtest.h>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

const char kBase[] = R"(data {
  layout: PER_MODALITY_CSV
  input: "in"
  modalities { name: "a" }
  modalities { name: "b" scaling: MINMAX }
}
model {
  num_experts: 4
  top_k: 2
}
)";

std::string ErrorOf(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    ParseConfig(text, "c.textproto", overrides);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  return "";
}

TEST(ConfigLoaderTest, DefaultsAreFilledAndDerived) {
  config::Config c = ParseConfig(kBase, "c.textproto", {});
  // The default recipe (docs/recipe.md).
  EXPECT_EQ(c.model().patches(), 4);
  EXPECT_EQ(c.model().hidden_dim(), 64);
  EXPECT_TRUE(c.model().wide());
  EXPECT_DOUBLE_EQ(c.training().lr(), 5e-4);
  EXPECT_EQ(c.training().warmup_epochs(), 3);
  EXPECT_EQ(c.training().selection(), config::TrainingConfig::AUC);
  EXPECT_EQ(c.training().early_stopping_patience(), 6);
  // Derived: the seeds from seed and ensemble_size.
  EXPECT_EQ(std::vector<uint64_t>(c.training().seeds().begin(), c.training().seeds().end()),
            (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(c.training().has_cross_fit() && c.training().cross_fit());
  EXPECT_EQ(c.data().modalities(0).file(), "a.csv");
  EXPECT_EQ(c.data().modalities(0).scaling(), config::STANDARD);
  EXPECT_EQ(c.data().modalities(1).scaling(), config::MINMAX);
  EXPECT_EQ(c.data().modalities(0).fill(), config::AUTO);
  std::string text = ConfigToText(c);
  EXPECT_NE(text.find("gate_loss_weight: 0.001"), std::string::npos) << text;
  EXPECT_NE(text.find("collective_timeout_s: 300"), std::string::npos) << text;
}

TEST(ConfigLoaderTest, ExpertsAndSeedsFollowFromOtherFields) {
  // num_experts 0: one per combination (2 modalities: 3), at least top_k.
  const char kDerived[] = R"(data {
  layout: PER_MODALITY_CSV
  input: "in"
  modalities { name: "a" }
  modalities { name: "b" }
  modalities { name: "c" }
}
training { seed: 7 ensemble_size: 2 }
)";
  config::Config c = ParseConfig(kDerived, "c.textproto", {});
  EXPECT_EQ(c.model().num_experts(), 7);
  EXPECT_EQ(std::vector<uint64_t>(c.training().seeds().begin(), c.training().seeds().end()),
            (std::vector<uint64_t>{7, 8}));
  c = ParseConfig(kDerived, "c.textproto", {"model.top_k=9"});
  EXPECT_EQ(c.model().num_experts(), 9);
  // Seeds given: ensemble_size is their number; a resolved config parses to itself.
  c = ParseConfig(kDerived, "c.textproto", {"training.seeds=[3, 4, 5]"});
  EXPECT_EQ(c.training().ensemble_size(), 3);
  const config::Config again = ParseConfig(ConfigToText(c), "resolved.textproto", {});
  EXPECT_EQ(ConfigToText(again), ConfigToText(c));
  EXPECT_NE(ErrorOf(kDerived, {"training.ensemble_size=0", "training.seeds="})
                .find("training.ensemble_size"),
            std::string::npos);
  // Cross-fitting follows the seeds unless set: one fold per seed needs two or more.
  EXPECT_TRUE(c.training().cross_fit());
  c = ParseConfig(kDerived, "c.textproto", {"training.seeds=[3]"});
  EXPECT_TRUE(c.training().has_cross_fit());
  EXPECT_FALSE(c.training().cross_fit());
  c = ParseConfig(kDerived, "c.textproto", {"training.cross_fit=false"});
  EXPECT_FALSE(c.training().cross_fit());
  EXPECT_NE(ErrorOf(kDerived, {"training.seeds=[3]", "training.cross_fit=true"})
                .find("training.cross_fit"),
            std::string::npos);
}

TEST(ConfigLoaderTest, OverridesSetScalarsEnumsAndRepeatedElements) {
  config::Config c = ParseConfig(
      kBase, "c.textproto",
      {"training.epochs=3", "training.warmup_epochs=1", "data.modalities[1].scaling=NO_SCALING",
       "run.dir=/tmp/x", "training.class_weights=0.25,0.75", "data.modalities[1].name=bee"});
  EXPECT_EQ(c.training().epochs(), 3);
  EXPECT_EQ(c.data().modalities(1).scaling(), config::NO_SCALING);
  EXPECT_EQ(c.data().modalities(1).name(), "bee");
  EXPECT_EQ(c.run().dir(), "/tmp/x");
  ASSERT_EQ(c.training().class_weights_size(), 2);
  EXPECT_DOUBLE_EQ(c.training().class_weights(1), 0.75);
}

TEST(ConfigLoaderTest, AStarSetsEveryElementOfAList) {
  config::Config c =
      ParseConfig(kBase, "c.textproto", {"data.modalities[*].encoder=FEATURE_TOKENS"});
  ASSERT_EQ(c.data().modalities_size(), 2);
  for (const auto& m : c.data().modalities()) EXPECT_EQ(m.encoder(), config::FEATURE_TOKENS);
  EXPECT_NE(ErrorOf(kBase, {"data.modalitiez[*].encoder=PATCH"}).find("no field 'modalitiez'"),
            std::string::npos);
  EXPECT_NE(ErrorOf(kBase, {"training.epochs[*]=3"}).find("not a list"), std::string::npos);
  EXPECT_NE(ErrorOf(kBase, {"data.modalities[*].encoder=NOPE"}).find("data.modalities[0].encoder"),
            std::string::npos);
}

TEST(ConfigLoaderTest, SyntaxErrorNamesFileAndLine) {
  std::string text = kBase;
  text += "training {\n  epochs: three\n}\n";
  std::string message = ErrorOf(text);
  EXPECT_NE(message.find("c.textproto:12:"), std::string::npos) << message;
}

TEST(ConfigLoaderTest, UnknownFieldNamesFileAndLine) {
  std::string message = ErrorOf(std::string(kBase) + "training { expertz: 3 }\n");
  EXPECT_NE(message.find("c.textproto:11:"), std::string::npos) << message;
  EXPECT_NE(message.find("expertz"), std::string::npos) << message;
}

TEST(ConfigLoaderTest, ValidationErrorNamesLineAndField) {
  std::string text = kBase;
  text.replace(text.find("num_experts: 4"), 14, "num_experts: 2");
  std::string message = ErrorOf(text);
  EXPECT_NE(message.find("c.textproto:8: field model.num_experts"), std::string::npos) << message;
  EXPECT_NE(message.find("at least 3 experts"), std::string::npos) << message;

  message = ErrorOf(kBase, {"model.num_heads=5"});
  EXPECT_NE(message.find("field model.num_heads"), std::string::npos) << message;

  // BF16 is built for CPU workers only.
  message = ErrorOf(kBase, {"training.precision=BF16", "training.device=CUDA"});
  EXPECT_NE(message.find("field training.precision: BF16 is built for CPU workers only"),
            std::string::npos)
      << message;

  std::string dup = kBase;
  dup.replace(dup.find("name: \"b\""), 9, "name: \"a\"");
  message = ErrorOf(dup);
  EXPECT_NE(message.find("c.textproto:5: field data.modalities[1].name: duplicate"),
            std::string::npos)
      << message;
}

TEST(ConfigLoaderTest, BadOverridesAreRefused) {
  EXPECT_NE(ErrorOf(kBase, {"training.epochz=3"}).find("has no field 'epochz'"), std::string::npos);
  EXPECT_NE(ErrorOf(kBase, {"training.epochs=x"}).find("not a valid int32"), std::string::npos);
  EXPECT_NE(ErrorOf(kBase, {"training.epochs"}).find("expected path.to.field=value"),
            std::string::npos);
  EXPECT_NE(ErrorOf(kBase, {"data.modalities.name=x"}).find("is repeated"), std::string::npos);
  EXPECT_NE(ErrorOf(kBase, {"data.modalities[7].name=x"}).find("out of range"), std::string::npos);
}

TEST(ConfigLoaderTest, MissingFileIsNotFound) {
  try {
    LoadConfig("/nonexistent.textproto", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent.textproto"), std::string::npos);
  }
}

}  // namespace
}  // namespace flexmoe
