// flexmoe eval, predict and report through the command line on a quickstart run trained by
// `flexmoe train`: eval reproduces training's test table from the export, the report's
// figures are valid PNGs (drawn at the end of training and again by `flexmoe report`),
// predict writes probabilities with --calibrated --explain, and bad input exits 2 naming
// file and line with no output file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;
using testing::RunCommand;

const std::string kBinary = FLEXMOE_BINARY;
const std::string kSource = FLEXMOE_SOURCE_DIR;
const std::vector<std::string> kEnv = {"OMPI_ALLOW_RUN_AS_ROOT=1",
                                       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "OMP_NUM_THREADS=1"};

// The lines from the table header ("group ...") to its "overall" row.
std::string Table(const std::string& output) {
  const size_t begin = output.rfind("\ngroup ");
  if (begin == std::string::npos) return "";
  const size_t overall = output.find("\noverall", begin);
  if (overall == std::string::npos) return "";
  return output.substr(begin + 1, output.find('\n', overall + 1) - begin - 1);
}

// A PNG's width and height from its IHDR chunk, after checking the signature; {0, 0} when
// the file is not a PNG.
std::pair<uint32_t, uint32_t> PngSize(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char head[24] = {};
  in.read(reinterpret_cast<char*>(head), sizeof(head));
  const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!in || std::memcmp(head, signature, 8) != 0 || std::memcmp(head + 12, "IHDR", 4) != 0) {
    return {0, 0};
  }
  auto be = [&](int at) {
    return (uint32_t{head[at]} << 24) | (uint32_t{head[at + 1]} << 16) |
           (uint32_t{head[at + 2]} << 8) | head[at + 3];
  };
  return {be(16), be(20)};
}

class InferenceCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const std::vector<std::string> set = {"--set", "data.input=" + dir_->Path("raw"),
                                          "--set", "data.prepared_dir=" + dir_->Path("prepared"),
                                          "--set", "run.dir=" + dir_->Path("run"),
                                          "--set", "training.epochs=3",
                                          "--set", "synth.num_samples=600"};
    const std::string config = kSource + "/configs/quickstart.textproto";
    for (const char* command : {"synth", "prepare", "train"}) {
      std::vector<std::string> argv = {kBinary, command, "--config", config};
      argv.insert(argv.end(), set.begin(), set.end());
      if (std::string(command) == "train") argv.insert(argv.end(), {"--workers", "2"});
      auto r = RunCommand(argv, 300, kEnv);
      ASSERT_EQ(r.exit_code, 0) << command << ": " << r.output;
      if (std::string(command) == "train") *train_output_ = r.output;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  static testing::TempDir* dir_;
  static std::string* train_output_;
};
testing::TempDir* InferenceCliTest::dir_ = nullptr;
std::string* InferenceCliTest::train_output_ = new std::string;

TEST_F(InferenceCliTest, EvalReproducesTrainingsTestTable) {
  const std::string trained = Table(*train_output_);
  ASSERT_FALSE(trained.empty()) << *train_output_;
  auto r = RunCommand(
      {kBinary, "eval", "--checkpoint", dir_->Path("run"), "--out", dir_->Path("eval.json")}, 120,
      kEnv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Table(r.output), trained) << r.output;
  EXPECT_NE(r.output.find("expected calibration error"), std::string::npos) << r.output;
  std::ifstream in(dir_->Path("eval.json"));
  nlohmann::json json = nlohmann::json::parse(in);
  EXPECT_EQ(json["samples"].get<int>(), json["overall"]["count"].get<int>());
  EXPECT_TRUE(json["overall"]["ece"].is_number());
  EXPECT_GT(json["temperature"].get<double>(), 0);
  EXPECT_EQ(json["per_combination"].size(), 15u);
  EXPECT_TRUE(json["per_combination"][0]["mean_abs_attribution"]["image"].is_number());
  EXPECT_EQ(json["expert_tokens"][0].size(), 15u);
  // The validation split and a bad split name.
  r = RunCommand({kBinary, "eval", "--checkpoint", dir_->Path("run"), "--split", "validation",
                  "--no-explain", "--out", dir_->Path("val.json")},
                 120, kEnv);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = RunCommand({kBinary, "eval", "--checkpoint", dir_->Path("run"), "--split", "tset"}, 60, kEnv);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("'tset'"), std::string::npos) << r.output;
}

