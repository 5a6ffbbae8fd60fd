// The declarations of the flexmoe commands (command_spec.h): flags, positional arguments
// and help texts, in one table.
#include <sstream>

#include "launch/cli/command_spec.h"

namespace flexmoe {
namespace {

using Kind = FlagSpec::Kind;

FlagSpec Value(std::string name, std::string value_name, std::string help, bool required = false) {
  return {std::move(name), std::move(value_name), std::move(help), Kind::kValue, required};
}
FlagSpec Switch(std::string name, std::string help) {
  return {std::move(name), "", std::move(help), Kind::kSwitch, false};
}
FlagSpec List(std::string name, std::string value_name, std::string help) {
  return {std::move(name), std::move(value_name), std::move(help), Kind::kList, false};
}
// --config FILE, required: validate-config alone also takes the file as its argument.
FlagSpec Config(std::string help = "the config (textproto)") {
  return Value("config", "FILE", std::move(help), true);
}
FlagSpec Threads(std::string help) { return Value("threads", "N", std::move(help)); }

// `flexmoe init`: a config for a wide CSV.
void AddInit(std::vector<CommandSpec>& out) {
  out.push_back(
      {"init",
       "write a commented config for a wide CSV from a grouping of its columns",
       "Writes a commented config (layout WIDE_CSV) for a wide CSV: its modalities from a\n"
       "modalities.json ({\"modality\": [\"column\", ...]}) or from column-name prefixes,\n"
       "the id and label columns, the classes found, and every other column excluded.\n"
       "The model and training sections are left to the default recipe (docs/recipe.md).\n"
       "The config is validated before it is written.",
       "",
       "",
       false,
       false,
       {Value("input", "CSV", "the wide CSV (plain or gzip)", true),
        Value("out", "FILE", "where to write the config", true),
        Value("modalities", "JSON", "{\"modality\": [\"column\", ...]} in the modalities' order"),
        List("group", "NAME=PREFIX[,PREFIX...]",
             "modality NAME holds the columns starting with a prefix\n(instead of --modalities)"),
        Value("id", "COLUMN", "the id column (default id)"),
        Value("label", "COLUMN", "the label column (default label)"),
        List("exclude", "COLUMN", "columns never used as features (leaks, other ids)"),
        Value("splits", "FILE", "data.splits_file (default: a seeded stratified split)"),
        Value("prepared-dir", "DIR", "data.prepared_dir (default data/prepared)"),
        Switch("force", "replace FILE when it exists")}});
}

// The commands that prepare data and train.
void AddDataAndTraining(std::vector<CommandSpec>& out) {
  out.push_back({"validate-config",
                 "print the resolved config, or the error in it",
                 "Prints the resolved config (defaults filled in), or the error in it.",
                 "FILE",
                 "the config (textproto), or --config FILE",
                 false,
                 true,
                 {Value("config", "FILE", "the config (textproto)")}});
  out.push_back({"synth",
                 "write a synthetic layout-A dataset (default data.input)",
                 "Writes a synthetic layout-A dataset (config section synth).",
                 "",
                 "",
                 false,
                 true,
                 {Config(), Value("out", "DIR", "where (default data.input)")}});
  out.push_back({"prepare",
                 "prepare shards (default data.prepared_dir)",
                 "Prepares the shards, the index and the statistics of data.input.",
                 "",
                 "",
                 false,
                 true,
                 {Config(), Value("out", "DIR", "where (default data.prepared_dir)")}});
  out.push_back(
      {"train",
       "the whole job: coordinator, loaders and N workers (mpirun), on this machine,\n"
       "across a hostfile's hosts (--hostfile) or a SLURM allocation (--slurm);\n"
       "metrics, checkpoints and the best parameters in run.dir; --resume continues\n"
       "run.dir from its newest complete checkpoint (at any N)",
       "Runs the whole job: the coordinator, a loader per host and N workers (mpirun),\n"
       "into run.dir (default runs/<date-time>): the resolved config, job.json,\n"
       "metrics.jsonl, tensorboard/, checkpoints/, the best parameters in checkpoint/, the\n"
       "members' logs. On this machine by default; with --hostfile FILE the coordinator\n"
       "runs on the file's first host and a loader on each (run.dir on a file system every\n"
       "host sees); with --slurm, inside sbatch or salloc, on the allocation's nodes. Prints\n"
       "the URL of the job's live page. Ctrl-C, SIGTERM or SIGUSR1 stop it at a checkpoint;\n"
       "a second Ctrl-C stops it at once.",
       "",
       "",
       false,
       true,
       {Config(),
        Value("workers", "N",
              "worker processes (default cluster.workers on this machine,\n"
              "the hostfile's slots or the allocation's tasks across hosts)"),
        Threads("compute threads per worker (default: on this machine the\n"
                "cores over the workers, less one for the loader and\n"
                "coordinator; across hosts SLURM_CPUS_PER_TASK, else 1)"),
        Switch("resume", "continue run.dir from its newest complete checkpoint, at\nany N"),
        Value("max-restarts", "K",
              "when a member or host dies, start again from the newest\n"
              "checkpoint without the dead workers, on the hosts still\n"
              "reachable (and those back since), up to K times (default 0)"),
        Value("hostfile", "FILE",
              "run across the hosts of an Open MPI hostfile (host\n"
              "[slots=N] per line), through mpirun"),
        Switch("slurm", "run across the nodes of the SLURM allocation this runs in"),
        Value("nodes", "MIN[:MAX]",
              "hosts per attempt across hosts: a restart needs MIN\n"
              "reachable and uses at most MAX (default 1:all)")}});
  out.push_back(
      {"worker",
       "one rank of a training job (under mpirun or srun)",
       "One rank of a training job, under mpirun or srun (flexmoe train starts them).\n"
       "With cluster.coordinator it joins the job's coordinator.",
       "",
       "",
       false,
       true,
       {Config(), Threads("compute threads (default 1)"),
        Switch("resume", "continue from the newest complete checkpoint"),
        Value("restart", "K", "set by the launcher: this is restart K"),
        Value("restart-reason", "TEXT", "set by the launcher: what ended the attempt before")}});
}

// The job's services and the launch scripts' helper.
void AddServices(std::vector<CommandSpec>& out) {
  out.push_back(
      {"loader",
       "serve batches to the workers",
       "Serves combination-sorted batches of data.prepared_dir to the workers; prints\n"
       "\"listening on HOST:PORT\". With cluster.coordinator it joins the job.",
       "",
       "",
       false,
       true,
       {Config(), Value("listen", "HOST:PORT", "where (default cluster.bind_address, a free port)"),
        Value("rank", "N",
              "its index among the job's loaders (default: the task\n"
              "index mpirun or srun gives it, else 0)"),
        Threads("threads that build batches (shard reads, gathering,\n"
                "encoding) off the network thread (default 2)")}});
  out.push_back(
      {"coordinator",
       "the job's control plane (membership, heartbeats, stop on a member's death,\n"
       "checkpoints, metrics, job.json, the live page)",
       "The job's control plane: membership, heartbeats, the expert placement, the stop\n"
       "of every member when one dies, checkpoints, metrics.jsonl and TensorBoard files,\n"
       "job.json, the live page and /metrics (docs/coordinator.md). Members join with\n"
       "--set cluster.coordinator=HOST:PORT. SIGTERM or SIGUSR1: checkpoint and stop;\n"
       "SIGUSR2: checkpoint and go on.",
       "",
       "",
       false,
       true,
       {Config(), Value("listen", "HOST:PORT", "where (default cluster.bind_address, a free port)"),
        Value("launcher-pid", "PID", "set by the launcher: stop the job when PID ends"),
        Value("restart", "K", "set by the launcher: this is restart K")}});
  out.push_back({"lease",
                 "hold run.dir's lease for a launch script (one job per run directory)",
                 "Holds run.dir's lease (job.lease: one job per run directory, on any host) for a\n"
                 "launch script: prints \"lease held on DIR\", or exits 2 naming the job that\n"
                 "holds it; a lease not renewed for cluster.heartbeat_timeout_s is taken over.\n"
                 "Renews it while PID (default: its parent) lives; releases it when PID ends or\n"
                 "on SIGTERM.",
                 "",
                 "",
                 false,
                 true,
                 {Config("the config (run.dir, cluster.heartbeat_timeout_s)"),
                  Value("what", "TEXT", "who holds it, for a refused job's message"),
                  Value("watch-pid", "PID", "the process whose life the lease lasts")}});
}

// Scoring new data and the test split.
void AddInference(std::vector<CommandSpec>& out) {
  const FlagSpec checkpoint =
      Value("checkpoint", "DIR", "an export (run.dir/checkpoint) or its run directory");
  out.push_back(
      {"eval",
       "metrics per combination, calibration and attribution",
       "Scores the best parameters on a split of the prepared dataset they were trained\n"
       "on (training's per-combination table), or on a labelled input; adds the\n"
       "expected calibration error and the modality attribution (docs/inference.md).",
       "",
       "",
       false,
       false,
       {Value("checkpoint", "DIR", "an export (run.dir/checkpoint) or its run directory", true),
        Value("split", "NAME", "test (default), validation or training"),
        Value("input", "PATH", "a labelled layout-A directory or wide CSV instead"),
        Value("out", "FILE", "the JSON (default <run dir>/eval/<split>.json)"),
        Switch("no-explain", "skip the attribution (one forward per modality)"),
        Threads("compute threads (default 1)")}});
  out.push_back(
      {"predict",
       "probabilities for new rows, whatever modalities they have",
       "Class probabilities for every row of a layout-A directory or a wide CSV (plain\n"
       "or gzip), whatever modalities each row has, as a CSV: the id, one column per\n"
       "class, with --explain one attribution column per modality, then the row's\n"
       "modalities. Bad input: exit 2 naming file, line and column, no output file.",
       "",
       "",
       false,
       false,
       {checkpoint,
        Value("input", "PATH", "the rows to score (the training config's column map)", true),
        Value("out", "FILE", "the CSV, written once complete", true),
        Switch("calibrated", "apply the temperature fitted on the validation split"),
        Switch("explain", "add the modality attribution columns"),
        List("ensemble", "DIR",
             "average the probabilities of several exports (a run\n"
             "directory stands for all its seeds)"),
        Value("batch", "N", "rows per forward (default 256)"),
        Threads("compute threads (default 1)")}});
}

// Figures, search, the live page of a run and checkpoint inspection.
void AddTools(std::vector<CommandSpec>& out) {
  out.push_back(
      {"report",
       "the run's figures (gnuplot PNGs) in <run>/report/",
       "Draws the run's figures with gnuplot into <seed dir>/report/: the expert\n"
       "activation heatmap, the training curves, per-combination metrics, the\n"
       "reliability diagram and the modality attribution (evaluating the test split\n"
       "into eval/test.json first when it is missing).",
       "RUN_DIR",
       "the run directory (or --run RUN_DIR)",
       false,
       false,
       {Value("run", "RUN_DIR", "the run directory"), Threads("compute threads (default 1)")}});
  out.push_back(
      {"tune",
       "search config fields by k-fold cross-validation (parallel trials);\n"
       "trials.csv and best.textproto",
       "A search over config fields (grid or seeded random, the space file: docs/tune.md).\n"
       "Each trial is scored by k-fold cross-validation on the training and validation\n"
       "splits (test samples are in no fold), one `flexmoe train` per fold; a finished\n"
       "fold with the same command line is reused, so a stopped search resumes.\n"
       "Writes DIR/trials.csv and DIR/best.textproto (the best mean score).",
       "",
       "",
       false,
       true,
       {Value("config", "FILE", "the base config (its data.prepared_dir must be prepared)", true),
        Value("space", "FILE", "the search space (proto/tune.proto, text format)", true),
        Value("trials", "N", "grid: the first N points; random: N draws", true),
        Value("out", "DIR", "folds, trial runs and results", true),
        Value("parallel", "P", "trials at once (default: cores / threads)"),
        Threads("compute threads per trial (default 1)"),
        Value("trial-timeout-s", "S", "a fold's run past S seconds is stopped (default 7200)")}});
  out.push_back({"serve",
                 "the live page and /metrics of a finished, failed or running run",
                 "Serves the page a job's coordinator serves (members, step times, curves, the\n"
                 "expert heatmap, checkpoints, the culprit of a failed job) and /metrics, from a\n"
                 "run directory's job.json and metrics.jsonl, re-read as they change. Prints the\n"
                 "URL with a token of its own that every request must carry (the URL sets it as\n"
                 "a cookie; a scraper sends Authorization: Bearer TOKEN). Ctrl-C stops it.",
                 "RUN_DIR",
                 "the run directory (run.dir)",
                 true,
                 false,
                 {Value("listen", "HOST:PORT", "where (default 127.0.0.1:0, a free port)"),
                  Switch("no-token", "no token: serve anyone who can reach the address")}});
  out.push_back({"inspect-checkpoint",
                 "print a checkpoint and verify every file's size and CRC32C",
                 "Prints a checkpoint's manifest and verifies every file's size and CRC32C.",
                 "DIR",
                 "the checkpoint directory",
                 true,
                 false,
                 {}});
}

std::vector<CommandSpec> AllCommands() {
  std::vector<CommandSpec> all;
  AddInit(all);
  AddDataAndTraining(all);
  AddServices(all);
  AddInference(all);
  AddTools(all);
  return all;
}

}  // namespace

std::string Synopsis(const std::string& lead, const CommandSpec& spec) {
  std::vector<std::string> parts;
  if (!spec.positional.empty()) {
    parts.push_back(spec.positional_required ? spec.positional : "[" + spec.positional + "]");
  }
  for (const FlagSpec& f : spec.flags) {
    std::string flag = "--" + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
    if (f.kind == Kind::kList) flag += "...";
    parts.push_back(f.required ? flag : "[" + flag + "]");
  }
  constexpr size_t kWidth = 80;
  const std::string indent(lead.size() + spec.name.size() + 1, ' ');
  std::string out = lead + spec.name, line = out;
  for (const std::string& part : parts) {
    if (line.size() + 1 + part.size() > kWidth && line.size() > indent.size()) {
      out += "\n" + indent;
      line = indent;
    } else {
      out += " ";
      line += " ";
    }
    out += part;
    line += part;
  }
  return out + "\n";
}

const std::vector<CommandSpec>& CommandSpecs() {
  static const std::vector<CommandSpec> specs = AllCommands();
  return specs;
}

const CommandSpec* FindCommandSpec(const std::string& name) {
  for (const CommandSpec& spec : CommandSpecs()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::string UsageText() {
  std::ostringstream out;
  out << "usage: flexmoe COMMAND [flags] [--set path.to.field=value]...\n\ncommands:\n";
  for (const CommandSpec& spec : CommandSpecs()) {
    out << Synopsis("  ", spec);
    std::istringstream summary(spec.summary);
    for (std::string line; std::getline(summary, line);) out << "        " << line << "\n";
  }
  out << "  help\n        this text\n\n"
      << "flexmoe COMMAND --help prints the command's flags. --set overrides one config field on\n"
         "every command that reads a config, e.g. --set training.epochs=3.\n\n"
         "exit status (docs/errors.md):\n"
         "  0      success, or a job stopped at a checkpoint (SIGTERM, SIGUSR1, Ctrl-C)\n"
         "  1      a failure of the environment or of a peer: a member died, the coordinator was\n"
         "         lost, a deadline passed\n"
         "  2      bad config, data or command line: the message names the file, line or field\n"
         "  128+N  train: a member was killed by signal N (mpirun's status, passed on)\n";
  return out.str();
}

}  // namespace flexmoe
