// The synthetic data generator (synth.h).
#include "data_loader/synth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/splitmix.h"
#include "data_loader/combinations.h"
#include "data_loader/shard.h"  // kSplitsFile
#include "data_loader/splits.h"

namespace flexmoe {
namespace {

// A small deterministic generator (splitmix64 and Box-Muller): the same integer stream on
// every platform, unlike std:: distributions. The normal draws go through libm's log and cos,
// which may differ in the last bit between libm versions, so generated values are the same
// on every machine with the same libm (Debian 12 here), and close elsewhere.
class SeededRng {
 public:
  explicit SeededRng(uint64_t seed) : state_(seed * 0x2545F4914F6CDD1Dull + 0x1234567ull) {}
  uint64_t Next() { return SplitMix64(&state_); }
  double Uniform() {
    return (static_cast<double>(Next() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  }
  double Normal() {
    double u = Uniform();
    double v = Uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }

 private:
  uint64_t state_;
};

std::string FormatValue(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.5g", v);
  return buffer;
}

}  // namespace

std::vector<int> CombinationCounts(const config::SynthConfig& synth, int num_modalities) {
  Combinations combinations(num_modalities);
  int c_count = combinations.size();
  std::vector<double> weights(c_count, 0.0);
  if (synth.combination_weights_size() > 0) {
    for (int c = 0; c < c_count; ++c) weights[c] = synth.combination_weights(c);
  } else {
    int singles = 0;
    int others = 0;
    for (int c = 0; c < c_count; ++c) {
      int size = combinations.Size(c);
      if (size == num_modalities) continue;
      (size == 1 ? singles : others)++;
    }
    double rest = 1.0 - synth.full_fraction() - synth.single_fraction();
    for (int c = 0; c < c_count; ++c) {
      int size = combinations.Size(c);
      if (size == num_modalities) {
        weights[c] += synth.full_fraction();
      }
      if (size == 1) {
        weights[c] += synth.single_fraction() / singles;
      } else if (size != num_modalities) {
        weights[c] += others > 0 ? rest / others : 0.0;
      }
    }
  }
  double total_weight = 0;
  for (double w : weights) total_weight += w;
  if (total_weight <= 0) {
    Fail(ErrorCode::kInvalidArgument, "config field synth.combination_weights: all weights are 0");
  }
  int n = synth.num_samples();
  int base = synth.min_per_combination();
  std::vector<int> counts(c_count, base);
  int remaining = n - base * c_count;
  std::vector<std::pair<double, int>> remainders;
  int assigned = 0;
  for (int c = 0; c < c_count; ++c) {
    double exact = remaining * weights[c] / total_weight;
    int whole = static_cast<int>(std::floor(exact));
    counts[c] += whole;
    assigned += whole;
    remainders.push_back({exact - whole, c});
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (int i = 0; assigned < remaining; ++i, ++assigned) counts[remainders[i % c_count].second]++;
  return counts;
}

namespace {

// The generating model: class prototypes per modality ([K * F_m]) and two interaction
// directions per modality ([F_m]).
struct GeneratingModel {
  std::vector<std::vector<double>> prototype, direction_a, direction_b;
};

GeneratingModel MakeGeneratingModel(const config::DataConfig& data,
                                    const config::SynthConfig& synth, SeededRng& rng) {
  const int m_count = data.modalities_size();
  GeneratingModel g;
  g.prototype.resize(m_count);
  g.direction_a.resize(m_count);
  g.direction_b.resize(m_count);
  for (int m = 0; m < m_count; ++m) {
    const int f = data.modalities(m).synth_features();
    for (int i = 0; i < data.num_classes() * f; ++i) {
      g.prototype[m].push_back(rng.Normal() * synth.marginal_signal());
    }
    for (int i = 0; i < f; ++i) g.direction_a[m].push_back(rng.Normal());
    for (int i = 0; i < f; ++i) g.direction_b[m].push_back(rng.Normal());
  }
  return g;
}

// One CSV file per modality, with its header written.
std::vector<std::unique_ptr<AtomicFile>> OpenModalityFiles(const config::DataConfig& data,
                                                           AtomicDirectory& out) {
  std::vector<std::unique_ptr<AtomicFile>> files;
  for (int m = 0; m < data.modalities_size(); ++m) {
    files.push_back(std::make_unique<AtomicFile>(out.StagingPath(data.modalities(m).file())));
    std::string header = "id";
    for (int j = 0; j < data.modalities(m).synth_features(); ++j) {
      header += "," + data.modalities(m).name() + "_" + std::to_string(j);
    }
    files[m]->Write(header + "\n");
  }
  return files;
}

// Sample `id`'s row of modality m (class y): its prototype, noise and, with two or more
// modalities, the interaction terms (`sign`: one random sign per modality; alone each side
// looks like noise, the product of adjacent sides tells the class parity).
std::string ModalityLine(const std::string& id, int m, int y, const std::vector<double>& sign,
                         const GeneratingModel& g, const config::Config& config, SeededRng& rng) {
  const config::SynthConfig& synth = config.synth();
  const auto& modality = config.data().modalities(m);
  const int m_count = config.data().modalities_size();
  const int f = modality.synth_features();
  const int prev = (m + m_count - 1) % m_count;
  const double parity = (y % 2 == 0) ? 1.0 : -1.0;
  std::string line = id;
  for (int j = 0; j < f; ++j) {
    double x = g.prototype[m][y * f + j] + synth.noise() * rng.Normal();
    if (m_count >= 2) {
      x += synth.interaction_signal() * sign[m] * g.direction_a[m][j];
      x += synth.interaction_signal() * sign[prev] * parity * g.direction_b[m][j];
    }
    bool missing = rng.Uniform() < synth.missing_value_rate();
    line += ",";
    if (missing) continue;
    if (modality.synth_integer_coded()) {
      line += x < -0.5 ? "0" : (x < 0.5 ? "1" : "2");
    } else {
      line += FormatValue(x);
    }
  }
  return line + "\n";
}

void WriteSplits(const std::vector<int32_t>& labels, const std::vector<std::string>& ids,
                 const config::DataConfig& data, AtomicDirectory& out) {
  std::vector<uint32_t> split = StratifiedSplit(labels, data.num_classes(), data.split());
  WriteFileAtomically(out.StagingPath(kSplitsFile),
                      SplitsJson(
                          ids.size(), [&](size_t i) -> const std::string& { return ids[i]; },
                          [&](size_t i) { return split[i]; }));
}

}  // namespace

SynthResult GenerateSynthetic(const config::Config& config, const std::string& out_dir) {
  const config::DataConfig& data = config.data();
  const config::SynthConfig& synth = config.synth();
  const int m_count = data.modalities_size();
  for (int m = 0; m < m_count; ++m) {
    if (data.modalities(m).synth_features() <= 0) {
      Fail(ErrorCode::kInvalidArgument, "config field data.modalities[", m,
           "].synth_features: the generator needs a positive feature count");
    }
  }
  const int n = synth.num_samples();
  Combinations combinations(m_count);
  SeededRng rng(synth.seed());
  const GeneratingModel model = MakeGeneratingModel(data, synth, rng);

  std::vector<int> counts = CombinationCounts(synth, m_count);
  std::vector<int> combination_of;
  for (int c = 0; c < combinations.size(); ++c) {
    combination_of.insert(combination_of.end(), counts[c], c);
  }
  for (size_t i = combination_of.size(); i > 1; --i) {
    std::swap(combination_of[i - 1], combination_of[rng.Below(i)]);
  }
  std::vector<int32_t> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = static_cast<int32_t>(rng.Below(data.num_classes()));

  AtomicDirectory out(out_dir);
  std::vector<std::unique_ptr<AtomicFile>> files = OpenModalityFiles(data, out);
  AtomicFile label_file(out.StagingPath("labels.csv"));
  label_file.Write("id,label\n");
  std::vector<std::string> ids;
  std::vector<double> sign(m_count);
  for (int i = 0; i < n; ++i) {
    char id[32];
    std::snprintf(id, sizeof(id), "S%06d", i + 1);
    ids.push_back(id);
    const int y = labels[i];
    label_file.Write(std::string(id) + "," +
                     (data.class_names_size() > 0 ? data.class_names(y) : std::to_string(y)) +
                     "\n");
    const uint32_t mask = combinations.Mask(combination_of[i]);
    for (int m = 0; m < m_count; ++m) sign[m] = rng.Uniform() < 0.5 ? -1.0 : 1.0;
    for (int m = 0; m < m_count; ++m) {
      if (mask & (1u << m)) files[m]->Write(ModalityLine(id, m, y, sign, model, config, rng));
    }
  }
  WriteSplits(labels, ids, data, out);
  label_file.Commit();
  for (auto& file : files) file->Commit();
  out.Commit();

  SynthResult result;
  result.samples = n;
  result.per_combination = counts;
  return result;
}

}  // namespace flexmoe
