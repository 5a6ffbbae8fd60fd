// tune's pieces in process: space files and their refusals, grid and random trials, the
// stratified fold assignment (test samples in no fold) and its splits files, the best trial
// and the trials CSV.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "tests/testing/temp_dir.h"
#include "tune/folds.h"
#include "tune/search_space.h"
#include "tune/tune_results.h"

namespace flexmoe {
namespace {

std::string WriteSpace(const testing::TempDir& dir, const std::string& text) {
  const std::string path = dir.Path("space.textproto");
  WriteFileAtomically(path, text);
  return path;
}

// The message of LoadSpace's error on `text`, "" when it loads.
std::string SpaceError(const std::string& text) {
  testing::TempDir dir;
  try {
    LoadSpace(WriteSpace(dir, text));
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  return "";
}

TEST(SpaceTest, RefusesBadSpacesNamingLineOrParam) {
  EXPECT_NE(SpaceError("folds: 3\nparams { feld: \"x\" }\n").find("space.textproto:2:"),
            std::string::npos);
  EXPECT_NE(SpaceError("folds: 3\n").find("no params"), std::string::npos);
  EXPECT_NE(SpaceError("folds: 1 params { field: \"a.b\" values: \"1\" }").find("folds"),
            std::string::npos);
  EXPECT_NE(SpaceError("params { field: \"training.lr\" values: \"1\" min: 1 max: 2 }")
                .find("params[0] (training.lr): give values or min/max"),
            std::string::npos);
  EXPECT_NE(SpaceError("params { field: \"training.lr\" min: 1 max: 2 }").find("a grid needs"),
            std::string::npos);
  EXPECT_NE(SpaceError("search: RANDOM params { field: \"training.lr\" min: 0 max: 2 "
                       "log_scale: true }")
                .find("log_scale needs min > 0"),
            std::string::npos);
  EXPECT_NE(SpaceError("search: RANDOM params { field: \"training.lr\" min: 3 max: 2 }")
                .find("min <= max"),
            std::string::npos);
  EXPECT_NE(SpaceError("params { field: \"a\" values: \"1\" } params { field: \"a\" values: "
                       "\"2\" }")
                .find("params[1] (a): the field appears twice"),
            std::string::npos);
  EXPECT_NE(SpaceError("params { values: \"1\" }").find("params[0] (no field)"), std::string::npos);
  EXPECT_EQ(SpaceError("params { field: \"a\" values: \"1\" }"), "");
}

TEST(SpaceTest, GridVariesTheFirstParamSlowestAndStopsAtTrials) {
  tune::Space space;
  auto* a = space.add_params();
  a->set_field("model.hidden_dim");
  a->add_values("16");
  a->add_values("32");
  auto* b = space.add_params();
  b->set_field("training.lr");
  for (const char* v : {"1e-3", "1e-4", "1e-5"}) b->add_values(v);
  EXPECT_EQ(GridSize(space), 6);
  std::vector<Trial> all = MakeTrials(space, 100);
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all[0].overrides,
            (std::vector<std::string>{"model.hidden_dim=16", "training.lr=1e-3"}));
  EXPECT_EQ(all[1].overrides,
            (std::vector<std::string>{"model.hidden_dim=16", "training.lr=1e-4"}));
  EXPECT_EQ(all[3].overrides,
            (std::vector<std::string>{"model.hidden_dim=32", "training.lr=1e-3"}));
  EXPECT_EQ(all[5].number, 6);
  EXPECT_EQ(MakeTrials(space, 4).size(), 4u);
  EXPECT_EQ(OverrideValue(all[5].overrides[1]), "1e-5");
}

TEST(SpaceTest, RandomDrawsAreSeededInRangeAndDistinct) {
  tune::Space space;
  space.set_search(tune::Space::RANDOM);
  space.set_seed(7);
  auto* lr = space.add_params();
  lr->set_field("training.lr");
  lr->set_min(1e-4);
  lr->set_max(1e-2);
  lr->set_log_scale(true);
  auto* layers = space.add_params();
  layers->set_field("training.batch_size");
  layers->set_min(8);
  layers->set_max(64);
  layers->set_integer(true);
  const std::vector<Trial> a = MakeTrials(space, 50), b = MakeTrials(space, 50);
  ASSERT_EQ(a.size(), 50u);
  int below_1e3 = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].overrides, b[i].overrides);
    const double v = std::stod(OverrideValue(a[i].overrides[0]));
    EXPECT_GE(v, 1e-4);
    EXPECT_LE(v, 1e-2);
    below_1e3 += v < 1e-3;
    const std::string n = OverrideValue(a[i].overrides[1]);
    EXPECT_EQ(n.find('.'), std::string::npos) << n;
    EXPECT_GE(std::stoi(n), 8);
    EXPECT_LE(std::stoi(n), 64);
  }
  // Log-uniform: about half the draws lie below the geometric middle.
  EXPECT_GT(below_1e3, 12);
  EXPECT_LT(below_1e3, 38);
  space.set_seed(8);
  EXPECT_NE(MakeTrials(space, 50)[0].overrides, a[0].overrides);
  // Two values, one param: two distinct trials at most.
  tune::Space small;
  small.set_search(tune::Space::RANDOM);
  auto* p = small.add_params();
  p->set_field("model.dropout");
  p->add_values("0.1");
  p->add_values("0.5");
  const std::vector<Trial> few = MakeTrials(small, 10);
  ASSERT_EQ(few.size(), 2u);
  EXPECT_NE(few[0].overrides, few[1].overrides);
}