TEST_F(InferenceCliTest, ReportFiguresAreValidPngs) {
  const std::vector<std::string> figures = {"expert_activation", "curves", "combination_metrics",
                                            "reliability", "attribution"};
  // Drawn at the end of training.
  for (const auto& name : figures) {
    auto [w, h] = PngSize(dir_->Path("run/report/" + name + ".png"));
    EXPECT_GT(w, 100u) << name << "\n" << *train_output_;
    EXPECT_GT(h, 100u) << name;
  }
  // Again by flexmoe report, which evaluates the test split first when eval/ is gone.
  fs::remove_all(dir_->Path("run/report"));
  fs::remove_all(dir_->Path("run/eval"));
  auto r = RunCommand({kBinary, "report", dir_->Path("run")}, 120, kEnv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("report: 5 figures"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_->Path("run/eval/test.json")));
  for (const auto& name : figures) {
    auto [w, h] = PngSize(dir_->Path("run/report/" + name + ".png"));
    EXPECT_GT(w, 100u) << name;
    EXPECT_GT(h, 100u) << name;
  }
  r = RunCommand({kBinary, "report", dir_->Path("nothing")}, 60, kEnv);
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST_F(InferenceCliTest, ScikitLearnBaselinesAndTheirMetricsCheckedAgainstEval) {
  // bench/baselines.py on the same split (layout A, three classes), and scikit-learn's
  // metrics on flexmoe's own test predictions equal to flexmoe eval's.
  auto r = RunCommand({kBinary, "eval", "--checkpoint", dir_->Path("run"), "--no-explain", "--out",
                       dir_->Path("check.json")},
                      120, kEnv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunCommand({kBinary, "predict", "--checkpoint", dir_->Path("run"), "--input",
                  dir_->Path("raw"), "--out", dir_->Path("plain.csv")},
                 120, kEnv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunCommand(
      {"/usr/bin/python3", kSource + "/bench/baselines.py", "--prepared", dir_->Path("prepared"),
       "--check-eval", dir_->Path("check.json"), "--check-predictions", dir_->Path("plain.csv")},
      300, kEnv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("logreg (C="), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("hgb (learning_rate="), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("check: flexmoe's test predictions"), std::string::npos) << r.output;
}

// Peak resident memory of `flexmoe predict` on a wide CSV of `rows` random rows (KiB).
long PredictPeakKib(const std::string& dir, int rows) {
  std::string header = "id", line;
  for (const char* m : {"image", "genomic", "clinical", "biospecimen"}) {
    std::ifstream in(dir + "/raw/" + m + ".csv");
    std::getline(in, line);
    header += line.substr(line.find(','));
  }
  const int width = static_cast<int>(std::count(header.begin(), header.end(), ','));
  const std::string path = dir + "/rows-" + std::to_string(rows) + ".csv";
  {
    std::ofstream out(path);
    out << header << "\n";
    uint64_t state = 7;
    for (int r = 0; r < rows; ++r) {
      out << "r" << r;
      for (int j = 0; j < width; ++j) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        // A quarter of the values missing, so that rows miss different modalities.
        out << "," << ((state >> 62) == 0 ? "" : std::to_string((state >> 40) % 1000 / 250.0 - 2));
      }
      out << "\n";
    }
  }
  auto r = RunCommand({"/usr/bin/time", "-f", "peak %M", kBinary, "predict", "--checkpoint",
                       dir + "/run", "--input", path, "--out", path + ".pred"},
                      300, kEnv);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.rfind("peak ");
  return at == std::string::npos ? -1 : std::stol(r.output.substr(at + 5));
}

TEST_F(InferenceCliTest, PredictMemoryIsFlatInTheRows) {
  // 8x the rows, the same peak memory within 64 MiB: a per-row allocation between the
  // batches' tensors once grew it by 206 MiB here (~15 KiB a row); flat runs measured 13-31
  // MiB of allocator noise.
  const long small = PredictPeakKib(dir_->path(), 2000);
  const long large = PredictPeakKib(dir_->path(), 16000);
  ASSERT_GT(small, 0);
  ASSERT_GT(large, 0);
  std::cout << "predict peak memory: 2,000 rows " << small << " KiB, 16,000 rows " << large
            << " KiB\n";
  EXPECT_LT(large - small, 64 * 1024);
}

TEST_F(InferenceCliTest, PythonReadsTheExport) {
  auto r = RunCommand(
      {"/usr/bin/python3", kSource + "/launch/read_checkpoint.py", dir_->Path("run/checkpoint")},
      120, kEnv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("every file verified"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bank: [15, 4,"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("layer0.moe.experts.w1: [16,"), std::string::npos) << r.output;
}

TEST_F(InferenceCliTest, PredictWritesProbabilitiesAndRefusesBadInput) {
  const std::string out = dir_->Path("pred.csv");
  auto r = RunCommand({kBinary, "predict", "--checkpoint", dir_->Path("run"), "--input",
                       dir_->Path("raw"), "--out", out, "--calibrated", "--explain"},
                      120, kEnv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("predicted 600 of 600 rows"), std::string::npos) << r.output;
  std::ifstream in(out);
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(header,
            "id,A,B,C,attribution_image,attribution_genomic,attribution_clinical,"
            "attribution_biospecimen,modalities");
  // Duplicate ids in labels.csv: exit 2 naming file and line, no output file.
  const std::string dup = dir_->Path("dup");
  fs::copy(dir_->Path("raw"), dup);
  {
    std::ifstream labels(dup + "/labels.csv");
    std::string first, second;
    std::getline(labels, first);
    std::getline(labels, second);
    labels.close();
    std::ofstream(dup + "/labels.csv", std::ios::app) << second << "\n";
  }
  const std::string refused = dir_->Path("refused.csv");
  r = RunCommand(
      {kBinary, "predict", "--checkpoint", dir_->Path("run"), "--input", dup, "--out", refused},
      120, kEnv);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("labels.csv:602: duplicate id"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(refused));
  // A wide CSV whose columns are not the trained features.
  const std::string wide = dir_->Write("wide.csv", "id,image_0,genomic_0\nS1,1,2\n");
  r = RunCommand(
      {kBinary, "predict", "--checkpoint", dir_->Path("run"), "--input", wide, "--out", refused},
      120, kEnv);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("wide.csv:1:"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(refused));
}

}  // namespace
}  // namespace flexmoe
