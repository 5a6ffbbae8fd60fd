// The flexmoe command end to end: validate-config, synth and prepare on the shipped
// configs, exit code 2 with file and line for bad input, and nothing half-written.
#include <gtest/gtest.h>

#include <filesystem>

#include "cluster/base/atomic_file.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace flexmoe {
namespace {

using testing::RunCommand;

const std::string kBinary = FLEXMOE_BINARY;
const std::string kSource = FLEXMOE_SOURCE_DIR;

TEST(CliTest, ValidateConfigPrintsResolvedConfig) {
  auto r = RunCommand({kBinary, "validate-config", kSource + "/configs/quickstart.textproto",
                       "--set", "training.epochs=7"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("epochs: 7"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("gate_loss_weight: 0.01"), std::string::npos) << r.output;
}

TEST(CliTest, ShippedConfigsValidate) {
  for (const char* name : {"quickstart", "adni_like", "physionet2012"}) {
    auto r = RunCommand({kBinary, "validate-config", kSource + "/configs/" + name + ".textproto"});
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.output;
  }
}

TEST(CliTest, BadConfigExitsTwoNamingLine) {
  testing::TempDir dir;
  std::string path =
      dir.Write("bad.textproto", "model {\n  top_k: -1\n}\ndata { layout: WIDE_CSV }\n");
  auto r = RunCommand({kBinary, "validate-config", path});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.textproto"), std::string::npos) << r.output;
  r = RunCommand({kBinary, "validate-config", path, "--bogus", "1"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown flag --bogus"), std::string::npos) << r.output;
}

TEST(CliTest, EveryCommandHasHelpAndUnknownFlagsNameTheClosest) {
  for (const char* command :
       {"validate-config", "synth", "prepare", "train", "worker", "loader", "coordinator",
        "inspect-checkpoint", "eval", "predict", "report", "serve"}) {
    auto r = RunCommand({kBinary, command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << command << ": " << r.output;
    EXPECT_NE(r.output.find(std::string("usage: flexmoe ") + command), std::string::npos)
        << r.output;
  }
  auto r = RunCommand({kBinary, "train", "--help"});
  for (const char* flag : {"--workers N", "--threads N", "--resume", "--max-restarts K", "--set"}) {
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag << "\n" << r.output;
  }
  const std::string config = kSource + "/configs/quickstart.textproto";
  r = RunCommand({kBinary, "train", "--config", config, "--worker", "2"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown flag --worker (did you mean --workers?)"), std::string::npos)
      << r.output;
  r = RunCommand({kBinary, "train", "--config", config, "--max-restart", "1"});
  EXPECT_NE(r.output.find("did you mean --max-restarts?"), std::string::npos) << r.output;
  // The overview lists the exit statuses.
  r = RunCommand({kBinary, "help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("128+N"), std::string::npos) << r.output;
}

TEST(CliTest, FieldsThatWouldDoNothingAreRefusedByName) {
  // Fields that are not in the schema are refused by name (and line, in a file).
  const std::string config = kSource + "/configs/quickstart.textproto";
  for (const char* set : {"cluster.coordinator_port=5000", "cluster.coordinator_address=x",
                          "metrics.tensorboard_dir=x"}) {
    auto r = RunCommand({kBinary, "validate-config", config, "--set", set});
    EXPECT_EQ(r.exit_code, 2) << set << ": " << r.output;
    std::string field = std::string(set).substr(std::string(set).find('.') + 1);
    field = field.substr(0, field.find('='));
    EXPECT_NE(r.output.find(field), std::string::npos) << set << ": " << r.output;
  }
  testing::TempDir dir;
  std::string path = dir.Write(
      "c.textproto", "data { layout: WIDE_CSV }\nmetrics {\n  tensorboard_dir: \"x\"\n}\n");
  auto r = RunCommand({kBinary, "validate-config", path});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("c.textproto:3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tensorboard_dir"), std::string::npos) << r.output;
  r = RunCommand({kBinary, "validate-config", config, "--set", "cluster.heartbeat_timeout_s=1"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cluster.heartbeat_timeout_s"), std::string::npos) << r.output;
  r = RunCommand({kBinary, "validate-config", config, "--set", "checkpoint.every_steps=-1"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("checkpoint.every_steps"), std::string::npos) << r.output;
}

// The live page's address is checked with the config, before any process starts.
TEST(CliTest, HttpListenIsHostPort) {
  const std::string config = kSource + "/configs/quickstart.textproto";
  for (const char* bad : {"cluster.http_listen=localhost", "cluster.http_listen=:80",
                          "cluster.http_listen=h:99999", "cluster.http_listen=h:x1"}) {
    auto r = RunCommand({kBinary, "validate-config", config, "--set", bad});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.output;
    EXPECT_NE(r.output.find("cluster.http_listen"), std::string::npos) << r.output;
  }
  for (const char* good : {"cluster.http_listen=", "cluster.http_listen=0.0.0.0:8080"}) {
    EXPECT_EQ(RunCommand({kBinary, "validate-config", config, "--set", good}).exit_code, 0) << good;
  }
}

// training.device: CUDA and cluster.backend: NCCL where they cannot run are refused before
// any process starts, naming the field and what to do.
TEST(CliTest, DeviceAndBackendThisBuildCannotRunAreRefused) {
  const std::string config = kSource + "/configs/quickstart.textproto";
  testing::TempDir dir;
  const std::string run_dir = dir.path() + "/run";
  auto r = RunCommand({kBinary, "validate-config", config, "--set", "cluster.backend=NCCL"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cluster.backend"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("needs training.device: CUDA"), std::string::npos) << r.output;
  // A CUDA-less build (Debian's LibTorch); a CUDA build runs it (bench/gpu_check.sh).
#ifndef FLEXMOE_TORCH_CUDA
  {
    r = RunCommand({kBinary, "train", "--config", config, "--workers", "1", "--set",
                    "training.device=CUDA", "--set", "run.dir=" + run_dir});
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("training.device: CUDA: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("training.device: CPU"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("CPU-only"), std::string::npos) << r.output;
    EXPECT_FALSE(std::filesystem::exists(run_dir)) << r.output;
  }
#endif
#ifndef FLEXMOE_HAVE_NCCL
  r = RunCommand({kBinary, "train", "--config", config, "--workers", "1", "--set",
                  "training.device=CUDA", "--set", "cluster.backend=NCCL"});
  EXPECT_NE(r.exit_code, 0) << r.output;
#endif
}

TEST(CliTest, SynthThenPrepareQuickstart) {
  testing::TempDir dir;
  std::string config = kSource + "/configs/quickstart.textproto";
  auto r = RunCommand({kBinary, "synth", "--config", config, "--out", dir.Path("raw")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunCommand({kBinary, "prepare", "--config", config, "--set", "data.input=" + dir.Path("raw"),
                  "--out", dir.Path("prepared")});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("samples"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir.Path("prepared/index.pb")));
  EXPECT_TRUE(std::filesystem::exists(dir.Path("prepared/summary.json")));
}

TEST(CliTest, MalformedCsvExitsTwoWithLineAndKeepsPreviousOutput) {
  testing::TempDir dir;
  dir.Write("in/labels.csv", "id,label\na,0\nb,1\n");
  dir.Write("in/m.csv", "id,x\na,1\nb,\"2\n");
  dir.Write("out/keep.txt", "previous");
  std::string config = dir.Write(
      "c.textproto",
      "data { layout: PER_MODALITY_CSV input: \"" + dir.Path("in") +
          "\" modalities { name: \"m\" } split { training: 1 validation: 0 testing: 0 } }\n"
          "model { num_experts: 1 top_k: 1 }\n");
  auto r = RunCommand({kBinary, "prepare", "--config", config, "--out", dir.Path("out")});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("m.csv:3"), std::string::npos) << r.output;
  EXPECT_EQ(ReadFile(dir.Path("out/keep.txt")), "previous");
  EXPECT_FALSE(std::filesystem::exists(dir.Path("out/index.pb")));
}

// The launch paths across hosts refuse bad input with exit 2 before anything is written to
// the run directory: a bad hostfile (file and line named), --slurm outside an allocation,
// both at once, a --nodes range that is not one.
TEST(CliTest, TrainAcrossHostsRefusesBadInputBeforeWritingAnything) {
  testing::TempDir dir;
  const std::string config = kSource + "/configs/quickstart.textproto";
  ASSERT_EQ(RunCommand({kBinary, "synth", "--config", config, "--out", dir.Path("raw")}).exit_code,
            0);
  const std::vector<std::string> data = {"--set", "data.input=" + dir.Path("raw"),
                                         "--set", "data.prepared_dir=" + dir.Path("prepared"),
                                         "--set", "run.dir=" + dir.Path("run")};
  const std::string hostfile = dir.Write("hosts", "# two hosts\nnode1 slots=2\nnode2 slots=x\n");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--hostfile", hostfile}, "hosts:3: 'slots=x' is not slots=N"},
      {{"--hostfile", dir.Path("no-such-file")}, "cannot read the hostfile"},
      {{"--slurm"}, "not inside a SLURM allocation"},
      {{"--slurm", "--hostfile", hostfile}, "--hostfile and --slurm are two launch paths"},
      {{"--nodes", "3:2"}, "--nodes '3:2': MAX is below MIN"},
      {{"--nodes", "0"}, "--nodes '0': expected MIN or MIN:MAX"}};
  for (const auto& [flags, message] : cases) {
    std::vector<std::string> argv = {kBinary, "train", "--config", config};
    argv.insert(argv.end(), data.begin(), data.end());
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto r = RunCommand(argv, 60, {"SLURM_JOB_ID="});
    EXPECT_EQ(r.exit_code, 2) << flags[0] << ": " << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir.Path("run")))
        << flags[0] << " wrote the run directory";
  }
}

}  // namespace
}  // namespace flexmoe
