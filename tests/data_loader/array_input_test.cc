// Array modalities as users write them (tests/data_loader/write_arrays.py, numpy, h5py and
// anndata): a .npy with its ids, an AnnData .h5ad with a CSR matrix and a plain HDF5 dense
// dataset prepare to exactly what the same values in CSV prepare to; broken files are
// refused with exit-2 errors naming the file and what is wrong.
#include <gtest/gtest.h>

#include <cstdlib>

#include "cluster/base/error.h"
#include "data_loader/array_files.h"
#include "data_loader/decoded_dataset.h"
#include "data_loader/prepare.h"
#include "data_loader/shard.h"
#include "proto/config_loader.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

class ArrayInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const std::string command = "/usr/bin/python3 " FLEXMOE_SOURCE_DIR
                                "/tests/data_loader/write_arrays.py " +
                                dir_->Path("in");
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }
  static void TearDownTestSuite() { delete dir_; }

  static config::Config Config(const std::string& variant, const std::string& img,
                               const std::string& gen, const std::string& extra = "") {
    const std::string text = "data { layout: PER_MODALITY_CSV input: \"" +
                             dir_->Path("in/" + variant) +
                             "\" modalities { name: \"img\" file: \"" + img +
                             "\" } modalities { name: \"gen\" file: \"" + gen + "\" " + extra +
                             " } } model { num_experts: 4 top_k: 2 }";
    return ParseConfig(text, variant + ".textproto", {});
  }
  // Prepares and decodes every sample.
  static DecodedBatch Prepared(const config::Config& config, const std::string& name,
                               data::DatasetMeta* meta) {
    PrepareDataset(config, dir_->Path("out/" + name), nullptr);
    const PreparedDataset prepared = PreparedDataset::Open(dir_->Path("out/" + name));
    *meta = prepared.meta;
    std::vector<uint32_t> all(prepared.size());
    for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    return DecodedDataset(prepared).Gather(all);
  }
  static std::string ErrorOf(const config::Config& config) {
    try {
      PrepareDataset(config, dir_->Path("out/bad"), nullptr);
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == ErrorCode::kInvalidArgument || e.code() == ErrorCode::kNotFound)
          << e.what();  // both exit 2
      return e.what();
    }
    return "(accepted)";
  }
  static testing::TempDir* dir_;
};
testing::TempDir* ArrayInputTest::dir_ = nullptr;

TEST_F(ArrayInputTest, NpyH5adAndHdf5PrepareAsTheirCsv) {
  data::DatasetMeta csv_meta;
  const DecodedBatch csv = Prepared(Config("csv", "img.csv", "gen.csv"), "csv", &csv_meta);
  ASSERT_EQ(csv.size, 6);
  for (const auto& [variant, gen, extra] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"npy", "gen.npy", ""},
           {"h5ad", "gen.h5ad", ""},
           {"dense", "gen.h5", "hdf5_matrix: \"matrix\" hdf5_ids: \"ids\""},
           {"dense", "gen_chunked.h5", "hdf5_matrix: \"matrix\" hdf5_ids: \"ids\""}}) {
    SCOPED_TRACE(variant + "/" + gen);
    data::DatasetMeta meta;
    const DecodedBatch got = Prepared(Config(variant, "img.npy", gen, extra), gen, &meta);
    EXPECT_EQ(got.features, csv.features);
    EXPECT_EQ(got.observed, csv.observed);
    EXPECT_EQ(got.combination, csv.combination);
    EXPECT_EQ(got.label, csv.label);
    for (int m = 0; m < 2; ++m) {
      EXPECT_EQ(meta.modalities(m).feature_names_size(),
                csv_meta.modalities(m).feature_names_size());
      EXPECT_EQ(meta.modalities(m).feature_names(0), csv_meta.modalities(m).feature_names(0));
    }
  }
}

