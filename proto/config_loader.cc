// Config loading: parse (with line numbers), overrides by reflection, defaults, validation.
#include "proto/config_loader.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"

namespace flexmoe {
namespace {

namespace pb = google::protobuf;
using config::Config;

class CollectErrors : public pb::io::ErrorCollector {
 public:
  explicit CollectErrors(std::string name) : name_(std::move(name)) {}
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (first_.empty()) {
      first_ = name_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " +
               message;
    }
  }
  const std::string& first() const { return first_; }

 private:
  std::string name_;
  std::string first_;
};

// One step of a field path: a name and an optional [index].
struct PathStep {
  std::string name;
  int index = -1;
};

std::vector<PathStep> SplitPath(const std::string& path) {
  static const std::regex kStep(R"(^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$)");
  std::vector<PathStep> steps;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    std::smatch match;
    if (!std::regex_match(part, match, kStep)) {
      Fail(ErrorCode::kInvalidArgument, "--set ", path, ": '", part, "' is not a field name");
    }
    steps.push_back({match[1], match[2].matched ? std::stoi(match[2]) : -1});
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return steps;
}

// The number of elements of the repeated field `prefix` names ("data.modalities").
int RepeatedSize(const Config& config, const std::string& prefix, const std::string& path) {
  const std::vector<PathStep> steps = SplitPath(prefix);
  const pb::Message* message = &config;
  for (size_t i = 0; i < steps.size(); ++i) {
    const pb::Reflection* reflection = message->GetReflection();
    const pb::FieldDescriptor* field = message->GetDescriptor()->FindFieldByName(steps[i].name);
    if (field == nullptr) {
      Fail(ErrorCode::kInvalidArgument, "--set ", path, ": ", message->GetDescriptor()->name(),
           " has no field '", steps[i].name, "'");
    }
    if (i + 1 == steps.size()) {
      if (!field->is_repeated() || steps[i].index >= 0) {
        Fail(ErrorCode::kInvalidArgument, "--set ", path, ": [*] follows '", steps[i].name,
             "', which is not a list");
      }
      return reflection->FieldSize(*message, field);
    }
    if (field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      Fail(ErrorCode::kInvalidArgument, "--set ", path, ": '", steps[i].name, "' has no fields");
    }
    if (field->is_repeated()) {
      if (steps[i].index < 0 || steps[i].index >= reflection->FieldSize(*message, field)) {
        Fail(ErrorCode::kInvalidArgument, "--set ", path, ": '", steps[i].name,
             "' needs an index in range");
      }
      message = &reflection->GetRepeatedMessage(*message, field, steps[i].index);
    } else {
      message = &reflection->GetMessage(*message, field);
    }
  }
  return 0;
}

// A repeated scalar named without an index: replaced by the comma-separated list `value`.
void SetRepeatedList(pb::Message* message, const pb::FieldDescriptor* field,
                     const std::string& path, const std::string& list) {
  message->GetReflection()->ClearField(message, field);
  // "a,b,c", or the text format's "[a, b, c]".
  std::string value = list;
  if (value.size() >= 2 && value.front() == '[' && value.back() == ']') {
    value = value.substr(1, value.size() - 2);
  }
  std::string text;
  size_t from = 0;
  while (from <= value.size() && !value.empty()) {
    size_t comma = value.find(',', from);
    std::string item = value.substr(from, comma == std::string::npos ? comma : comma - from);
    const size_t first = item.find_first_not_of(' '), last = item.find_last_not_of(' ');
    item = first == std::string::npos ? std::string() : item.substr(first, last - first + 1);
    text +=
        field->name() + ": " +
        (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING ? "\"" + pb::CEscape(item) + "\""
                                                                  : item) +
        "\n";
    if (comma == std::string::npos) break;
    from = comma + 1;
  }
  CollectErrors errors("--set " + path);
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  parser.AllowPartialMessage(true);
  if (!parser.MergeFromString(text, message)) Fail(ErrorCode::kInvalidArgument, errors.first());
}

// Element `index` of a repeated scalar set to `value` (the list rebuilt through text).
void SetRepeatedElement(pb::Message* message, const pb::FieldDescriptor* field, int index,
                        const std::string& path, const std::string& value) {
  const pb::Reflection* reflection = message->GetReflection();
  const int size = reflection->FieldSize(*message, field);
  if (index == size) Fail(ErrorCode::kInvalidArgument, "--set ", path, ": index out of range");
  std::vector<std::string> items;
  for (int j = 0; j < size; ++j) {
    std::string item;
    pb::TextFormat::PrintFieldValueToString(*message, field, j, &item);
    items.push_back(j == index ? value : item);
  }
  reflection->ClearField(message, field);
  for (const std::string& item : items) {
    std::string text = field->name() + ": " + item;
    if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING && !item.empty() &&
        item.front() != '"') {
      text = field->name() + ": \"" + pb::CEscape(item) + "\"";
    }
    if (!pb::TextFormat::MergeFromString(text, message)) {
      Fail(ErrorCode::kInvalidArgument, "--set ", path, ": cannot parse '", value, "'");
    }
  }
}

