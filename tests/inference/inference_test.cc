// Scoring exports in process: predict against the model's own forward on rows missing
// different modalities (layout A and a wide CSV), probabilities that sum to 1, refusals
// of bad input with no output written, the ensemble as the mean of its members, the
// calibrated probabilities, and an attribution of exactly zero when the bank entry is the
// subject's own encoded tokens.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/utils.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cluster/base/error.h"
#include "data_loader/combinations.h"
#include "data_loader/csv_reader.h"
#include "data_loader/decoded_dataset.h"
#include "data_loader/epoch_plan.h"
#include "data_loader/prepare.h"
#include "data_loader/shard.h"
#include "data_loader/synth.h"
#include "inference/loaded_model.h"
#include "inference/predict.h"
#include "inference/scorer.h"
#include "proto/config_loader.h"
#include "tests/testing/temp_dir.h"
#include "trainer/checkpoint/best_export.h"
#include "trainer/model/model.h"
#include "trainer/train/evaluate.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;

// Rows of a predict CSV by id: every field after the id.
std::map<std::string, std::vector<std::string>> ReadRows(const std::string& path,
                                                         std::vector<std::string>* header) {
  CsvReader csv(path);
  std::vector<std::string_view> fields;
  std::map<std::string, std::vector<std::string>> rows;
  bool first = true;
  while (csv.Next(&fields)) {
    std::vector<std::string> values(fields.begin(), fields.end());
    if (first) {
      *header = values;
      first = false;
      continue;
    }
    rows[values[0]] = std::vector<std::string>(values.begin() + 1, values.end());
  }
  return rows;
}

class InferenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    config_ = new config::Config(
        LoadConfig(std::string(FLEXMOE_SOURCE_DIR) + "/configs/quickstart.textproto",
                   {"data.input=" + dir_->Path("raw"),
                    "data.prepared_dir=" + dir_->Path("prepared"), "synth.num_samples=400"}));
    GenerateSynthetic(*config_, config_->data().input());
    PrepareDataset(*config_, config_->data().prepared_dir(), nullptr);
    prepared_ = new PreparedDataset(PreparedDataset::Open(config_->data().prepared_dir()));
    data_ = new DecodedDataset(*prepared_);
  }
  static void TearDownTestSuite() {
    delete data_;
    delete prepared_;
    delete config_;
    delete dir_;
  }

  // An export of a freshly initialised model (seed `seed`) with `temperature`.
  static std::string Export(uint64_t seed, double temperature = 1.0) {
    torch::manual_seed(static_cast<int64_t>(seed));
    ModelShape shape{data_->feature_sizes(),
                     prepared_->meta.num_classes(),
                     {config_->data().modalities().begin(), config_->data().modalities().end()},
                     {},
                     {}};
    FlexMoeModel model(config_->model(), shape, static_cast<int64_t>(seed));
    CheckpointInfo info;
    info.seed = seed;
    info.config_text = ConfigToText(*config_);
    info.temperature = temperature;
    info.dataset_text = DatasetMetaText(prepared_->meta);
    const std::string dir = dir_->Path("export-" + std::to_string(seed) + "-" +
                                       std::to_string(static_cast<int>(temperature * 100)));
    SaveCheckpoint(model->Parameters(), info, dir);
    return dir;
  }

  // The model's own probabilities for every prepared sample, by id.
  static std::map<std::string, std::vector<float>> Forward(LoadedModel& model,
                                                           double temperature = 1.0) {
    torch::NoGradGuard no_grad;
    std::vector<uint32_t> all(prepared_->size());
    for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    DecodedBatch batch = data_->Gather(all);
    BatchTensors t = ToTensors(batch, data_->feature_sizes());
    at::Tensor logits = model.model->Forward(t, StepKey{}, false).logits;
    at::Tensor p =
        at::softmax(logits.to(at::kDouble) / temperature, -1).to(at::kFloat).contiguous();
    std::map<std::string, std::vector<float>> by_id;
    const int k = model.num_classes();
    for (uint32_t i = 0; i < all.size(); ++i) {
      by_id[prepared_->index.id(i)] =
          std::vector<float>(p.data_ptr<float>() + i * k, p.data_ptr<float>() + (i + 1) * k);
    }
    return by_id;
  }

  static PredictSummary RunPredict(const std::vector<std::string>& exports,
                                   const std::string& input, const std::string& out,
                                   ScoreOptions score = {}) {
    std::vector<LoadedModel> models;
    for (const auto& e : exports) models.push_back(LoadModel(e));
    std::vector<LoadedModel*> members;
    for (auto& m : models) members.push_back(&m);
    PredictOptions options;
    options.input = input;
    options.out = out;
    options.score = score;
    options.batch_rows = 37;  // batches that do not divide the rows
    return Predict(members, options);
  }

  static std::string ExpectRefused(const std::string& input, const std::string& needle) {
    const std::string out = dir_->Path("refused.csv");
    std::string message;
    try {
      RunPredict({Export(1)}, input, out);
      ADD_FAILURE() << "predict accepted " << input;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      message = e.what();
      EXPECT_NE(message.find(needle), std::string::npos) << message;
    }
    EXPECT_FALSE(fs::exists(out)) << "partial output left";
    for (const auto& entry : fs::directory_iterator(dir_->path())) {
      EXPECT_EQ(entry.path().filename().string().find("refused.csv.tmp"), std::string::npos);
    }
    return message;
  }

  static testing::TempDir* dir_;
  static config::Config* config_;
  static PreparedDataset* prepared_;
  static DecodedDataset* data_;
};
testing::TempDir* InferenceTest::dir_ = nullptr;
config::Config* InferenceTest::config_ = nullptr;
PreparedDataset* InferenceTest::prepared_ = nullptr;
DecodedDataset* InferenceTest::data_ = nullptr;

