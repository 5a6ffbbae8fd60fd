// The synthetic generator: combination counts, determinism in the seed, and signal that is
// partly marginal and partly in cross-modality interactions.
#include "data_loader/synth.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "cluster/base/atomic_file.h"
#include "data_loader/csv_reader.h"
#include "data_loader/prepare.h"
#include "data_loader/shard.h"
#include "proto/config_loader.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

config::Config SynthConfig(const std::string& dir, int samples, const std::string& extra = "") {
  return ParseConfig(
      "data { layout: PER_MODALITY_CSV input: \"" + dir +
          "\" num_classes: 2 "
          "modalities { name: \"a\" synth_features: 8 } "
          "modalities { name: \"b\" synth_features: 6 } "
          "modalities { name: \"c\" synth_features: 4 synth_integer_coded: true } } "
          "model { num_experts: 7 top_k: 2 } synth { num_samples: " +
          std::to_string(samples) + " " +
          (extra.find("min_per_combination") == std::string::npos ? "min_per_combination: 20 "
                                                                  : "") +
          extra + " }",
      "synth.textproto", {});
}

TEST(SynthTest, CountsFollowTheFractionsAndMinimum) {
  config::SynthConfig s;
  s.set_num_samples(3000);
  s.set_full_fraction(0.15);
  s.set_single_fraction(0.25);
  s.set_min_per_combination(20);
  std::vector<int> counts = CombinationCounts(s, 4);
  ASSERT_EQ(counts.size(), 15u);
  int total = 0;
  for (int c : counts) {
    EXPECT_GE(c, 20);
    total += c;
  }
  EXPECT_EQ(total, 3000);
  EXPECT_NEAR(counts[0] / 3000.0, 0.15, 0.02);
  EXPECT_NEAR((counts[11] + counts[12] + counts[13] + counts[14]) / 3000.0, 0.25, 0.03);
}

TEST(SynthTest, DeterministicInTheSeed) {
  testing::TempDir dir;
  GenerateSynthetic(SynthConfig(dir.Path("x"), 300), dir.Path("x"));
  GenerateSynthetic(SynthConfig(dir.Path("y"), 300), dir.Path("y"));
  GenerateSynthetic(SynthConfig(dir.Path("z"), 300, "seed: 99"), dir.Path("z"));
  for (const char* file : {"labels.csv", "a.csv", "b.csv", "c.csv", "splits.json"}) {
    EXPECT_EQ(ReadFile(dir.Path(std::string("x/") + file)),
              ReadFile(dir.Path(std::string("y/") + file)));
  }
  EXPECT_NE(ReadFile(dir.Path("x/a.csv")), ReadFile(dir.Path("z/a.csv")));
}

// Class signal: each modality's mean differs between classes; the product of the
// interaction projections of two modalities correlates with the class parity, while each
// projection alone does not.
TEST(SynthTest, MarginalAndInteractionSignal) {
  testing::TempDir dir;
  config::Config config = SynthConfig(dir.Path("d"), 4000,
                                      "full_fraction: 1.0 single_fraction: 0.0 "
                                      "min_per_combination: 0 missing_value_rate: 0");
  GenerateSynthetic(config, dir.Path("d"));
  PrepareResult prepared = PrepareDataset(config, dir.Path("p"), nullptr);
  PreparedDataset dataset = PreparedDataset::Open(dir.Path("p"));
  // Per class mean of modality a's first features, and a linear fit is not needed: compare
  // class means (marginal) and, for the interaction, the class-conditional mean of the
  // product of the (a, b) features' deviations from their class means.
  std::vector<std::vector<float>> a, b;
  std::vector<int> y;
  for (size_t i = 0; i < dataset.size(); ++i) {
    ShardReader reader(dataset.ShardPath(dataset.index.shard(i)));
    data::SampleRecord r;
    reader.ReadAt(dataset.index.offset(i), &r);
    auto to_vec = [](const std::string& s) {
      std::vector<float> v(s.size() / 4);
      std::memcpy(v.data(), s.data(), s.size());
      return v;
    };
    a.push_back(to_vec(r.features(0)));
    b.push_back(to_vec(r.features(1)));
    y.push_back(r.label());
  }
  double marginal = 0;
  for (int j = 0; j < 8; ++j) {
    double sum[2] = {0, 0};
    int n[2] = {0, 0};
    for (size_t i = 0; i < y.size(); ++i) {
      sum[y[i]] += a[i][j];
      n[y[i]]++;
    }
    marginal = std::max(marginal, std::fabs(sum[0] / n[0] - sum[1] / n[1]));
  }
  EXPECT_GT(marginal, 0.3) << "modality a alone should separate the classes";
  // Interaction: centre by class, then the covariance between a-features and b-features
  // has opposite signs for the two classes (parity flips the shared sign).
  double best_flip = 0;
  for (int j = 0; j < 8; ++j) {
    for (int k = 0; k < 6; ++k) {
      double mean_a[2] = {0, 0}, mean_b[2] = {0, 0}, cov[2] = {0, 0};
      int n[2] = {0, 0};
      for (size_t i = 0; i < y.size(); ++i) {
        mean_a[y[i]] += a[i][j];
        mean_b[y[i]] += b[i][k];
        n[y[i]]++;
      }
      for (int c = 0; c < 2; ++c) {
        mean_a[c] /= n[c];
        mean_b[c] /= n[c];
      }
      for (size_t i = 0; i < y.size(); ++i) {
        cov[y[i]] += (a[i][j] - mean_a[y[i]]) * (b[i][k] - mean_b[y[i]]);
      }
      cov[0] /= n[0];
      cov[1] /= n[1];
      if (cov[0] * cov[1] < 0)
        best_flip = std::max(best_flip, std::min(std::fabs(cov[0]), std::fabs(cov[1])));
    }
  }
  EXPECT_GT(best_flip, 0.1) << "the (a, b) interaction should flip sign with the class";
}

}  // namespace
}  // namespace flexmoe