// A singular scalar set to `value` (strings may be given without quotes).
void SetScalar(pb::Message* message, const pb::FieldDescriptor* field, const std::string& path,
               const std::string& value) {
  std::string text = value;
  if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING &&
      (text.empty() || text.front() != '"')) {
    text = "\"" + pb::CEscape(value) + "\"";
  }
  if (!pb::TextFormat::ParseFieldValueFromString(text, field, message)) {
    Fail(ErrorCode::kInvalidArgument, "--set ", path, ": '", value, "' is not a valid ",
         field->type_name(), " value");
  }
}

// One step of a --set path through a repeated field: the element message to go on in, or
// null once the value was set (a repeated scalar).
pb::Message* RepeatedStep(pb::Message* message, const pb::FieldDescriptor* field,
                          const PathStep& step, bool last, const std::string& path,
                          const std::string& value) {
  const pb::Reflection* reflection = message->GetReflection();
  const bool is_message = field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE;
  if (step.index < 0) {
    if (!last || is_message) {
      Fail(ErrorCode::kInvalidArgument, "--set ", path, ": '", step.name,
           "' is repeated; name an element as ", step.name, "[i]");
    }
    SetRepeatedList(message, field, path, value);
    return nullptr;
  }
  const int size = reflection->FieldSize(*message, field);
  if (step.index > size) {
    Fail(ErrorCode::kInvalidArgument, "--set ", path, ": '", step.name, "' has ", size,
         " elements; index ", step.index, " is out of range");
  }
  if (is_message) {
    if (last) Fail(ErrorCode::kInvalidArgument, "--set ", path, ": names a message, not a value");
    return step.index == size ? reflection->AddMessage(message, field)
                              : reflection->MutableRepeatedMessage(message, field, step.index);
  }
  if (!last) Fail(ErrorCode::kInvalidArgument, "--set ", path, ": '", step.name, "' has no fields");
  SetRepeatedElement(message, field, step.index, path, value);
  return nullptr;
}

void ApplyOverride(Config* config, const std::string& assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    Fail(ErrorCode::kInvalidArgument, "--set ", assignment, ": expected path.to.field=value");
  }
  std::string path = assignment.substr(0, eq);
  std::string value = assignment.substr(eq + 1);
  // "list[*].field=v": the same value on every element of the list.
  if (const size_t star = path.find("[*]"); star != std::string::npos) {
    const std::string prefix = path.substr(0, star);
    const int n = RepeatedSize(*config, prefix, path);
    if (n == 0) Fail(ErrorCode::kInvalidArgument, "--set ", path, ": '", prefix, "' is empty");
    for (int i = 0; i < n; ++i) {
      ApplyOverride(config,
                    prefix + "[" + std::to_string(i) + "]" + path.substr(star + 3) + "=" + value);
    }
    return;
  }
  std::vector<PathStep> steps = SplitPath(path);
  pb::Message* message = config;
  for (size_t i = 0; i < steps.size() && message != nullptr; ++i) {
    const PathStep& step = steps[i];
    const pb::Descriptor* descriptor = message->GetDescriptor();
    const pb::FieldDescriptor* field = descriptor->FindFieldByName(step.name);
    if (field == nullptr) {
      Fail(ErrorCode::kInvalidArgument, "--set ", path, ": ", descriptor->name(), " has no field '",
           step.name, "'");
    }
    const bool last = i + 1 == steps.size();
    if (field->is_repeated()) {
      message = RepeatedStep(message, field, step, last, path, value);
    } else if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (last) Fail(ErrorCode::kInvalidArgument, "--set ", path, ": names a message, not a value");
      message = message->GetReflection()->MutableMessage(message, field);
    } else {
      if (!last) {
        Fail(ErrorCode::kInvalidArgument, "--set ", path, ": '", step.name, "' has no fields");
      }
      SetScalar(message, field, path, value);
      return;
    }
  }
}

