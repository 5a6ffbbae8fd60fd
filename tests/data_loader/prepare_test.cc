// Dataset preparation on a tiny layout-A fixture with known statistics and combination
// counts, layout B on a gzip wide CSV, and every bad-input case with its message.
#include "data_loader/prepare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "cluster/base/error.h"
#include "data_loader/feature_stats.h"
#include "data_loader/row_batch.h"
#include "data_loader/shard.h"
#include "data_loader/splits.h"
#include "proto/config_loader.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

// Samples a..g. f has no modality (dropped). Training a,b,c,e; validation d; testing f,g.
// Combinations (M = 2): 0 = {m1,m2}, 1 = {m1}, 2 = {m2}.
struct Fixture {
  std::map<std::string, std::string> files = {
      {"labels.csv", "id,label\na,0\nb,1\nc,0\nd,1\ne,0\nf,1\ng,1\n"},
      {"m1.csv", "id,x1,x2\na,1,1.5\nb,3,\nc,5,2.5\nd,7,9.5\ng,2,2\n"},
      {"m2.csv", "id,g\na,0\nc,2\ne,2\nd,2\n"},
      {"splits.json",
       R"({"training": ["a", "b", "c", "e"], "validation": ["d"], "testing": ["f", "g"]})"},
  };
  testing::TempDir dir;

  config::Config Write(const std::string& extra = "") {
    for (const auto& [name, text] : files) dir.Write("in/" + name, text);
    std::string text = "data { layout: PER_MODALITY_CSV input: \"" + dir.Path("in") +
                       "\" modalities { name: \"m1\" } modalities { name: \"m2\" } " + extra +
                       " } model { num_experts: 4 top_k: 2 }";
    return ParseConfig(text, "fixture.textproto", {});
  }
  std::string Out() const { return dir.Path("out"); }
};