data::DatasetIndex MakeIndex(int n) {
  data::DatasetIndex index;
  for (int i = 0; i < n; ++i) {
    index.add_id("s" + std::to_string(i));
    index.add_label(i % 7 == 0 ? 1 : 0);  // imbalanced
    index.add_split(i % 10 < 7 ? 0 : (i % 10 < 9 ? 1 : 2));
    index.add_combination(0);
  }
  return index;
}

TEST(FoldsTest, StratifiedFoldsLeaveTheTestSplitOut) {
  const data::DatasetIndex index = MakeIndex(1000);
  const int k = 5;
  const std::vector<int> folds = AssignFolds(index, k, 3);
  std::vector<int> size(k, 0), positives(k, 0);
  for (int i = 0; i < index.id_size(); ++i) {
    if (index.split(i) == 2) {
      EXPECT_EQ(folds[i], -1);
      continue;
    }
    ASSERT_GE(folds[i], 0);
    ASSERT_LT(folds[i], k);
    ++size[folds[i]];
    positives[folds[i]] += index.label(i);
  }
  EXPECT_LE(
      *std::max_element(size.begin(), size.end()) - *std::min_element(size.begin(), size.end()), 1);
  EXPECT_LE(*std::max_element(positives.begin(), positives.end()) -
                *std::min_element(positives.begin(), positives.end()),
            1);
  EXPECT_EQ(AssignFolds(index, k, 3), folds);
  EXPECT_NE(AssignFolds(index, k, 4), folds);

  testing::TempDir dir;
  WriteFoldSplits(index, folds, 2, dir.Path("splits.json"));
  const nlohmann::json splits = nlohmann::json::parse(ReadFile(dir.Path("splits.json")));
  EXPECT_TRUE(splits["testing"].empty());  // the test split is left out of the folds
  std::set<std::string> seen;
  for (const char* part : {"training", "validation"}) {
    for (const auto& id : splits[part]) {
      const int i = std::stoi(id.get<std::string>().substr(1));
      EXPECT_NE(index.split(i), 2u) << id;
      EXPECT_EQ(folds[i] == 2, std::string(part) == "validation") << id;
      EXPECT_TRUE(seen.insert(id.get<std::string>()).second);
    }
  }
  EXPECT_EQ(seen.size(), 900u);
  EXPECT_THROW(AssignFolds(MakeIndex(3), 5, 0), Error);
}

TEST(ResultsTest, BestTrialSkipsFailuresAndCsvShowsEveryTrial) {
  tune::Space space;
  space.set_folds(2);
  space.add_params()->set_field("model.dropout");
  TuneResult result;
  result.metric = "auc";
  for (int t = 0; t < 3; ++t) {
    TrialResult r;
    r.trial.number = t + 1;
    r.trial.overrides = {"model.dropout=0." + std::to_string(t + 1)};
    result.trials.push_back(r);
  }
  result.trials[0].fold_scores = {0.7, 0.8};
  result.trials[0].mean = 0.75;
  result.trials[1].fold_scores = {0.9, NAN};
  result.trials[1].mean = NAN;
  result.trials[1].error = "exited 1";
  result.trials[2].fold_scores = {0.8, 0.76};
  result.trials[2].mean = 0.78;
  result.trials[2].std = 0.02;
  EXPECT_EQ(BestTrial(result.trials), 2);
  EXPECT_EQ(TrialLabel(result.trials[2].trial), "model.dropout=0.3");
  testing::TempDir dir;
  WriteTrialsCsv(result, space, dir.Path("trials.csv"));
  EXPECT_EQ(ReadFile(dir.Path("trials.csv")),
            "trial,model.dropout,fold_1,fold_2,mean_auc,std_auc,status\n"
            "1,0.1,0.7,0.8,0.75,0,done\n"
            "2,0.2,0.9,,,,failed\n"
            "3,0.3,0.8,0.76,0.78,0.02,done\n");
}

}  // namespace
}  // namespace flexmoe