// Sets every unset singular field to its default, recursively; creates sub-messages of
// the top-level config so that printing shows the whole resolved config.
void FillDefaults(pb::Message* message, bool create_messages) {
  const pb::Descriptor* descriptor = message->GetDescriptor();
  const pb::Reflection* reflection = message->GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const pb::FieldDescriptor* field = descriptor->field(i);
    if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int j = 0; j < reflection->FieldSize(*message, field); ++j) {
          FillDefaults(reflection->MutableRepeatedMessage(message, field, j), false);
        }
      } else if (create_messages || reflection->HasField(*message, field)) {
        FillDefaults(reflection->MutableMessage(message, field), true);
      }
      continue;
    }
    if (field->is_repeated() || reflection->HasField(*message, field)) continue;
    switch (field->cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_INT32:
        reflection->SetInt32(message, field, field->default_value_int32());
        break;
      case pb::FieldDescriptor::CPPTYPE_INT64:
        reflection->SetInt64(message, field, field->default_value_int64());
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT32:
        reflection->SetUInt32(message, field, field->default_value_uint32());
        break;
      case pb::FieldDescriptor::CPPTYPE_UINT64:
        reflection->SetUInt64(message, field, field->default_value_uint64());
        break;
      case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        reflection->SetDouble(message, field, field->default_value_double());
        break;
      case pb::FieldDescriptor::CPPTYPE_FLOAT:
        reflection->SetFloat(message, field, field->default_value_float());
        break;
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        reflection->SetBool(message, field, field->default_value_bool());
        break;
      case pb::FieldDescriptor::CPPTYPE_ENUM:
        reflection->SetEnum(message, field, field->default_value_enum());
        break;
      case pb::FieldDescriptor::CPPTYPE_STRING:
        reflection->SetString(message, field, field->default_value_string());
        break;
      default:
        break;
    }
  }
}

// Finds the line of a field path ("data.modalities[1].name") in the parsed file.
class FieldLines {
 public:
  FieldLines(const pb::TextFormat::ParseInfoTree* tree) : tree_(tree) {}
  int LineOf(const std::string& path) const {
    const pb::TextFormat::ParseInfoTree* tree = tree_;
    const pb::Descriptor* descriptor = Config::descriptor();
    int line = -1;
    for (const PathStep& step : SplitPath(path)) {
      if (tree == nullptr || descriptor == nullptr) break;
      const pb::FieldDescriptor* field = descriptor->FindFieldByName(step.name);
      if (field == nullptr) break;
      int index = field->is_repeated() ? std::max(step.index, 0) : -1;
      pb::TextFormat::ParseLocation location = tree->GetLocation(field, index);
      if (location.line < 0) break;
      line = location.line + 1;
      if (field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) break;
      tree = tree->GetTreeForNested(field, index);
      descriptor = field->message_type();
    }
    return line;
  }

 private:
  const pb::TextFormat::ParseInfoTree* tree_;
};

class Validator {
 public:
  Validator(std::string name, const FieldLines& lines) : name_(std::move(name)), lines_(lines) {}

  template <typename... Parts>
  void Check(bool ok, const std::string& field, const Parts&... parts) const {
    if (ok) return;
    int line = lines_.LineOf(field);
    std::string where = name_ + (line > 0 ? ":" + std::to_string(line) : std::string());
    Fail(ErrorCode::kInvalidArgument, where, ": field ", field, ": ", parts...);
  }

 private:
  std::string name_;
  const FieldLines& lines_;
};

