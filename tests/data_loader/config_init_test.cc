// `flexmoe init`'s config from a wide CSV (data_loader/config_init.h): the grouping from a
// modalities.json or from prefixes, the classes found, the unlisted columns excluded, the
// config prepared as written, and every bad input named.
#include "data_loader/config_init.h"

#include <gtest/gtest.h>

#include "cluster/base/error.h"
#include "data_loader/prepare.h"
#include "proto/config_loader.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

// 6 rows; "lab" is missing in rows 2 and 5; "note" and "site" are in no modality.
const char kCsv[] =
    "pid,age,sex,hr_min,hr_max,lact,note,site,dead\n"
    "1,70,1,60,90,2.1,x,a,1\n"
    "2,55,0,70,95,,y,b,0\n"
    "3,61,1,58,88,1.5,,a,0\n"
    "4,80,0,65,110,3.3,z,b,1\n"
    "5,47,1,75,99,,,a,0\n"
    "6,66,0,62,93,1.9,w,b,1\n";

std::string ErrorOf(const InitOptions& options) {
  try {
    InitConfig(options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Files {
  testing::TempDir dir;
  InitOptions options;
  Files() {
    options.input = dir.Write("t.csv", kCsv);
    options.modalities_json = dir.Write(
        "m.json", R"({"static": ["age", "sex"], "vitals": ["hr_min", "hr_max"], "lab": ["lact"]})");
    options.id_column = "pid";
    options.label_column = "dead";
  }
};

TEST(ConfigInitTest, ModalitiesJsonGivesAConfigThatPrepares) {
  Files f;
  f.options.prepared_dir = f.dir.Path("prepared");
  const InitResult result = InitConfig(f.options);
  EXPECT_EQ(result.rows, 6);
  EXPECT_EQ(result.unlisted, (std::vector<std::string>{"note", "site"}));
  const config::DataConfig& data = result.config.data();
  ASSERT_EQ(data.modalities_size(), 3);  // in the file's order
  EXPECT_EQ(data.modalities(0).name(), "static");
  EXPECT_EQ(data.modalities(2).name(), "lab");
  EXPECT_EQ(data.modalities(1).columns_size(), 2);
  EXPECT_EQ(data.modalities(1).encoder(), config::PERIODIC);
  EXPECT_TRUE(data.missing_indicators());
  EXPECT_EQ(data.num_classes(), 2);
  EXPECT_EQ(std::vector<std::string>(data.exclude_columns().begin(), data.exclude_columns().end()),
            (std::vector<std::string>{"note", "site"}));
  // Three modalities: one expert per combination, resolved.
  EXPECT_EQ(result.config.model().num_experts(), 7);
  // The comments say what each modality observes and what was left out.
  EXPECT_NE(result.text.find("observed in 4 of 6 rows (66.7%)"), std::string::npos);
  EXPECT_NE(result.text.find("2 that no modality lists"), std::string::npos);
  // The written text is a config as it stands: parsed, prepared.
  const config::Config parsed = ParseConfig(result.text, "init.textproto", {});
  const PrepareResult prepared = PrepareDataset(parsed, f.dir.Path("prepared"), nullptr);
  EXPECT_EQ(prepared.meta.num_samples(), 6u);
  EXPECT_EQ(prepared.meta.modalities(1).feature_names_size(), 2);
  // PERIODIC needs no bins; a PIECEWISE_LINEAR modality gets edges for every feature (16
  // bins + 1 each).
  EXPECT_EQ(prepared.meta.modalities(1).bin_edges_size(), 0);
  config::Config binned = parsed;
  binned.mutable_data()->mutable_modalities(1)->set_encoder(config::PIECEWISE_LINEAR);
  const PrepareResult ple = PrepareDataset(binned, f.dir.Path("prepared-ple"), nullptr);
  EXPECT_EQ(ple.meta.modalities(1).bin_edges_size(), 2 * 17);
}

TEST(ConfigInitTest, PrefixesAndNamedClasses) {
  Files f;
  const std::string csv = f.dir.Write("named.csv",
                                      "id,hr_a,hr_b,bp_a,label\n"
                                      "1,1,2,3,alive\n2,4,5,,dead\n3,7,8,9,alive\n");
  InitOptions options;
  options.input = csv;
  options.groups = {"heart=hr_", "pressure=bp_"};
  const InitResult result = InitConfig(options);
  const config::DataConfig& data = result.config.data();
  ASSERT_EQ(data.modalities_size(), 2);
  EXPECT_EQ(data.modalities(0).columns(0), "hr_*");
  EXPECT_EQ(data.num_classes(), 2);
  EXPECT_EQ(std::vector<std::string>(data.class_names().begin(), data.class_names().end()),
            (std::vector<std::string>{"alive", "dead"}));
  EXPECT_TRUE(result.unlisted.empty());
}

TEST(ConfigInitTest, BadInputIsNamed) {
  {
    Files f;
    f.options.modalities_json = f.dir.Write("bad.json", R"({"static": ["age", "weight"]})");
    EXPECT_NE(ErrorOf(f.options).find("column 'weight' of modality 'static' is not in the header"),
              std::string::npos);
  }
  {
    Files f;
    f.options.modalities_json = f.dir.Write("twice.json", R"({"a": ["age"], "b": ["age"]})");
    EXPECT_NE(ErrorOf(f.options).find("column 'age' is in modality 'a' and in modality 'b'"),
              std::string::npos);
  }
  {
    Files f;
    f.options.modalities_json = f.dir.Write("id.json", R"({"a": ["pid"]})");
    EXPECT_NE(ErrorOf(f.options).find("is the id, the label or excluded"), std::string::npos);
  }
  {
    Files f;
    f.options.modalities_json = f.dir.Write("notjson.json", "{\"a\": [");
    EXPECT_NE(ErrorOf(f.options).find("not JSON"), std::string::npos);
  }
  {
    Files f;
    f.options.modalities_json.clear();
    f.options.groups = {"x=zz_"};
    EXPECT_NE(ErrorOf(f.options).find("no feature column starts with 'zz_'"), std::string::npos);
    f.options.groups = {"nameonly"};
    EXPECT_NE(ErrorOf(f.options).find("expected NAME=PREFIX"), std::string::npos);
    f.options.groups.clear();
    EXPECT_NE(ErrorOf(f.options).find("one of them"), std::string::npos);
  }
  {
    Files f;
    f.options.label_column = "outcome";
    EXPECT_NE(ErrorOf(f.options).find(":1: the label (--label) column 'outcome' is not in"),
              std::string::npos);
  }
  {
    Files f;
    f.options.input = f.dir.Write("empty_label.csv",
                                  "pid,age,sex,hr_min,hr_max,lact,dead\n"
                                  "1,70,1,60,90,2.1,1\n2,55,0,70,95,,\n");
    EXPECT_NE(ErrorOf(f.options).find("empty_label.csv:3: empty label"), std::string::npos);
  }
  {
    Files f;
    f.options.input = f.dir.Write("no_lab.csv",
                                  "pid,age,sex,hr_min,hr_max,lact,dead\n"
                                  "1,70,1,60,90,,1\n2,55,0,70,95,,0\n");
    EXPECT_NE(ErrorOf(f.options).find("modality 'lab' is empty in every row"), std::string::npos);
  }
}

TEST(ConfigInitTest, PrepareRefusesAColumnNoModalityListsAsPredictDoes) {
  // One rule for preparation and prediction: the CSV's "note" and "site" must be excluded.
  Files f;
  InitResult result = InitConfig(f.options);
  config::Config config = result.config;
  config.mutable_data()->clear_exclude_columns();
  config.mutable_data()->set_prepared_dir(f.dir.Path("p"));
  try {
    PrepareDataset(config, f.dir.Path("p"), nullptr);
    FAIL() << "prepared a CSV with columns in no modality";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "2 columns are in no modality and not excluded ('note', 'site')"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace flexmoe