std::vector<float> Floats(const std::string& bytes) {
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

TEST(PrepareTest, KnownStatisticsCombinationsAndRecords) {
  Fixture f;
  PrepareResult result = PrepareDataset(f.Write(), f.Out(), nullptr);
  const data::DatasetMeta& meta = result.meta;
  ASSERT_EQ(meta.num_samples(), 6u);
  const auto& summary = meta.summary();
  EXPECT_EQ(summary.rows_read(), 7u);
  ASSERT_EQ(summary.dropped_size(), 1);
  EXPECT_EQ(summary.dropped(0).name(), "no modality observed");
  EXPECT_EQ(summary.dropped(0).count(), 1u);
  // Training: a (0), b (1), c (0), e (2); validation: d (0); testing: g (1).
  EXPECT_EQ(summary.splits(0).samples(), 4u);
  EXPECT_EQ(std::vector<uint64_t>(summary.splits(0).per_combination().begin(),
                                  summary.splits(0).per_combination().end()),
            (std::vector<uint64_t>{2, 1, 1}));
  EXPECT_EQ(summary.splits(1).per_combination(0), 1u);
  EXPECT_EQ(summary.splits(2).per_combination(1), 1u);
  EXPECT_EQ(summary.splits(0).per_class(0), 3u);
  EXPECT_EQ(summary.splits(0).per_class(1), 1u);
  EXPECT_EQ(summary.combination_names(0), "m1+m2");

  // m1 over training rows a, b, c: x1 = 1, 3, 5 (mean 3, population std sqrt(8/3)), coded
  // as integers, so its fill is the mode; x2 = 1.5, 2.5 (mean 2, std 0.5), filled by mean.
  const auto& m1 = meta.modalities(0);
  EXPECT_NEAR(m1.offset(0), 3.0, 1e-6);
  EXPECT_NEAR(m1.scale(0), 1.0 / std::sqrt(8.0 / 3.0), 1e-6);
  EXPECT_TRUE(m1.integer_coded(0));
  EXPECT_FALSE(m1.integer_coded(1));
  EXPECT_NEAR(m1.fill(1), 2.0, 1e-6);
  EXPECT_NEAR(m1.scale(1), 2.0, 1e-6);
  // m2 over training rows a, c, e: g = 0, 2, 2: mode 2, mean 4/3.
  const auto& m2 = meta.modalities(1);
  EXPECT_NEAR(m2.fill(0), 2.0, 1e-6);
  EXPECT_NEAR(m2.offset(0), 4.0 / 3.0, 1e-6);
  // Validation sample d (7, 9.5) is scaled with the training statistics, not its own.
  PreparedDataset dataset = PreparedDataset::Open(f.Out());
  ASSERT_EQ(dataset.size(), 6u);
  std::map<std::string, data::SampleRecord> records;
  for (size_t i = 0; i < dataset.size(); ++i) {
    ShardReader reader(dataset.ShardPath(dataset.index.shard(i)));
    data::SampleRecord record;
    reader.ReadAt(dataset.index.offset(i), &record);
    EXPECT_EQ(record.id(), dataset.index.id(i));
    EXPECT_EQ(record.combination(), dataset.index.combination(i));
    records[record.id()] = record;
  }
  std::vector<float> b = Floats(records["b"].features(0));
  ASSERT_EQ(b.size(), 2u);
  EXPECT_NEAR(b[0], 0.0, 1e-6);
  EXPECT_NEAR(b[1], 0.0, 1e-6);  // the missing x2 became the mean, then 0 after scaling
  EXPECT_TRUE(records["b"].features(1).empty());
  std::vector<float> d = Floats(records["d"].features(0));
  EXPECT_NEAR(d[0], 4.0 / std::sqrt(8.0 / 3.0), 1e-5);
  EXPECT_NEAR(d[1], (9.5 - 2.0) * 2.0, 1e-5);
  EXPECT_EQ(records["e"].combination(), 2u);
}

TEST(PrepareTest, WideCsvGzipWithStratifiedSplitAndExclusions) {
  testing::TempDir dir;
  std::string text = "pid,age,hr_min,hr_max,lact,leak,dead\n";
  for (int i = 0; i < 200; ++i) {
    std::string lact = i % 3 == 0 ? std::to_string(1.0 + i % 7) : "";
    std::string hr =
        i % 5 == 4 ? "," : std::to_string(60 + i % 40) + "," + std::to_string(90 + i % 30);
    text += std::to_string(1000 + i) + "," + std::to_string(20 + i % 60) + "," + hr + "," + lact +
            ",99," + std::to_string(i % 4 == 0 ? 1 : 0) + "\n";
  }
  testing::WriteGzip(dir.Path("wide.csv.gz"), text);
  std::string config_text =
      "data { layout: WIDE_CSV input: \"" + dir.Path("wide.csv.gz") +
      "\" id_column: \"pid\" label_column: \"dead\" exclude_columns: \"leak\" "
      "modalities { name: \"static\" columns: \"age\" } "
      "modalities { name: \"vitals\" columns: \"hr_*\" } "
      "modalities { name: \"lab\" columns: \"lact\" } "
      "split { seed: 3 } } model { num_experts: 7 top_k: 2 }";
  config::Config config = ParseConfig(config_text, "wide.textproto", {});
  PrepareResult result = PrepareDataset(config, dir.Path("out"), nullptr);
  const auto& meta = result.meta;
  EXPECT_EQ(meta.num_samples(), 200u);
  EXPECT_EQ(meta.modalities(1).feature_names_size(), 2);
  EXPECT_EQ(meta.modalities(1).feature_names(1), "hr_max");
  // Stratified 70/15/15 of 50 positives and 150 negatives.
  const auto& s = meta.summary();
  EXPECT_EQ(s.splits(0).per_class(1), 35u);
  EXPECT_EQ(s.splits(0).per_class(0), 105u);
  EXPECT_EQ(s.splits(1).samples() + s.splits(2).samples(), 60u);
  // static+vitals+lab is combination 0; i % 3 == 0 and i % 5 != 4 gives it.
  uint64_t full = 0;
  for (const auto& split : s.splits()) full += split.per_combination(0);
  int expected_full = 0;
  for (int i = 0; i < 200; ++i) expected_full += (i % 3 == 0 && i % 5 != 4);
  EXPECT_EQ(full, static_cast<uint64_t>(expected_full));
  // The same seed gives the same split.
  PrepareResult again = PrepareDataset(config, dir.Path("out2"), nullptr);
  EXPECT_EQ(ReadFile(dir.Path("out/index.pb")), ReadFile(dir.Path("out2/index.pb")));
  // splits.json reproduces the split as a splits file; summary.json names the source's
  // columns and features for tools outside flexmoe.
  config::Config from_file = config;
  from_file.mutable_data()->set_splits_file(dir.Path("out/splits.json"));
  PrepareDataset(from_file, dir.Path("out3"), nullptr);
  EXPECT_EQ(ReadFile(dir.Path("out/index.pb")), ReadFile(dir.Path("out3/index.pb")));
  nlohmann::json summary = nlohmann::json::parse(ReadFile(dir.Path("out/summary.json")));
  EXPECT_EQ(summary["layout"], "WIDE_CSV");
  EXPECT_EQ(summary["id_column"], "pid");
  EXPECT_EQ(summary["label_column"], "dead");
  EXPECT_EQ(summary["modalities"][1]["features"], nlohmann::json::array({"hr_min", "hr_max"}));
  EXPECT_EQ(summary["class_names"], nlohmann::json::array({"0", "1"}));
}

// One table of split names and one writer of splits.json: what it writes reads back, every
// split present, samples of no split left out.
TEST(SplitsFileTest, WrittenAsReadAndNamedByOneTable) {
  EXPECT_STREQ(SplitName(0), "training");
  EXPECT_STREQ(SplitName(2), "testing");
  EXPECT_STREQ(SplitName(kNoSplit), "none");
  EXPECT_EQ(SplitNamed("validation"), 1u);
  EXPECT_EQ(SplitNamed("test"), 2u);
  EXPECT_EQ(SplitNamed("train"), kNoSplit);
  const std::vector<std::string> ids = {"a", "b", "c", "d"};
  const std::vector<uint32_t> split = {1, kNoSplit, 0, 1};
  const std::string text = SplitsJson(
      ids.size(), [&](size_t i) -> const std::string& { return ids[i]; },
      [&](size_t i) { return split[i]; });
  EXPECT_EQ(nlohmann::json::parse(text),
            nlohmann::json::parse(R"({"training": ["c"], "validation": ["a", "d"],
                                     "testing": []})"));
  testing::TempDir dir;
  const auto read =
      ReadSplitsFile(dir.Write("splits.json", text), {{"a", 0}, {"b", 1}, {"c", 2}, {"d", 3}});
  EXPECT_EQ(read, (std::unordered_map<std::string, uint32_t>{{"a", 1}, {"c", 0}, {"d", 1}}));
  // "test" names the split in flags, not in the file.
  EXPECT_THROW(ReadSplitsFile(dir.Write("bad.json", R"({"test": []})"), {}), Error);
}

TEST(QuantileSampleTest, EdgesAtTheQuantilesDeduplicatedAndPadded) {
  QuantileSample ramp;
  for (int v = 1; v <= 100; ++v) ramp.Add(v);
  EXPECT_EQ(ramp.Edges(4), (std::vector<double>{1, 25, 50, 75, 100}));
  QuantileSample binary;
  for (int i = 0; i < 50; ++i) binary.Add(i % 3 == 0 ? 1 : 0);
  EXPECT_EQ(binary.Edges(4), (std::vector<double>{0, 1, 1, 1, 1}));  // one bin, three empty
  EXPECT_TRUE(QuantileSample().Edges(4).empty());
  // More values than the sample holds: bounded, the same every time, near the quantiles.
  QuantileSample a(3), b(3);
  for (int v = 0; v < 300000; ++v) {
    a.Add(v);
    b.Add(v);
  }
  const std::vector<double> edges = a.Edges(4);
  EXPECT_EQ(edges, b.Edges(4));
  EXPECT_NEAR(edges[2], 150000, 3000);
  EXPECT_NEAR(edges[1], 75000, 3000);
}

TEST(PrepareTest, PiecewiseLinearModalitiesGetBinEdgesInThePreparedSpace) {
  Fixture f;
  config::Config config = f.Write("missing_indicators: true quantile_bins: 2");
  config.mutable_data()->mutable_modalities(0)->set_encoder(config::PIECEWISE_LINEAR);
  const data::DatasetMeta meta = PrepareDataset(config, f.Out(), nullptr).meta;
  const auto& m1 = meta.modalities(0);
  // x1, x2 and x2's indicator (b lacks x2): 3 features of 3 edges each.
  ASSERT_EQ(m1.feature_names_size(), 3);
  ASSERT_EQ(m1.bin_edges_size(), 9);
  // x1 over the training split (a, b, c, e: 1, 3, 5 where observed; e lacks m1): the
  // edges 1, 3, 5, standardised with x1's mean and std.
  for (int k = 0; k < 3; ++k) {
    const double raw[] = {1, 3, 5};
    EXPECT_NEAR(m1.bin_edges(k), (raw[k] - m1.offset(0)) * m1.scale(0), 1e-5) << k;
  }
  for (int k = 3; k < 5; ++k) EXPECT_LE(m1.bin_edges(k), m1.bin_edges(k + 1));
  EXPECT_EQ(m1.bin_edges(6), 0.0f);  // the indicator: one bin [0, 1]
  EXPECT_EQ(m1.bin_edges(7), 1.0f);
  EXPECT_EQ(m1.bin_edges(8), 1.0f);
  EXPECT_EQ(meta.modalities(1).bin_edges_size(), 0);  // m2 keeps its patch embedding
}

TEST(PrepareTest, MissingIndicatorsFollowTheFeaturesThatHadMissingValues) {
  // hr always present, bp missing in every third row of an observed modality, lact absent
  // or present as a whole (its modality is then missing, not a missing value).
  testing::TempDir dir;
  std::string text = "id,hr,bp,lact,label\n";
  for (int i = 0; i < 30; ++i) {
    text += "s" + std::to_string(i) + "," + std::to_string(60 + i) + "," +
            (i % 3 == 0 ? "" : std::to_string(100.5 + i)) + "," +
            (i % 2 == 0 ? std::to_string(1 + i % 5) : "") + "," + std::to_string(i % 2) + "\n";
  }
  const std::string input = dir.Write("wide.csv", text);
  std::string config_text =
      "data { layout: WIDE_CSV input: \"" + input +
      "\" missing_indicators: true modalities { name: \"vitals\" columns: [\"hr\", \"bp\"] } "
      "modalities { name: \"lab\" columns: \"lact\" } split { training: 1 validation: 0 "
      "testing: 0 } } model { num_experts: 3 top_k: 1 }";
  config::Config config = ParseConfig(config_text, "indicators.textproto", {});
  PrepareResult result = PrepareDataset(config, dir.Path("out"), nullptr);
  const auto& vitals = result.meta.modalities(0);
  ASSERT_EQ(vitals.feature_names_size(), 3);
  EXPECT_EQ(vitals.feature_names(2), "bp:missing");
  ASSERT_EQ(vitals.indicator_of_size(), 1);
  EXPECT_EQ(vitals.indicator_of(0), 1);
  EXPECT_EQ(InputFeatures(vitals), 2);
  EXPECT_EQ(result.meta.modalities(1).indicator_of_size(), 0);  // lact: never missing inside
  // The records: bp filled with its mean and the indicator set where it was missing.
  PreparedDataset prepared = PreparedDataset::Open(dir.Path("out"));
  ShardReader reader(prepared.ShardPath(0));
  data::SampleRecord record;
  for (int i = 0; i < 3; ++i) {
    reader.ReadAt(prepared.index.offset(i), &record);
    ASSERT_EQ(record.features(0).size(), 3 * sizeof(float));
    const float* f = reinterpret_cast<const float*>(record.features(0).data());
    EXPECT_EQ(f[2], i % 3 == 0 ? 1.0f : 0.0f) << i;
    if (i % 3 == 0) {
      EXPECT_NEAR(f[1], 0.0f, 1e-6) << "the mean, standardised";
    }
  }
  // Off (the default): the input features only.
  config.mutable_data()->set_missing_indicators(false);
  EXPECT_EQ(
      PrepareDataset(config, dir.Path("plain"), nullptr).meta.modalities(0).feature_names_size(),
      2);
}

// Expects preparation to fail with kInvalidArgument/kNotFound and every `parts` in the
// message, and the previous output to stay intact.
void ExpectRefused(Fixture& f, const std::vector<std::string>& parts,
                   ErrorCode code = ErrorCode::kInvalidArgument, const std::string& extra = "") {
  f.dir.Write("out/previous.txt", "keep me");
  try {
    PrepareDataset(f.Write(extra), f.Out(), nullptr);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_EQ(ExitStatusFor(e.code()), 2);
    for (const auto& part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "'" << part << "' not in: " << e.what();
    }
  }
  EXPECT_EQ(ReadFile(f.dir.Path("out/previous.txt")), "keep me");
  for (const auto& entry : std::filesystem::directory_iterator(f.dir.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
  }
}

TEST(PrepareBadInputTest, MalformedLine) {
  Fixture f;
  f.files["m1.csv"] = "id,x1,x2\na,1,1.5\nb,\"3,\n";
  ExpectRefused(f, {"m1.csv:3", "unterminated"});
}

TEST(PrepareBadInputTest, RaggedRow) {
  Fixture f;
  f.files["m1.csv"] = "id,x1,x2\na,1,1.5\nb,3\n";
  ExpectRefused(f, {"m1.csv:3", "ragged row: 2 fields, the header has 3"});
}

TEST(PrepareBadInputTest, NonNumericValue) {
  Fixture f;
  f.files["m2.csv"] = "id,g\na,0\nc,two\n";
  ExpectRefused(f, {"m2.csv:3", "column 'g'", "'two' is not a number"});
}

TEST(PrepareBadInputTest, DuplicateIds) {
  Fixture f;
  f.files["labels.csv"] = "id,label\na,0\nb,1\na,1\n";
  ExpectRefused(f, {"labels.csv:4", "duplicate id 'a'"});
  Fixture g;
  g.files["m2.csv"] = "id,g\na,0\na,1\n";
  ExpectRefused(g, {"m2.csv:3", "duplicate id 'a'"});
}

TEST(PrepareBadInputTest, SplitIdUnknownToLabels) {
  Fixture f;
  f.files["splits.json"] = R"({"training": ["a", "zz"], "validation": [], "testing": []})";
  ExpectRefused(f, {"splits.json", "id 'zz' in 'training' is not among the labelled samples"});
}

TEST(PrepareBadInputTest, IdInTwoSplits) {
  Fixture f;
  f.files["splits.json"] = R"({"training": ["a"], "validation": ["a"], "testing": []})";
  ExpectRefused(f, {"splits.json", "'a' appears in 'training' and in 'validation'"});
}

TEST(PrepareBadInputTest, LabelOutsideClasses) {
  Fixture f;
  f.files["labels.csv"] = "id,label\na,0\nb,2\nc,0\nd,1\ne,0\nf,1\ng,1\n";
  ExpectRefused(f, {"labels.csv:3", "label '2' is not a class in [0, 2)"});
}

TEST(PrepareBadInputTest, ModalityIdNotLabelled) {
  Fixture f;
  f.files["m2.csv"] = "id,g\na,0\nq,1\n";
  ExpectRefused(f, {"m2.csv:3", "id 'q' is not in"});
}

TEST(PrepareBadInputTest, MissingFile) {
  Fixture f;
  f.files.erase("m2.csv");
  ExpectRefused(f, {"m2.csv", "cannot open"}, ErrorCode::kNotFound);
}

TEST(PrepareBadInputTest, MissingWideColumnNamesTheConfigField) {
  testing::TempDir dir;
  dir.Write("w.csv", "id,label,a\n1,0,2\n");
  config::Config config = ParseConfig(
      "data { layout: WIDE_CSV input: \"" + dir.Path("w.csv") +
          "\" modalities { name: \"m\" columns: \"b\" } } model { num_experts: 1 top_k: 1 }",
      "w.textproto", {});
  try {
    PrepareDataset(config, dir.Path("out"), nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("column 'b' (config field data.modalities[0].columns)"),
              std::string::npos)
        << e.what();
  }
}

// A wide CSV is parsed a batch of rows at a time on several threads and only once (the
// later passes read the parsed rows back): the first bad row is still the one named, a
// value that does not parse before a ragged row later in the same batch, and past the
// first batch too.
TEST(PrepareBadInputTest, TheFirstBadRowOfAWideCsvIsNamedWhateverTheBatch) {
  testing::TempDir dir;
  auto prepare = [&](int bad_value_row, int ragged_row) {
    std::string text = "id,label,a,b\n";
    for (int i = 0; i < 5000; ++i) {
      if (i == ragged_row) {
        text += std::to_string(i) + ",0,1\n";
      } else {
        text += std::to_string(i) + ",0," + (i == bad_value_row ? "x" : std::to_string(i % 9)) +
                "," + std::to_string(i % 4) + "\n";
      }
    }
    dir.Write("w.csv", text);
    config::Config config =
        ParseConfig("data { layout: WIDE_CSV input: \"" + dir.Path("w.csv") +
                        "\" modalities { name: \"m\" columns: \"a\" columns: \"b\" } } "
                        "model { num_experts: 1 top_k: 1 }",
                    "w.textproto", {});
    try {
      PrepareDataset(config, dir.Path("out"), nullptr);
      return std::string("no error");
    } catch (const Error& e) {
      return std::string(e.what());
    }
  };
  // Line = row + 2 (the header is line 1).
  EXPECT_NE(prepare(100, 150).find("w.csv:102: column 'a': 'x' is not a number"),
            std::string::npos);
  EXPECT_NE(prepare(150, 100).find("w.csv:102: ragged row"), std::string::npos);
  EXPECT_NE(prepare(4100, 4500).find("w.csv:4102: column 'a'"), std::string::npos);
  EXPECT_NE(prepare(-1, 3000).find("w.csv:3002: ragged row"), std::string::npos);
}

TEST(ParseRowsTest, ManyThreadsThrowTheFirstFailingRowsError) {
  RowTexts texts({0});
  for (int i = 0; i < 1000; ++i) texts.Add(i + 2, {std::string_view("v")});
  std::vector<RawRow> rows;
  auto parse = [](const RowTexts& t, size_t r, RawRow* row) {
    if (r == 700 || r == 300 || r == 301) Fail(ErrorCode::kInvalidArgument, "row ", r);
    row->id = std::to_string(r) + std::string(t.field(r, 0));
  };
  try {
    ParseRows(texts, parse, 4, &rows);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "row 300");
  }
  ParseRows(
      texts, [](const RowTexts& t, size_t r, RawRow* row) { row->id = std::to_string(t.line(r)); },
      4, &rows);
  ASSERT_EQ(rows.size(), 1000u);
  EXPECT_EQ(rows[0].id, "2");
  EXPECT_EQ(rows[999].id, "1001");
}

}  // namespace
}  // namespace flexmoe