// Modality i of `data`: its checks, and its defaults made explicit.
void ValidateModality(config::DataConfig& data, int i, std::set<std::string>* names,
                      const Validator& v) {
  auto& modality = *data.mutable_modalities(i);
  const std::string at = "data.modalities[" + std::to_string(i) + "]";
  v.Check(!modality.name().empty(), at + ".name", "every modality needs a name");
  v.Check(names->insert(modality.name()).second, at + ".name", "duplicate modality name '",
          modality.name(), "'");
  if (modality.file().empty()) modality.set_file(modality.name() + ".csv");
  if (modality.scaling() == config::SCALING_DEFAULT) modality.set_scaling(data.scaling());
  if (modality.fill() == config::FILL_DEFAULT) modality.set_fill(config::AUTO);
  if (data.layout() == config::DataConfig::WIDE_CSV) {
    v.Check(modality.columns_size() > 0, at + ".columns", "a WIDE_CSV modality needs its columns");
  }
  v.Check(modality.synth_features() >= 0, at + ".synth_features", "must not be negative");
  const ArrayFormat format = ArrayFormatOf(modality.file());
  if (format != ArrayFormat::kCsv) {
    v.Check(data.layout() == config::DataConfig::PER_MODALITY_CSV, at + ".file",
            "array files (.npy, .h5ad, .h5, .hdf5) are read in layout PER_MODALITY_CSV");
  }
  v.Check(modality.ids_file().empty() || format == ArrayFormat::kNpy, at + ".ids_file",
          "only a .npy modality takes an ids file (its file is '", modality.file(), "')");
  v.Check((modality.hdf5_matrix().empty() && modality.hdf5_ids().empty()) ||
              format == ArrayFormat::kHdf5,
          at + ".hdf5_matrix", "only an HDF5 modality (.h5ad, .h5, .hdf5) takes hdf5_ fields");
  if (modality.encoder() == config::CNN3D && data.missing_indicators()) {
    v.Check(false, "data.missing_indicators",
            "the CNN3D encoder of modality '" + modality.name() +
                "' takes a whole volume: indicators would change its shape");
  }
  v.Check(modality.volume_mask().empty() || modality.encoder() == config::CNN3D,
          at + ".volume_mask", "only a CNN3D modality takes a volume mask");
  if (modality.encoder() == config::CNN3D) {
    v.Check(modality.volume_shape_size() == 3, at + ".volume_shape",
            "the CNN3D encoder needs the volume's three sides");
    for (int side : modality.volume_shape()) {
      v.Check(side >= 24, at + ".volume_shape", "each side must be at least 24, got ", side);
    }
  }
}

// Fields that follow from others: num_classes from class_names; model.num_experts 0 from
// the modalities (one expert per combination, at least top_k); training.seeds, when empty,
// from seed and ensemble_size, and ensemble_size from the seeds.
void ResolveDerivedFields(Config& c) {
  auto& data = *c.mutable_data();
  if (data.class_names_size() > 0) data.set_num_classes(data.class_names_size());
  auto& model = *c.mutable_model();
  if (model.num_experts() == 0 && data.modalities_size() >= 1 && data.modalities_size() <= 8) {
    model.set_num_experts(std::max(NumCombinations(data.modalities_size()), model.top_k()));
  }
  auto& training = *c.mutable_training();
  if (training.seeds_size() == 0 && training.ensemble_size() >= 1) {
    for (int i = 0; i < training.ensemble_size(); ++i) training.add_seeds(training.seed() + i);
  }
  if (training.seeds_size() > 0) training.set_ensemble_size(training.seeds_size());
}

// training.cross_fit when the config does not set it: true for two or more seeds (the seeds
// given, else ensemble_size's). Before FillDefaults, which sets every unset field.
void ResolveUnsetCrossFit(Config& c) {
  auto& training = *c.mutable_training();
  if (training.has_cross_fit()) return;
  const int seeds = training.seeds_size() > 0 ? training.seeds_size() : training.ensemble_size();
  training.set_cross_fit(seeds >= 2);
}

void ValidateData(config::DataConfig& data, const Validator& v) {
  v.Check(data.layout() != config::DataConfig::LAYOUT_UNSPECIFIED, "data.layout",
          "set PER_MODALITY_CSV or WIDE_CSV");
  const int m = data.modalities_size();
  v.Check(m >= 1 && m <= 8, "data.modalities", "between 1 and 8 modalities are supported, got ", m);
  std::set<std::string> names;
  for (int i = 0; i < m; ++i) ValidateModality(data, i, &names, v);
  v.Check(data.scaling() != config::SCALING_DEFAULT, "data.scaling",
          "choose STANDARD, MINMAX or NO_SCALING");
  if (data.class_names_size() > 0) {
    v.Check(data.class_names_size() >= 2, "data.class_names", "at least two classes");
  }
  v.Check(data.num_classes() >= 2, "data.num_classes", "at least two classes, got ",
          data.num_classes());
  v.Check(data.records_per_shard() > 0, "data.records_per_shard", "must be positive");
  v.Check(data.loader_cache_mb() >= 0, "data.loader_cache_mb", "must not be negative");
  v.Check(data.quantile_bins() >= 1 && data.quantile_bins() <= 256, "data.quantile_bins",
          "must lie in [1, 256]");
  const auto& split = data.split();
  for (double r : {split.training(), split.validation(), split.testing()}) {
    v.Check(r >= 0 && r <= 1, "data.split", "ratios must lie in [0, 1]");
  }
  v.Check(std::fabs(split.training() + split.validation() + split.testing() - 1.0) < 1e-6,
          "data.split", "training + validation + testing must be 1");
}

