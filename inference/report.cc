// Figures of a run with gnuplot (report.h).
#include "inference/report.h"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <thread>

#include "cluster/base/atomic_file.h"
#include "cluster/base/child_process.h"
#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "cluster/metrics/run_records.h"
#include "inference/evaluation.h"
#include "inference/loaded_model.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kGnuplotTimeoutS = 120;

// A gnuplot string literal (single quotes: no escapes but a doubled quote).
std::string Quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// A string in a gnuplot data file (double quotes; a double quote inside becomes a single one).
std::string DataString(std::string text) {
  for (char& c : text) {
    if (c == '"') c = '\'';
  }
  return "\"" + text + "\"";
}

double Value(const json& v) { return v.is_number() ? v.get<double>() : std::nan(""); }

std::string Cell(double v) {
  if (!std::isfinite(v)) return "NaN";
  std::ostringstream out;
  out << std::setprecision(6) << v;
  return out.str();
}

// The common preamble: a PNG of the given size, text taken literally.
std::string Preamble(const std::string& png, int width, int height) {
  return "set terminal pngcairo size " + std::to_string(width) + "," + std::to_string(height) +
         " font 'sans,10' noenhanced\nset output " + Quote(png) + "\n";
}

// Runs gnuplot on `script` in `dir` and checks that `png` was written.
void RunGnuplot(const fs::path& dir, const std::string& name) {
  ChildSpec spec;
  spec.name = "gnuplot";
  spec.argv = {"gnuplot", (dir / (name + ".gp")).string()};
  spec.log = (dir / (name + ".log")).string();
  ChildProcess child(spec);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(kGnuplotTimeoutS);
  while (!child.Ended()) {
    if (std::chrono::steady_clock::now() > deadline) {
      child.Signal(SIGKILL);
      while (!child.Ended()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      Fail(ErrorCode::kDeadlineExceeded, "gnuplot ", dir / (name + ".gp"), ": no result after ",
           kGnuplotTimeoutS, " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const fs::path png = dir / (name + ".png");
  if (child.status() != 0 || !fs::exists(png) || fs::file_size(png) == 0) {
    Fail(ErrorCode::kUnavailable, "gnuplot ", dir / (name + ".gp"), ": ", child.Describe(), ": ",
         child.LogTail(5));
  }
}

class FigureWriter {
 public:
  FigureWriter(fs::path dir, ReportResult* result, std::ostream* log)
      : dir_(std::move(dir)), result_(result), log_(log) {}

  // Writes name.dat and name.gp, runs gnuplot; a figure without data is skipped.
  void Draw(const std::string& name, const std::string& data, const std::string& script,
            int width = 900, int height = 600) {
    WriteFileAtomically((dir_ / (name + ".dat")).string(), data);
    WriteFileAtomically((dir_ / (name + ".gp")).string(),
                        Preamble((dir_ / (name + ".png")).string(), width, height) + script);
    RunGnuplot(dir_, name);
    result_->figures.push_back((dir_ / (name + ".png")).string());
    if (log_ != nullptr) *log_ << "report: " << (dir_ / (name + ".png")).string() << "\n";
  }
  void Skip(const std::string& name, const std::string& why) {
    result_->skipped.push_back(name + ": " + why);
    if (log_ != nullptr) *log_ << "report: no " << name << " (" << why << ")\n";
  }
  std::string Data(const std::string& name) const {
    return Quote((dir_ / (name + ".dat")).string());
  }

 private:
  fs::path dir_;
  ReportResult* result_;
  std::ostream* log_;
};

// The heatmap: one row per combination with tokens, cells the row-normalised share.
void ExpertActivation(const json& eval, FigureWriter& out) {
  const auto& layers = eval.at("expert_tokens");
  if (layers.empty()) return out.Skip("expert_activation", "the model has no sparse layer");
  const auto& rows = layers[0];
  const auto& per = eval.at("per_combination");
  std::ostringstream data, ytics;
  int shown = 0;
  size_t experts = 0, longest = 0;
  for (size_t c = 0; c < rows.size(); ++c) {
    double total = 0;
    for (const auto& v : rows[c]) total += v.get<double>();
    if (total == 0) continue;
    experts = rows[c].size();
    for (const auto& v : rows[c]) data << Cell(v.get<double>() / total) << " ";
    data << "\n";
    const std::string name = per[c].at("name").get<std::string>();
    longest = std::max(longest, name.size());
    ytics << (shown > 0 ? ", " : "") << Quote(name) << " " << shown;
    ++shown;
  }
  if (shown == 0) return out.Skip("expert_activation", "no tokens were routed");
  std::ostringstream gp;
  gp << "set title 'Expert activation (first sparse layer, "
     << eval.at("source").get<std::string>().substr(0, 60) << ")'\n"
     << "set xlabel 'expert'\nset ylabel 'modality combination'\n"
     << "set ytics (" << ytics.str() << ")\nset xtics 0,1," << experts - 1 << "\n"
     << "set yrange [" << shown - 0.5 << ":-0.5]\nset xrange [-0.5:" << experts - 0.5 << "]\n"
     << "set cblabel 'share of the combination''s routed tokens'\nset cbrange [0:*]\n"
     << "set palette defined (0 'white', 1 '#fdd49e', 2 '#fc8d59', 3 '#b30000')\n"
     << "set lmargin " << longest + 4 << "\n"
     << "plot " << out.Data("expert_activation") << " matrix with image notitle\n";
  out.Draw("expert_activation", data.str(), gp.str(), 700 + 7 * static_cast<int>(longest),
           220 + 26 * shown);
}

// Train loss and validation metrics per epoch from metrics.jsonl.
void Curves(const fs::path& metrics, FigureWriter& out) {
  std::ifstream in(metrics);
  if (!in) return out.Skip("curves", metrics.string() + " is missing");
  std::ostringstream data;
  std::string line;
  int epochs = 0;
  while (std::getline(in, line)) {
    const std::optional<EpochLine> e =
        EpochLineFrom(json::parse(line, nullptr, /*allow_exceptions=*/false));
    if (!e) continue;
    data << e->epoch + 1 << " " << Cell(e->train_loss) << " " << Cell(e->task_loss) << " "
         << Cell(e->validation.acc) << " " << Cell(e->validation.auc) << " "
         << Cell(e->validation.f1) << "\n";
    ++epochs;
  }
  if (epochs == 0) return out.Skip("curves", "no epoch record in " + metrics.string());
  const std::string file = out.Data("curves");
  std::ostringstream gp;
  gp << "set multiplot layout 1,2\nset xlabel 'epoch'\nset grid\nset datafile missing 'NaN'\n"
     << (epochs <= 20 ? "set xtics 1\n" : "") << "set title 'Training loss'\nplot " << file
     << " using 1:2 with linespoints title 'total', " << file
     << " using 1:3 with linespoints title 'task'\n"
     << "set title 'Validation'\nset yrange [0:1]\nplot " << file
     << " using 1:4 with linespoints title 'accuracy', " << file
     << " using 1:5 with linespoints title 'AUC', " << file
     << " using 1:6 with linespoints title 'macro-F1'\nunset multiplot\n";
  out.Draw("curves", data.str(), gp.str());
}

// Clustered bars over the combinations with samples: `columns` of each entry of
// per_combination (json key, title).
void CombinationBars(const json& eval, const std::string& name, const std::string& title,
                     const std::string& ylabel,
                     const std::vector<std::pair<std::string, std::string>>& columns,
                     FigureWriter& out) {
  std::ostringstream data;
  int shown = 0;
  for (const auto& g : eval.at("per_combination")) {
    if (g.value("count", 0) == 0) continue;
    std::ostringstream row;
    bool any = false;
    for (const auto& [key, unused] : columns) {
      const json& holder =
          key.rfind("attr:", 0) == 0 ? g.value("mean_abs_attribution", json::object()) : g;
      const std::string k = key.rfind("attr:", 0) == 0 ? key.substr(5) : key;
      const double v = Value(holder.value(k, json()));
      any = any || std::isfinite(v);
      row << " " << Cell(v);
    }
    if (!any) continue;  // e.g. a single modality has no attribution
    data << DataString(g.at("name").get<std::string>()) << row.str() << "\n";
    ++shown;
  }
  if (shown == 0) return out.Skip(name, "no combination has samples");
  std::ostringstream gp;
  gp << "set title " << Quote(title) << "\nset ylabel " << Quote(ylabel) << "\n"
     << "set style data histograms\nset style histogram clustered gap 1\n"
     << "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset grid ytics\n"
     << "set xtics rotate by -35 left\nset yrange [0:*]\nset key outside right top\n"
     << "set datafile missing 'NaN'\nplot ";
  for (size_t i = 0; i < columns.size(); ++i) {
    gp << (i > 0 ? ", " : "") << out.Data(name) << " using " << i + 2 << (i == 0 ? ":xtic(1)" : "")
       << " title " << Quote(columns[i].second);
  }
  gp << "\n";
  out.Draw(name, data.str(), gp.str());
}

void ReliabilityDiagram(const json& eval, FigureWriter& out) {
  std::ostringstream data;
  for (const char* key : {"reliability", "reliability_calibrated"}) {
    for (const auto& b : eval.at(key)) {
      if (b.value("count", 0) == 0) continue;
      data << Cell(Value(b["confidence"])) << " " << Cell(Value(b["accuracy"])) << " "
           << b.value("count", 0) << "\n";
    }
    data << "\n\n";  // a gnuplot data block per key
  }
  const json& overall = eval.at("overall");
  std::ostringstream gp;
  gp << std::setprecision(3) << "set title 'Reliability (test split; ECE "
     << 100 * Value(overall["ece"]) << "%, at T=" << eval.value("temperature", 1.0) << ": "
     << 100 * Value(overall["ece_calibrated"])
     << "%)'\nset xlabel 'confidence (top-class probability)'\nset ylabel 'accuracy'\n"
     << "set xrange [0:1]\nset yrange [0:1]\nset grid\nset key left top\nset size square\n"
     << "plot x with lines dashtype 2 lc 'gray' title 'perfect calibration', "
     << out.Data("reliability") << " index 0 using 1:2 with linespoints pt 7 title 'model', "
     << out.Data("reliability") << " index 1 using 1:2 with linespoints pt 5 title 'calibrated'\n";
  out.Draw("reliability", data.str(), gp.str());
}

// The report's attribution: a strided sample of the test split at most this large.
constexpr int64_t kReportExplained = 20000;

json ReadOrWriteEval(const fs::path& seed_dir, const std::string& export_dir, std::ostream* log) {
  const fs::path path = fs::path(RunDir(seed_dir.string()).eval_dir()) / "test.json";
  if (!fs::exists(path)) {
    LoadedModel model = LoadModel(export_dir);
    EvalOptions options;
    options.max_explained = kReportExplained;
    EvalReport report = EvaluateExport(model, options);
    fs::create_directories(path.parent_path());
    WriteFileAtomically(path.string(), EvalReportJson(report).dump(1) + "\n");
    if (log != nullptr)
      *log << "report: evaluated " << export_dir << " into " << path.string() << "\n";
  }
  std::ifstream in(path);
  json eval = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!eval.is_object() || !eval.contains("per_combination")) {
    Fail(ErrorCode::kDataLoss, path.string(), ": not an evaluation written by flexmoe eval");
  }
  return eval;
}

}  // namespace

ReportResult WriteReport(const std::string& run_dir, std::ostream* log) {
  ReportResult result;
  for (const std::string& export_dir : FindExports(run_dir)) {
    const fs::path seed_dir = fs::path(export_dir).parent_path();
    const json eval = ReadOrWriteEval(seed_dir, export_dir, log);
    const RunDir member(seed_dir.string());
    fs::create_directories(member.report_dir());
    FigureWriter out(member.report_dir(), &result, log);
    ExpertActivation(eval, out);
    Curves(member.metrics(), out);
    CombinationBars(eval, "combination_metrics", "Test metrics per modality combination", "score",
                    {{"accuracy", "accuracy"}, {"auc", "AUC"}, {"macro_f1", "macro-F1"}}, out);
    ReliabilityDiagram(eval, out);
    std::vector<std::pair<std::string, std::string>> modalities;
    for (const auto& m : eval.at("modalities")) {
      modalities.push_back({"attr:" + m.get<std::string>(), m.get<std::string>()});
    }
    CombinationBars(eval, "attribution",
                    "Modality attribution: mean |change in probability| when the modality is "
                    "replaced by the bank",
                    "mean absolute change in probability", modalities, out);
  }
  return result;
}

}  // namespace flexmoe
