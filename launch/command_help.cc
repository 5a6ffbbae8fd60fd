// Help texts (command_help.h).
#include "launch/command_help.h"

#include <map>
#include <utility>
#include <vector>

namespace flexmoe {
namespace {

constexpr char kSetHelp[] =
    "  --set PATH=VALUE      override one config field (repeatable), e.g.\n"
    "                        --set training.epochs=3\n"
    "  --help                this text\n";

// The commands that prepare data and train.
std::vector<std::pair<std::string, std::string>> DataAndTrainingTexts() {
  return {
      {"validate-config",
       "usage: flexmoe validate-config FILE | --config FILE [--set PATH=VALUE]...\n"
       "Prints the resolved config (defaults filled in), or the error in it.\n\n"
       "  --config FILE         the config (textproto)\n"},
      {"synth",
       "usage: flexmoe synth --config FILE [--out DIR]\n"
       "Writes a synthetic layout-A dataset (config section synth).\n\n"
       "  --config FILE         the config\n"
       "  --out DIR             where (default data.input)\n"},
      {"prepare",
       "usage: flexmoe prepare --config FILE [--out DIR]\n"
       "Prepares the shards, the index and the statistics of data.input.\n\n"
       "  --config FILE         the config\n"
       "  --out DIR             where (default data.prepared_dir)\n"},
      {"train",
       "usage: flexmoe train --config FILE [--workers N] [--threads N] [--resume]\n"
       "                     [--max-restarts K]\n"
       "Runs the whole job on this machine: the coordinator, a loader and N workers\n"
       "(mpirun), into run.dir (default runs/<date-time>): the resolved config, job.json,\n"
       "metrics.jsonl, tensorboard/, checkpoints/, the best parameters in checkpoint/, the\n"
       "members' logs. Ctrl-C, SIGTERM or SIGUSR1 stop it at a checkpoint; a second\n"
       "Ctrl-C stops it at once.\n\n"
       "  --config FILE         the config\n"
       "  --workers N           worker processes (default cluster.workers)\n"
       "  --threads N           compute threads per worker (default: the cores over the\n"
       "                        workers, less one for the loader and coordinator)\n"
       "  --resume              continue run.dir from its newest complete checkpoint, at\n"
       "                        any N\n"
       "  --max-restarts K      when a member dies, start again from the newest\n"
       "                        checkpoint without the dead workers, up to K times\n"
       "                        (default 0)\n"},
      {"worker",
       "usage: flexmoe worker --config FILE [--threads N] [--resume]\n"
       "One rank of a training job, under mpirun or srun (flexmoe train starts them).\n"
       "With cluster.coordinator it joins the job's coordinator.\n\n"
       "  --config FILE         the config\n"
       "  --threads N           compute threads (default 1)\n"
       "  --resume              continue from the newest complete checkpoint\n"
       "  --restart K           set by the launcher: this is restart K\n"
       "  --restart-reason TEXT set by the launcher: what ended the attempt before\n"},
  };
}

// The job's services and the launch scripts' helper.
std::vector<std::pair<std::string, std::string>> ServiceTexts() {
  return {
      {"loader",
       "usage: flexmoe loader --config FILE [--listen HOST:PORT] [--rank N]\n"
       "Serves combination-sorted batches of data.prepared_dir to the workers; prints\n"
       "\"listening on HOST:PORT\". With cluster.coordinator it joins the job.\n\n"
       "  --config FILE         the config\n"
       "  --listen HOST:PORT    where (default cluster.bind_address, a free port)\n"
       "  --rank N              its index among the job's loaders (default: the task\n"
       "                        index mpirun or srun gives it, else 0)\n"},
      {"lease",
       "usage: flexmoe lease --config FILE [--set PATH=VALUE]... [--what TEXT]\n"
       "                     [--watch-pid PID]\n"
       "Holds run.dir's lease (job.lease: one job per run directory, on any host) for a\n"
       "launch script: prints \"lease held on DIR\", or exits 2 naming the job that\n"
       "holds it; a lease not renewed for cluster.heartbeat_timeout_s is taken over.\n"
       "Renews it while PID (default: its parent) lives; releases it when PID ends or\n"
       "on SIGTERM.\n\n"
       "  --config FILE         the config (run.dir, cluster.heartbeat_timeout_s)\n"
       "  --what TEXT           who holds it, for a refused job's message\n"
       "  --watch-pid PID       the process whose life the lease lasts\n"},
      {"coordinator",
       "usage: flexmoe coordinator --config FILE [--listen HOST:PORT]\n"
       "The job's control plane: membership, heartbeats, the expert placement, the stop\n"
       "of every member when one dies, checkpoints, metrics.jsonl and TensorBoard files,\n"
       "job.json (docs/coordinator.md). Members join with\n"
       "--set cluster.coordinator=HOST:PORT. SIGTERM or SIGUSR1: checkpoint and stop;\n"
       "SIGUSR2: checkpoint and go on.\n\n"
       "  --config FILE         the config\n"
       "  --listen HOST:PORT    where (default cluster.bind_address, a free port)\n"},
  };
}

// Scoring, figures, search and checkpoint inspection.
std::vector<std::pair<std::string, std::string>> InferenceAndToolTexts() {
  return {
      {"eval",
       "usage: flexmoe eval --checkpoint DIR [--split test|validation|training]\n"
       "                    [--input PATH] [--out FILE] [--no-explain] [--threads N]\n"
       "Scores the best parameters on a split of the prepared dataset they were trained\n"
       "on (training's per-combination table), or on a labelled input; adds the\n"
       "expected calibration error and the modality attribution (docs/inference.md).\n\n"
       "  --checkpoint DIR      an export (run.dir/checkpoint) or its run directory\n"
       "  --split NAME          test (default), validation or training\n"
       "  --input PATH          a labelled layout-A directory or wide CSV instead\n"
       "  --out FILE            the JSON (default <run dir>/eval/<split>.json)\n"
       "  --no-explain          skip the attribution (one forward per modality)\n"},
      {"predict",
       "usage: flexmoe predict --checkpoint DIR --input PATH --out FILE [--calibrated]\n"
       "                       [--explain] [--ensemble DIR...] [--batch N] [--threads N]\n"
       "Class probabilities for every row of a layout-A directory or a wide CSV (plain\n"
       "or gzip), whatever modalities each row has, as a CSV: the id, one column per\n"
       "class, with --explain one attribution column per modality, then the row's\n"
       "modalities. Bad input: exit 2 naming file, line and column, no output file.\n\n"
       "  --checkpoint DIR      an export (run.dir/checkpoint) or its run directory\n"
       "  --input PATH          the rows to score (the training config's column map)\n"
       "  --out FILE            the CSV, written once complete\n"
       "  --calibrated          apply the temperature fitted on the validation split\n"
       "  --explain             add the modality attribution columns\n"
       "  --ensemble DIR...     average the probabilities of several exports (a run\n"
       "                        directory stands for all its seeds)\n"
       "  --batch N             rows per forward (default 256)\n"},
      {"report",
       "usage: flexmoe report RUN_DIR\n"
       "Draws the run's figures with gnuplot into <seed dir>/report/: the expert\n"
       "activation heatmap, the training curves, per-combination metrics, the\n"
       "reliability diagram and the modality attribution (evaluating the test split\n"
       "into eval/test.json first when it is missing).\n"},
      {"tune",
       "usage: flexmoe tune --config FILE --space FILE --trials N --out DIR\n"
       "                    [--parallel P] [--threads T] [--trial-timeout-s S]\n"
       "A search over config fields (grid or seeded random, the space file: docs/tune.md).\n"
       "Each trial is scored by k-fold cross-validation on the training and validation\n"
       "splits (test samples are in no fold), one `flexmoe train` per fold; a finished\n"
       "fold with the same command line is reused, so a stopped search resumes.\n"
       "Writes DIR/trials.csv and DIR/best.textproto (the best mean score).\n\n"
       "  --config FILE         the base config (its data.prepared_dir must be prepared)\n"
       "  --space FILE          the search space (proto/tune.proto, text format)\n"
       "  --trials N            grid: the first N points; random: N draws\n"
       "  --out DIR             folds, trial runs and results\n"
       "  --parallel P          trials at once (default: cores / threads)\n"
       "  --threads T           compute threads per trial (default 1)\n"
       "  --trial-timeout-s S   a fold's run past S seconds is stopped (default 7200)\n"},
      {"inspect-checkpoint",
       "usage: flexmoe inspect-checkpoint DIR\n"
       "Prints a checkpoint's manifest and verifies every file's size and CRC32C.\n"},
  };
}

const std::map<std::string, std::string>& Texts() {
  static const std::map<std::string, std::string> texts = [] {
    std::map<std::string, std::string> all;
    for (auto group : {DataAndTrainingTexts(), ServiceTexts(), InferenceAndToolTexts()}) {
      all.insert(group.begin(), group.end());
    }
    return all;
  }();
  return texts;
}

}  // namespace

const std::string& UsageText() {
  static const std::string text =
      R"(usage: flexmoe COMMAND [flags] [--set path.to.field=value]...

commands:
  validate-config FILE        print the resolved config, or the error in it
  synth   --config FILE [--out DIR]   write a synthetic layout-A dataset (default data.input)
  prepare --config FILE [--out DIR]   prepare shards (default data.prepared_dir)
  train   --config FILE [--workers N] [--threads N] [--resume] [--max-restarts K]
                              the whole job on this machine: coordinator, loader and N
                              workers (mpirun); metrics, checkpoints and the best
                              parameters in run.dir; --resume continues run.dir from its
                              newest complete checkpoint (at any N)
  worker  --config FILE [--threads N] [--resume]
                              one rank of a training job (under mpirun or srun)
  loader  --config FILE [--listen HOST:PORT]   serve batches to the workers
  coordinator --config FILE [--listen HOST:PORT]
                              the job's control plane (membership, heartbeats, stop on a
                              member's death, checkpoints, metrics, job.json)
  lease   --config FILE       hold run.dir's lease for a launch script (one job per run
                              directory)
  eval    --checkpoint DIR [--split S | --input PATH]
                              metrics per combination, calibration and attribution
  predict --checkpoint DIR --input PATH --out FILE [--calibrated] [--explain]
          [--ensemble DIR...] probabilities for new rows, whatever modalities they have
  report  RUN_DIR             the run's figures (gnuplot PNGs) in <run>/report/
  tune    --config FILE --space FILE --trials N --out DIR
                              search config fields by k-fold cross-validation (parallel
                              trials); trials.csv and best.textproto
  inspect-checkpoint DIR      print a checkpoint and verify every file's size and CRC32C
  help                        this text

flexmoe COMMAND --help prints the command's flags. --set overrides one config field on
every command, e.g. --set training.epochs=3.

exit status (docs/errors.md):
  0      success, or a job stopped at a checkpoint (SIGTERM, SIGUSR1, Ctrl-C)
  1      a failure of the environment or of a peer: a member died, the coordinator was
         lost, a deadline passed
  2      bad config, data or command line: the message names the file, line or field
  128+N  train: a member was killed by signal N (mpirun's status, passed on)
)";
  return text;
}

std::string CommandHelpText(const std::string& command) {
  auto it = Texts().find(command);
  if (it == Texts().end()) return "";
  const bool no_config = command == "inspect-checkpoint" || command == "eval" ||
                         command == "predict" || command == "report";
  return it->second + (no_config ? "  --help                this text\n" : kSetHelp);
}

}  // namespace flexmoe