TEST_F(InferenceTest, PredictMatchesTheForwardOnRowsMissingDifferentModalities) {
  const std::string dir = Export(1);
  LoadedModel model = LoadModel(dir);
  const auto expected = Forward(model);
  const std::string out = dir_->Path("pred.csv");
  PredictSummary summary = RunPredict({dir}, config_->data().input(), out);
  EXPECT_EQ(summary.rows, 400);
  EXPECT_EQ(summary.without_modality, 0);
  std::vector<std::string> header;
  auto rows = ReadRows(out, &header);
  ASSERT_EQ(header.size(), 1 + 3 + 1u);
  EXPECT_EQ(header[0], "id");
  EXPECT_EQ(header[1], prepared_->meta.class_names(0));
  EXPECT_EQ(header.back(), "modalities");
  std::map<int, int> by_size;  // modalities per row -> rows compared
  for (const auto& [id, want] : expected) {
    ASSERT_TRUE(rows.count(id)) << id;
    const auto& got = rows[id];
    double sum = 0;
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(std::stof(got[k]), want[k], 1e-6) << id;
      sum += std::stod(got[k]);
    }
    EXPECT_NEAR(sum, 1.0, 1e-6) << id;
    const std::string& modalities = got.back();
    ++by_size[1 + static_cast<int>(std::count(modalities.begin(), modalities.end(), '+'))];
  }
  // Every combination size, down to subjects with one modality only.
  EXPECT_GT(by_size[1], 0);
  EXPECT_GT(by_size[2], 0);
  EXPECT_GT(by_size[4], 0);
}

