// The eval, predict and report subcommands (inference_commands.h).
#include "launch/inference_commands.h"

#include <filesystem>
#include <iostream>
#include <memory>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/run_dir.h"
#include "inference/evaluation.h"
#include "inference/loaded_model.h"
#include "inference/predict.h"
#include "inference/report.h"
#include "launch/cli/args.h"
#include "trainer/train/compute_threads.h"

namespace flexmoe {
namespace {

namespace fs = std::filesystem;

// The one export named by --checkpoint (an export, a run directory or its checkpoint/).
std::string OneExport(const Args& args) {
  std::string path = args.Get("checkpoint");
  if (path.empty())
    Fail(ErrorCode::kInvalidArgument, args.command, ": --checkpoint DIR is required");
  std::vector<std::string> found = FindExports(path);
  if (found.size() > 1) {
    Fail(ErrorCode::kInvalidArgument, path, ": ", found.size(),
         " checkpoints (one per seed); name one, e.g. ", found[0],
         args.command == "predict" ? ", or pass --ensemble" : "");
  }
  return found[0];
}

void SetThreads(const Args& args) { SetComputeThreads(args.GetInt("threads", 1)); }

}  // namespace

int EvalCommand(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  SetThreads(args);
  EvalOptions options;
  options.split = args.Get("split", "test");
  options.input = args.Get("input");
  options.explain = !args.Has("no-explain");
  if (!options.input.empty() && args.Has("split")) {
    Fail(ErrorCode::kInvalidArgument, "eval: --split and --input exclude each other");
  }
  SplitIndex(options.split);  // a bad name is refused before the model loads
  const std::string dir = OneExport(args);
  LoadedModel model = LoadModel(dir);
  EvalReport report = EvaluateExport(model, options);
  std::string out = args.Get("out");
  if (out.empty()) {
    out = (fs::path(RunDir(fs::path(dir).parent_path().string()).eval_dir()) /
           ((options.input.empty() ? options.split : std::string("input")) + ".json"))
              .string();
  }
  if (!fs::path(out).parent_path().empty()) fs::create_directories(fs::path(out).parent_path());
  WriteFileAtomically(out, EvalReportJson(report).dump(1) + "\n");
  std::cout << FormatEvalReport(report) << "wrote " << out << "\n";
  return 0;
}

int PredictCommand(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  SetThreads(args);
  PredictOptions options;
  options.input = args.Get("input");
  options.out = args.Get("out");
  options.batch_rows = args.GetInt("batch", 256);
  options.score.calibrated = args.Has("calibrated");
  options.score.explain = args.Has("explain");
  if (options.batch_rows < 1) Fail(ErrorCode::kInvalidArgument, "predict: --batch must be >= 1");
  std::vector<std::string> dirs;
  if (args.Has("ensemble")) {
    if (args.Has("checkpoint")) dirs = FindExports(args.Get("checkpoint"));
    for (const std::string& p : args.GetList("ensemble")) {
      for (const std::string& d : FindExports(p)) dirs.push_back(d);
    }
    if (dirs.empty()) {
      Fail(ErrorCode::kInvalidArgument,
           "predict --ensemble: name the member checkpoints, e.g. "
           "--ensemble runs/x/seed-1/checkpoint runs/x/seed-2/checkpoint");
    }
  } else {
    dirs.push_back(OneExport(args));
  }
  std::vector<LoadedModel> models;
  for (const std::string& d : dirs) models.push_back(LoadModel(d));
  std::vector<LoadedModel*> members;
  for (LoadedModel& m : models) {
    if (options.score.calibrated && m.info.temperature == 1.0 && m.info.dataset_text.empty()) {
      Fail(ErrorCode::kInvalidArgument, m.dir,
           ": --calibrated, but this checkpoint has no fitted temperature (written before "
           "calibration was stored)");
    }
    members.push_back(&m);
  }
  PredictSummary summary = Predict(members, options);
  std::cout << "predicted " << summary.scored << " of " << summary.rows << " rows with "
            << members.size() << (members.size() == 1 ? " model" : " models (mean)")
            << (options.score.calibrated ? ", calibrated" : "") << " into " << options.out << " in "
            << summary.seconds << " s\n";
  if (summary.without_modality > 0) {
    std::cout << summary.without_modality
              << " rows have no modality at all: their probabilities are left empty (";
    for (size_t i = 0; i < summary.first_without_modality.size(); ++i) {
      std::cout << (i > 0 ? ", " : "") << summary.first_without_modality[i];
    }
    std::cout << (summary.without_modality > 10 ? ", ..." : "") << ")\n";
  }
  return 0;
}

int ReportCommand(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  SetThreads(args);
  std::string run = args.Get("run");
  if (run.empty() && !args.positional.empty()) run = args.positional[0];
  if (run.empty()) Fail(ErrorCode::kInvalidArgument, "report: RUN_DIR is required");
  ReportResult result = WriteReport(run, &std::cout);
  std::cout << "report: " << result.figures.size() << " figures";
  if (!result.skipped.empty()) std::cout << ", " << result.skipped.size() << " skipped";
  std::cout << "\n";
  return 0;
}

}  // namespace flexmoe
