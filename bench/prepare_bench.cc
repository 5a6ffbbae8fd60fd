// Preparation throughput: generates a wide CSV (rows x 100 columns: id, label and 98
// features in 4 modality groups, groups missing at random) and times `PrepareDataset` on
// it. Prints one JSON line: rows/s, input MB/s (one pass), total seconds, peak RSS.
// Usage: prepare_bench --rows N [--dir DIR] [--keep]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "data_loader/prepare.h"
#include "proto/config_loader.h"

namespace {

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

long PeakRssKb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

constexpr int kGroups = 4;
constexpr int kPerGroup[kGroups] = {40, 30, 20, 8};  // 98 features

void WriteCsv(const std::string& path, long rows) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  std::string line = "id,label";
  for (int g = 0; g < kGroups; ++g) {
    for (int j = 0; j < kPerGroup[g]; ++j)
      line += ",g" + std::to_string(g) + "_" + std::to_string(j);
  }
  line += "\n";
  std::fwrite(line.data(), 1, line.size(), f);
  char buffer[64];
  for (long i = 0; i < rows; ++i) {
    uint64_t h = Mix(static_cast<uint64_t>(i) + 1);
    line = std::to_string(i) + "," + std::to_string(h & 1);
    for (int g = 0; g < kGroups; ++g) {
      bool present = g == 0 || ((h >> (8 + g)) & 3) != 0;
      for (int j = 0; j < kPerGroup[g]; ++j) {
        line += ",";
        if (!present) continue;
        uint64_t v = Mix(h + static_cast<uint64_t>(g * 131 + j));
        int n = std::snprintf(buffer, sizeof(buffer), "%.4f", (v % 2000000) / 1000.0 - 1000.0);
        line.append(buffer, static_cast<size_t>(n));
      }
    }
    line += "\n";
    std::fwrite(line.data(), 1, line.size(), f);
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  long rows = 1000000;
  std::string dir = (std::filesystem::temp_directory_path() / "flexmoe-prepare-bench").string();
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--rows") && i + 1 < argc)
      rows = std::stol(argv[++i]);
    else if (!std::strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else if (!std::strcmp(argv[i], "--keep"))
      keep = true;
    else {
      std::cerr << "usage: prepare_bench --rows N [--dir DIR] [--keep]\n";
      return 2;
    }
  }
  std::filesystem::create_directories(dir);
  std::string csv = dir + "/wide-" + std::to_string(rows) + ".csv";
  if (!std::filesystem::exists(csv)) WriteCsv(csv, rows);
  long rss_before = PeakRssKb();
  std::string text =
      "data { layout: WIDE_CSV input: \"" + csv + "\" id_column: \"id\" label_column: \"label\" ";
  for (int g = 0; g < kGroups; ++g) {
    text += "modalities { name: \"g" + std::to_string(g) + "\" columns: \"g" + std::to_string(g) +
            "_*\" } ";
  }
  text += "} model { num_experts: 15 top_k: 2 }";
  flexmoe::config::Config config = flexmoe::ParseConfig(text, "bench", {});
  flexmoe::PrepareResult result = flexmoe::PrepareDataset(config, dir + "/out", nullptr);
  double mb = result.input_bytes / 1e6;
  std::printf(
      "{\"bench\": \"prepare\", \"rows\": %ld, \"columns\": 100, \"input_mb\": %.1f, "
      "\"seconds\": %.2f, \"rows_per_s\": %.0f, \"input_mb_per_s\": %.1f, "
      "\"peak_rss_mb\": %.1f, \"rss_before_mb\": %.1f}\n",
      rows, mb, result.seconds, rows / result.seconds, mb / result.seconds, PeakRssKb() / 1024.0,
      rss_before / 1024.0);
  if (!keep) std::filesystem::remove_all(dir);
  return 0;
}