TEST_F(InferenceTest, PredictComputesTheMissingIndicatorsAsPreparationDid) {
  // data.missing_indicators: the model's inputs carry "<feature>:missing"; predict on the raw
  // input gives the forward on the prepared records.
  config::Config config = *config_;
  config.mutable_data()->set_missing_indicators(true);
  config.mutable_data()->set_prepared_dir(dir_->Path("prepared-indicators"));
  PrepareDataset(config, config.data().prepared_dir(), nullptr);
  PreparedDataset prepared = PreparedDataset::Open(config.data().prepared_dir());
  DecodedDataset data(prepared);
  int indicators = 0;
  for (const auto& m : prepared.meta.modalities()) indicators += m.indicator_of_size();
  ASSERT_GT(indicators, 0);
  torch::manual_seed(4);
  ModelShape shape{data.feature_sizes(),
                   prepared.meta.num_classes(),
                   {config.data().modalities().begin(), config.data().modalities().end()},
                   {},
                   {}};
  FlexMoeModel model(config.model(), shape, 4);
  CheckpointInfo info;
  info.config_text = ConfigToText(config);
  info.dataset_text = DatasetMetaText(prepared.meta);
  SaveCheckpoint(model->Parameters(), info, dir_->Path("export-indicators"));
  RunPredict({dir_->Path("export-indicators")}, config.data().input(),
             dir_->Path("pred-indicators.csv"));
  std::vector<std::string> header;
  auto rows = ReadRows(dir_->Path("pred-indicators.csv"), &header);
  torch::NoGradGuard no_grad;
  std::vector<uint32_t> all(prepared.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  BatchTensors t = ToTensors(data.Gather(all), data.feature_sizes());
  at::Tensor p = at::softmax(model->Forward(t, StepKey{}, false).logits, -1).contiguous();
  for (uint32_t i = 0; i < all.size(); ++i) {
    const auto& got = rows.at(prepared.index.id(i));
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(std::stof(got[k]), p[i][k].item<float>(), 1e-6) << prepared.index.id(i);
    }
  }
}

TEST_F(InferenceTest, WideCsvWithMissingModalitiesAndARowWithNone) {
  // Three subjects of the raw data as one wide CSV (blank where a modality is missing),
  // plus a subject with nothing: the same probabilities as layout A, the empty row kept.
  const std::string dir = Export(1);
  LoadedModel model = LoadModel(dir);
  const auto expected = Forward(model);
  std::vector<std::string> ids;
  std::map<std::string, std::string> combination;
  for (uint32_t i = 0; i < prepared_->size() && ids.size() < 6; ++i) {
    ids.push_back(prepared_->index.id(i));
  }
  // Read each modality table of the raw data.
  std::ostringstream csv;
  csv << "id";
  std::vector<std::map<std::string, std::string>> tables(model.num_modalities());
  for (int m = 0; m < model.num_modalities(); ++m) {
    for (const auto& f : model.dataset.modalities(m).feature_names()) csv << "," << f;
    std::ifstream in(config_->data().input() + "/" + config_->data().modalities(m).file());
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      tables[m][line.substr(0, line.find(','))] = line.substr(line.find(',') + 1);
    }
  }
  csv << "\n";
  for (const auto& id : ids) {
    csv << id;
    for (int m = 0; m < model.num_modalities(); ++m) {
      auto it = tables[m].find(id);
      if (it != tables[m].end()) {
        csv << "," << it->second;
      } else {
        csv << std::string(model.dataset.modalities(m).feature_names_size(), ',');
      }
    }
    csv << "\n";
  }
  csv << "nobody";
  for (int m = 0; m < model.num_modalities(); ++m) {
    csv << std::string(model.dataset.modalities(m).feature_names_size(), ',');
  }
  csv << "\n";
  const std::string input = dir_->Write("wide.csv", csv.str());
  const std::string out = dir_->Path("wide-pred.csv");
  PredictSummary summary = RunPredict({dir}, input, out);
  EXPECT_EQ(summary.rows, 7);
  EXPECT_EQ(summary.without_modality, 1);
  std::vector<std::string> header;
  auto rows = ReadRows(out, &header);
  ASSERT_EQ(rows.size(), 7u);
  for (const auto& id : ids) {
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(std::stof(rows[id][k]), expected.at(id)[k], 1e-6);
  }
  EXPECT_EQ(rows["nobody"], (std::vector<std::string>{"", "", "", "none"}));
}

