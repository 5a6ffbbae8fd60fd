// Trials CSV, best trial and best config (tune_results.h).
#include "tune/tune_results.h"

#include <cmath>
#include <sstream>

#include "cluster/base/atomic_file.h"
#include "proto/config_loader.h"

namespace flexmoe {
namespace {

std::string Number(double v) {
  if (std::isnan(v)) return "";
  std::ostringstream out;
  out.precision(6);
  out << v;
  return out.str();
}

// A CSV field: quoted when it holds a comma or a quote.
std::string Field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string Status(const TrialResult& r) {
  if (!r.error.empty()) return "failed";
  for (double s : r.fold_scores) {
    if (std::isnan(s)) return "pending";
  }
  return r.reused > 0 ? "reused" : "done";
}

}  // namespace

std::string TrialLabel(const Trial& trial) {
  std::string label;
  for (const std::string& o : trial.overrides) label += (label.empty() ? "" : ", ") + o;
  return label;
}

int BestTrial(const std::vector<TrialResult>& trials) {
  int best = -1;
  for (size_t i = 0; i < trials.size(); ++i) {
    if (std::isnan(trials[i].mean)) continue;
    if (best < 0 || trials[i].mean > trials[best].mean) best = static_cast<int>(i);
  }
  return best;
}

void WriteTrialsCsv(const TuneResult& result, const tune::Space& space, const std::string& path) {
  std::string csv = "trial";
  for (const tune::Param& p : space.params()) csv += "," + Field(p.field());
  for (int f = 0; f < space.folds(); ++f) csv += ",fold_" + std::to_string(f + 1);
  csv += ",mean_" + result.metric + ",std_" + result.metric + ",status\n";
  for (const TrialResult& r : result.trials) {
    csv += std::to_string(r.trial.number);
    for (const std::string& o : r.trial.overrides) csv += "," + Field(OverrideValue(o));
    for (double s : r.fold_scores) csv += "," + Number(s);
    const bool scored = Status(r) != "pending" && !std::isnan(r.mean);
    csv += "," + Number(scored ? r.mean : NAN) + "," + Number(scored ? r.std : NAN) + "," +
           Status(r) + "\n";
  }
  WriteFileAtomically(path, csv);
}

void WriteBestConfig(const TuneOptions& options, const TuneResult& result,
                     const std::string& path) {
  const TrialResult& best = result.trials[result.best];
  std::vector<std::string> sets = options.overrides;
  sets.insert(sets.end(), best.trial.overrides.begin(), best.trial.overrides.end());
  const config::Config config = LoadConfig(options.config_path, sets);
  std::ostringstream text;
  text << "# flexmoe tune: the best of " << result.trials.size() << " trials in " << options.out_dir
       << " (trials.csv), by " << best.fold_scores.size() << "-fold cross-validated validation "
       << result.metric << " " << Number(best.mean) << " +- " << Number(best.std)
       << ".\n# Base: " << options.config_origin;
  for (const std::string& o : options.overrides) text << " --set " << o;
  text << "\n# Trial " << best.trial.number << ": " << TrialLabel(best.trial) << "\n";
  text << ConfigToText(config);
  WriteFileAtomically(path, text.str());
}

}  // namespace flexmoe