TEST_F(ArrayInputTest, BrokenArraysAreRefusedByNameAndLeakNoDescriptor) {
  const size_t open_before = testing::OpenDescriptors();
  auto bad = [](const std::string& gen, const std::string& extra = "") {
    return ErrorOf(Config("bad", "../npy/img.npy", gen, extra));
  };
  auto expect = [](const std::string& what, const std::vector<std::string>& parts) {
    for (const std::string& part : parts) EXPECT_NE(what.find(part), std::string::npos) << what;
  };
  expect(bad("int.npy"), {"int.npy", "dtype '<i8'", "float32 or float64"});
  expect(bad("flat.npy"), {"flat.npy", "shape (15,)", "two dimensions"});
  expect(bad("fortran.npy"), {"fortran.npy", "Fortran order"});
  expect(bad("short.npy"), {"short.npy", "truncated"});
  expect(bad("dup.npy"), {"dup.ids.txt:4", "duplicate id 's2'"});
  expect(bad("few.npy"), {"few.ids.txt", "3 ids", "5 rows"});
  expect(bad("huge.npy"), {"huge.npy", "shape (4611686018427387904, 4)", "too large"});
  expect(bad("cut.h5ad"), {"cut.h5ad"});
  expect(bad("csc.h5ad"), {"csc.h5ad", "csc_matrix", "only CSR"});
  expect(bad("dup.h5ad"), {"dup.h5ad", "obs/_index[2]", "duplicate id 's2'"});
  expect(bad("text.h5", "hdf5_matrix: \"matrix\" hdf5_ids: \"ids\""),
         {"text.h5", "matrix", "not a numeric dataset"});
  expect(bad("gen.h5ad"), {"gen.h5ad", "cannot open"});
  // Every refusal above closed what it had opened (a .npy refused for its header or its ids
  // once kept its descriptor).
  EXPECT_EQ(testing::OpenDescriptors(), open_before);
}

// A gzip-chunked matrix is read row after row through a chunk cache that holds a row of
// chunks, so that each chunk is decompressed once, not once per row (HDF5's default 1 MB
// cache holds none of these 1.6 MB chunks: prepare of a 4,000 x 1,000 such matrix took
// 152 s, 1.25 s with the cache; bench/hdf5_chunks.sh).
TEST_F(ArrayInputTest, AChunkedMatrixIsReadThroughACacheThatHoldsItsChunks) {
  const auto matrix = OpenHdf5Matrix(dir_->Path("in/dense/big_chunks.h5"), "matrix", "ids", "gen");
  ASSERT_EQ(matrix->rows(), 400u);
  EXPECT_GE(matrix->chunk_cache_bytes(), size_t{400} * 500 * sizeof(double));
  std::vector<double> row(matrix->cols(), 1.0);
  matrix->ReadRow(399, row.data());
  EXPECT_EQ(row, std::vector<double>(500, 0.0));
}

TEST_F(ArrayInputTest, AVolumeMaskPlacesTheFeaturesInTheVolume) {
  auto config = [](const std::string& mask) {
    return ParseConfig("data { layout: PER_MODALITY_CSV input: \"" + dir_->Path("in/npy") +
                           "\" modalities { name: \"img\" file: \"img.npy\" encoder: CNN3D "
                           "volume_shape: [24, 24, 24] volume_mask: \"" +
                           mask + "\" } modalities { name: \"gen\" file: \"gen.npy\" } }",
                       "mask.textproto", {});
  };
  data::DatasetMeta meta;
  Prepared(config("mask.npy"), "mask", &meta);
  EXPECT_EQ(std::vector<int64_t>(meta.modalities(0).volume_voxels().begin(),
                                 meta.modalities(0).volume_voxels().end()),
            (std::vector<int64_t>{3, 100, 2000, 5000, 13000}));
  const std::string what = ErrorOf(config("../bad/mask4.npy"));
  EXPECT_NE(what.find("mask4.npy: 4 voxels, but modality 'img' has 5 features"), std::string::npos)
      << what;
}

}  // namespace
}  // namespace flexmoe