void ValidateModel(const config::ModelConfig& model, int m, const Validator& v) {
  const int combos = NumCombinations(m);
  v.Check(model.patches() > 0, "model.patches", "must be positive");
  v.Check(model.hidden_dim() > 0, "model.hidden_dim", "must be positive");
  v.Check(model.num_heads() > 0 && model.hidden_dim() % model.num_heads() == 0, "model.num_heads",
          "must divide hidden_dim (", model.hidden_dim(), ")");
  v.Check(model.num_layers_fus() >= 1, "model.num_layers_fus", "at least one fusion layer");
  v.Check(model.num_layers_pred() >= 1, "model.num_layers_pred", "at least one head layer");
  v.Check(model.num_experts() >= combos, "model.num_experts", "the S-Router needs one expert ",
          "per modality combination: ", m, " modalities give ", combos,
          " combinations, so at least ", combos, " experts");
  v.Check(model.top_k() >= 1 && model.top_k() <= model.num_experts(), "model.top_k",
          "must lie in [1, num_experts]");
  v.Check(model.dropout() >= 0 && model.dropout() < 1, "model.dropout", "must lie in [0, 1)");
  v.Check(model.capacity_factor() >= 0, "model.capacity_factor", "must not be negative");
  v.Check(model.periodic_frequencies() >= 1, "model.periodic_frequencies", "must be positive");
  v.Check(model.periodic_sigma() > 0, "model.periodic_sigma", "must be positive");
}

void ValidateTraining(const config::TrainingConfig& t, int num_classes, const Validator& v) {
  v.Check(t.epochs() >= 1, "training.epochs", "at least one epoch");
  v.Check(t.ensemble_size() >= 1, "training.ensemble_size", "at least one model");
  v.Check(t.modality_dropout() >= 0 && t.modality_dropout() < 1, "training.modality_dropout",
          "must lie in [0, 1)");
  v.Check(t.warmup_epochs() >= 0 && t.warmup_epochs() <= t.epochs(), "training.warmup_epochs",
          "must lie in [0, epochs]");
  v.Check(t.batch_size() >= 1, "training.batch_size", "must be positive");
  v.Check(t.lr() > 0, "training.lr", "must be positive");
  v.Check(t.gate_loss_weight() >= 0, "training.gate_loss_weight", "must not be negative");
  v.Check(t.weight_decay() >= 0 && t.lr() * t.weight_decay() < 1, "training.weight_decay",
          "must lie in [0, 1 / lr)");
  v.Check(t.average_epochs() >= 0, "training.average_epochs", "must not be negative");
  v.Check(
      t.precision() != config::TrainingConfig::BF16 || t.device() == config::TrainingConfig::CPU,
      "training.precision",
      "BF16 is built for CPU workers only (training.device: CPU); CUDA workers train in FP32");
  v.Check(!t.cross_fit() || t.seeds_size() >= 2, "training.cross_fit",
          "deals the samples to one fold per seed: needs two or more seeds (training.seeds or "
          "training.ensemble_size), got ",
          t.seeds_size());
  v.Check(t.early_stopping_patience() >= 0, "training.early_stopping_patience",
          "must not be negative");
  v.Check(t.class_weights_size() == 0 || t.class_weights_size() == num_classes,
          "training.class_weights", "one weight per class (", num_classes, ")");
}

// HOST:PORT with a port of at most 65535 (port 0: a free one).
bool IsHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  const std::string port = address.substr(colon + 1);
  return !port.empty() && port.size() <= 5 &&
         port.find_first_not_of("0123456789") == std::string::npos && std::stoi(port) <= 65535;
}