TEST_F(InferenceTest, BadInputIsRefusedNamingFileLineAndColumnWithoutOutput) {
  const std::string header = [] {
    std::string h = "id";
    for (const auto& m : prepared_->meta.modalities()) {
      for (const auto& f : m.feature_names()) h += "," + f;
    }
    return h;
  }();
  const int width = static_cast<int>(std::count(header.begin(), header.end(), ','));
  auto row = [&](const std::string& id, const std::string& first) {
    return id + "," + first + std::string(width - 1, ',') + "\n";
  };
  // An earlier output at the path stays as it was.
  const std::string out = dir_->Write("refused.csv", "earlier\n");
  fs::remove(out);
  // Duplicate ids.
  ExpectRefused(
      dir_->Write("dup.csv", header + "\n" + row("a", "1") + row("b", "2") + row("a", "3")),
      "dup.csv:4: duplicate id 'a'");
  // A non-numeric value.
  const std::string first_feature = prepared_->meta.modalities(0).feature_names(0);
  ExpectRefused(dir_->Write("text.csv", header + "\n" + row("a", "high")),
                "text.csv:2: column '" + first_feature + "': 'high' is not a number");
  // A missing column (a feature renamed), and an unknown one.
  std::string renamed = header;
  renamed.replace(renamed.find(first_feature), first_feature.size(), "surprise");
  ExpectRefused(dir_->Write("renamed.csv", renamed + "\n" + row("a", "1")),
                "renamed.csv:1: column '" + first_feature + "'");
  ExpectRefused(dir_->Write("extra.csv", header + ",surprise\n" + row("a", "1,2")),
                "extra.csv:1: 1 column is in no modality and not excluded ('surprise')");
  // A layout that differs from training: layout A with a modality's columns swapped.
  const std::string raw = config_->data().input();
  const std::string swapped = dir_->Path("swapped");
  fs::create_directories(swapped);
  for (const auto& entry : fs::directory_iterator(raw)) {
    fs::copy_file(entry.path(), swapped + "/" + entry.path().filename().string());
  }
  const std::string file = config_->data().modalities(1).file();
  std::ifstream in(swapped + "/" + file);
  std::string first_line, rest, line;
  std::getline(in, first_line);
  while (std::getline(in, line)) rest += line + "\n";
  in.close();
  const auto& names = prepared_->meta.modalities(1).feature_names();
  std::string bad = first_line;
  const size_t a = bad.find("," + names[0] + ","), b = bad.find("," + names[1] + ",");
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  bad = "id," + names[1] + "," + names[0] + bad.substr(b + names[1].size() + 1);
  std::ofstream(swapped + "/" + file) << bad << "\n" << rest;
  ExpectRefused(swapped, file + ":1: modality '" + prepared_->meta.modalities(1).name() +
                             "' feature 1: column '" + names[1] + "'");
  // An earlier file at --out survives a refused run.
  dir_->Write("refused.csv", "earlier\n");
  try {
    RunPredict({Export(1)}, dir_->Path("dup.csv"), out);
  } catch (const Error&) {
  }
  std::ifstream kept(out);
  std::string content((std::istreambuf_iterator<char>(kept)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "earlier\n");
  fs::remove(out);
}

TEST_F(InferenceTest, EnsembleIsTheMeanOfItsMembers) {
  const std::string a = Export(1), b = Export(2), c = Export(3);
  const std::string input = config_->data().input();
  RunPredict({a}, input, dir_->Path("a.csv"));
  RunPredict({b}, input, dir_->Path("b.csv"));
  RunPredict({c}, input, dir_->Path("c.csv"));
  RunPredict({a, b, c}, input, dir_->Path("abc.csv"));
  std::vector<std::string> header;
  auto ra = ReadRows(dir_->Path("a.csv"), &header), rb = ReadRows(dir_->Path("b.csv"), &header),
       rc = ReadRows(dir_->Path("c.csv"), &header), rabc = ReadRows(dir_->Path("abc.csv"), &header);
  ASSERT_EQ(rabc.size(), 400u);
  bool members_differ = false;
  for (const auto& [id, got] : rabc) {
    for (int k = 0; k < 3; ++k) {
      const double mean = (std::stod(ra[id][k]) + std::stod(rb[id][k]) + std::stod(rc[id][k])) / 3;
      EXPECT_NEAR(std::stod(got[k]), mean, 1e-6) << id;
      members_differ =
          members_differ || std::abs(std::stod(ra[id][k]) - std::stod(rb[id][k])) > 1e-3;
    }
  }
  EXPECT_TRUE(members_differ);
}

TEST_F(InferenceTest, CalibratedPredictionsUseTheStoredTemperature) {
  const std::string dir = Export(1, 2.0);
  LoadedModel model = LoadModel(dir);
  EXPECT_DOUBLE_EQ(model.info.temperature, 2.0);
  const auto expected = Forward(model, 2.0);
  ScoreOptions score;
  score.calibrated = true;
  RunPredict({dir}, config_->data().input(), dir_->Path("calibrated.csv"), score);
  std::vector<std::string> header;
  auto rows = ReadRows(dir_->Path("calibrated.csv"), &header);
  for (const auto& [id, want] : expected) {
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(std::stof(rows[id][k]), want[k], 1e-6) << id;
  }
}

TEST_F(InferenceTest, AttributionIsZeroWhenTheBankEntryIsTheSubjectsOwnTokens) {
  LoadedModel model = LoadModel(Export(1));
  // A full-modality subject and a single-modality one.
  uint32_t full = 0, single = 0;
  const int c_count = (1 << model.num_modalities()) - 1;
  for (uint32_t i = 0; i < prepared_->size(); ++i) {
    if (prepared_->index.combination(i) == 0) full = i;
    if (static_cast<int>(prepared_->index.combination(i)) == c_count - 1) single = i;
  }
  ASSERT_EQ(prepared_->index.combination(full), 0u);
  DecodedBatch batch = data_->Gather({full});
  const int m = 2;  // the combination without modality 2: {0, 1, 3}
  const int64_t without = Combinations(model.num_modalities()).Index(0b1011);
  ScoreOptions explain;
  explain.explain = true;
  BatchScores before = ScoreBatch({&model}, batch, explain);
  for (int j = 0; j < model.num_modalities(); ++j) {
    EXPECT_FALSE(std::isnan(before.attribution[j])) << j;
  }
  EXPECT_NE(before.attribution[m], 0.0f);
  {
    torch::NoGradGuard no_grad;
    BatchTensors t = ToTensors(batch, data_->feature_sizes());
    at::Tensor own = model.model->encoder(m).Encode(t.features[m], StepKey{}, false);  // [1, P, D]
    model.model->bank()[without][m].copy_(own[0]);
  }
  BatchScores after = ScoreBatch({&model}, batch, explain);
  EXPECT_EQ(after.attribution[m], 0.0f);
  EXPECT_EQ(after.attribution[0], before.attribution[0]);  // other modalities' banks untouched
  EXPECT_EQ(after.probs, before.probs);
  // One modality only: nothing to compare with.
  BatchScores one = ScoreBatch({&model}, data_->Gather({single}), explain);
  for (float a : one.attribution) EXPECT_TRUE(std::isnan(a));
  // A combination without training samples has an untrained bank: no attribution to it.
  model.dataset.mutable_summary()->mutable_splits(0)->set_per_combination(without, 0);
  BatchScores untrained = ScoreBatch({&model}, batch, explain);
  EXPECT_TRUE(std::isnan(untrained.attribution[m]));
  EXPECT_EQ(untrained.attribution[0], before.attribution[0]);
}

TEST_F(InferenceTest, FindExportsResolvesRunDirectories) {
  const std::string run = dir_->Path("run");
  fs::create_directories(run + "/seed-2");
  fs::create_directories(run + "/seed-1");
  const std::string e = Export(1);
  fs::copy(e, run + "/seed-2/checkpoint");
  fs::copy(e, run + "/seed-1/checkpoint");
  EXPECT_EQ(FindExports(run),
            (std::vector<std::string>{run + "/seed-1/checkpoint", run + "/seed-2/checkpoint"}));
  EXPECT_EQ(FindExports(run + "/seed-1"), (std::vector<std::string>{run + "/seed-1/checkpoint"}));
  EXPECT_EQ(FindExports(e), (std::vector<std::string>{e}));
  EXPECT_THROW(FindExports(dir_->Path("nothing")), Error);
}

}  // namespace
}  // namespace flexmoe