void ValidateCluster(const config::ClusterConfig& cl, const config::TrainingConfig& t,
                     const Validator& v) {
  v.Check(cl.workers() >= 1, "cluster.workers", "at least one worker");
  v.Check(cl.expert_parallel_degree() >= 0 &&
              (cl.expert_parallel_degree() == 0 || cl.workers() % cl.expert_parallel_degree() == 0),
          "cluster.expert_parallel_degree", "must divide cluster.workers (", cl.workers(), ")");
  v.Check(cl.collective_timeout_s() > 0, "cluster.collective_timeout_s", "must be positive");
  v.Check(cl.connect_timeout_s() > 0, "cluster.connect_timeout_s", "must be positive");
  v.Check(cl.heartbeat_interval_s() > 0, "cluster.heartbeat_interval_s", "must be positive");
  v.Check(cl.heartbeat_timeout_s() >= 2 * cl.heartbeat_interval_s(), "cluster.heartbeat_timeout_s",
          "at least twice heartbeat_interval_s (", cl.heartbeat_interval_s(), ")");
  v.Check(cl.max_frame_bytes() >= 1024, "cluster.max_frame_bytes", "at least 1024");
  v.Check(cl.http_listen().empty() || IsHostPort(cl.http_listen()), "cluster.http_listen", "'",
          cl.http_listen(), "' is not HOST:PORT (port 0: a free one; empty: off)");
  v.Check(cl.backend() != config::ClusterConfig::NCCL || t.device() == config::TrainingConfig::CUDA,
          "cluster.backend", "NCCL carries CUDA tensors: it needs training.device: CUDA");
}

void ValidateSynth(const config::SynthConfig& s, int m, const Validator& v) {
  const int combos = NumCombinations(m);
  v.Check(s.num_samples() > 0, "synth.num_samples", "must be positive");
  v.Check(s.combination_weights_size() == 0 || s.combination_weights_size() == combos,
          "synth.combination_weights", "one weight per combination (", combos, ")");
  for (double w : s.combination_weights()) {
    v.Check(w >= 0, "synth.combination_weights", "weights must not be negative");
  }
  v.Check(s.full_fraction() >= 0 && s.single_fraction() >= 0 &&
              s.full_fraction() + s.single_fraction() <= 1,
          "synth.full_fraction", "full_fraction + single_fraction must lie in [0, 1]");
  v.Check(s.min_per_combination() >= 0 &&
              static_cast<int64_t>(s.min_per_combination()) * combos <= s.num_samples(),
          "synth.min_per_combination", "cannot give every combination ", s.min_per_combination(),
          " of ", s.num_samples(), " samples");
  v.Check(s.missing_value_rate() >= 0 && s.missing_value_rate() < 1, "synth.missing_value_rate",
          "must lie in [0, 1)");
}

void Validate(Config& c, const Validator& v) {
  ResolveDerivedFields(c);
  ValidateData(*c.mutable_data(), v);
  const int m = c.data().modalities_size();
  ValidateModel(c.model(), m, v);
  ValidateTraining(c.training(), c.data().num_classes(), v);
  ValidateCluster(c.cluster(), c.training(), v);
  const auto& ck = c.checkpoint();
  v.Check(ck.every_epochs() >= 0, "checkpoint.every_epochs", "must not be negative");
  v.Check(ck.every_steps() >= 0, "checkpoint.every_steps", "must not be negative");
  v.Check(ck.keep_last() >= 0, "checkpoint.keep_last", "must not be negative (0 keeps all)");
  v.Check(c.metrics().log_every_steps() >= 0, "metrics.log_every_steps", "must not be negative");
  v.Check(c.metrics().per_worker_limit() >= 0, "metrics.per_worker_limit", "must not be negative");

  ValidateSynth(c.synth(), m, v);
}

}  // namespace

config::Config ParseConfig(const std::string& text, const std::string& name,
                           const std::vector<std::string>& overrides) {
  Config config;
  CollectErrors errors(name);
  pb::TextFormat::ParseInfoTree tree;
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(text, &config)) Fail(ErrorCode::kInvalidArgument, errors.first());
  for (const std::string& assignment : overrides) ApplyOverride(&config, assignment);
  ResolveUnsetCrossFit(config);
  FillDefaults(&config, true);
  FieldLines lines(&tree);
  Validate(config, Validator(name, lines));
  return config;
}

void ParseTextMessage(const std::string& text, const std::string& name, pb::Message* message) {
  CollectErrors errors(name);
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, message)) Fail(ErrorCode::kInvalidArgument, errors.first());
}

config::Config LoadConfig(const std::string& path, const std::vector<std::string>& overrides) {
  return ParseConfig(ReadFile(path), path, overrides);
}

std::string ConfigToText(const config::Config& config) {
  std::string text;
  pb::TextFormat::Printer printer;
  printer.PrintToString(config, &text);
  return text;
}

ArrayFormat ArrayFormatOf(const std::string& file) {
  auto ends = [&](const std::string& suffix) {
    return file.size() >= suffix.size() &&
           file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends(".npy")) return ArrayFormat::kNpy;
  if (ends(".h5ad") || ends(".h5") || ends(".hdf5")) return ArrayFormat::kHdf5;
  return ArrayFormat::kCsv;
}

}  // namespace flexmoe
