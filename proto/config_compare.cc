// Computation hash and first difference of two configs (config_compare.h).
#include "proto/config_compare.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>

#include <sstream>
#include <utility>
#include <vector>

#include "cluster/base/crc32c.h"

namespace flexmoe {
namespace {

namespace pb = google::protobuf;

// The fields that do not change the computation (see the header).
std::vector<const pb::FieldDescriptor*> MayChange() {
  const pb::Descriptor* c = config::Config::descriptor();
  return {c->FindFieldByName("checkpoint"), c->FindFieldByName("metrics"),
          c->FindFieldByName("run"), c->FindFieldByName("cluster"), c->FindFieldByName("synth"),
          config::TrainingConfig::descriptor()->FindFieldByName("epochs"),
          // The same computation on another device (float rounding aside): a CPU
          // checkpoint may resume on a GPU and back.
          config::TrainingConfig::descriptor()->FindFieldByName("device"),
          // The same model at another precision: checkpoints hold fp32 parameters and
          // optimizer state whichever precision wrote them.
          config::TrainingConfig::descriptor()->FindFieldByName("precision")};
}

// Reports one difference, as "field PREFIX.PATH: A SAVED, B CURRENT".
class FirstDifference : public pb::util::MessageDifferencer::Reporter {
 public:
  FirstDifference(std::string prefix, std::string saved, std::string current)
      : prefix_(std::move(prefix)), saved_(std::move(saved)), current_(std::move(current)) {}
  using SpecificField = pb::util::MessageDifferencer::SpecificField;
  void ReportAdded(const pb::Message&, const pb::Message& current,
                   const std::vector<SpecificField>& path) override {
    Record(path, "(absent)", Value(current, path));
  }
  void ReportDeleted(const pb::Message& saved, const pb::Message&,
                     const std::vector<SpecificField>& path) override {
    Record(path, Value(saved, path), "(absent)");
  }
  void ReportModified(const pb::Message& saved, const pb::Message& current,
                      const std::vector<SpecificField>& path) override {
    // A message is reported modified besides its modified fields: the fields say what.
    const pb::FieldDescriptor* last = path.empty() ? nullptr : path.back().field;
    if (last != nullptr && last->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) return;
    Record(path, Value(saved, path), Value(current, path));
  }
  const std::string& first() const { return first_; }

 private:
  std::string Path(const std::vector<SpecificField>& path) const {
    std::string out = prefix_;
    for (const SpecificField& step : path) {
      if (!out.empty()) out += ".";  // after the prefix too
      out += step.field != nullptr ? step.field->name() : "?";
      if (step.field != nullptr && step.field->is_repeated() && step.index >= 0) {
        out += "[" + std::to_string(step.index) + "]";
      }
    }
    return out;
  }
  // The value of the last field of `path`; the differencer hands over the message that
  // holds it.
  static std::string Value(const pb::Message& holder, const std::vector<SpecificField>& path) {
    const SpecificField& last = path.back();
    if (last.field == nullptr || last.field->containing_type() != holder.GetDescriptor()) {
      return "(unknown)";
    }
    std::string text;
    const pb::Reflection* r = holder.GetReflection();
    if (last.field->is_repeated()) {
      const int index = last.index >= 0 ? last.index : 0;
      if (index < r->FieldSize(holder, last.field)) {
        pb::TextFormat::PrintFieldValueToString(holder, last.field, index, &text);
      }
    } else {
      pb::TextFormat::PrintFieldValueToString(holder, last.field, -1, &text);
    }
    return text.empty() ? std::string("(empty)") : text;
  }
  // Keeps the difference nearest the top (data.scaling before the modalities[0].scaling
  // it implies), the first of those.
  void Record(const std::vector<SpecificField>& path, const std::string& saved,
              const std::string& current) {
    if (path.empty() || (!first_.empty() && path.size() >= depth_)) return;
    depth_ = path.size();
    first_ = "field " + Path(path) + ": " + saved + " " + saved_ + ", " + current + " " + current_;
  }

  std::string prefix_, saved_, current_;
  std::string first_;
  size_t depth_ = 0;
};

}  // namespace

uint32_t ComputationHash(const config::Config& config) {
  config::Config copy = config;
  const pb::Reflection* top = copy.GetReflection();
  for (const pb::FieldDescriptor* field : MayChange()) {
    if (field->containing_type() == config::Config::descriptor()) {
      top->ClearField(&copy, field);
    } else {
      config::TrainingConfig* training = copy.mutable_training();
      training->GetReflection()->ClearField(training, field);
    }
  }
  std::string text;
  pb::TextFormat::Printer printer;
  printer.PrintToString(copy, &text);
  return Crc32c(text.data(), text.size());
}

std::string FirstComputationDifference(const config::Config& saved, const config::Config& current) {
  pb::util::MessageDifferencer differencer;
  for (const pb::FieldDescriptor* field : MayChange()) differencer.IgnoreField(field);
  FirstDifference reporter("", "in the checkpoint", "now");
  differencer.ReportDifferencesTo(&reporter);
  if (differencer.Compare(saved, current)) return "";
  return reporter.first().empty() ? std::string("the configs differ") : reporter.first();
}

config::DataConfig PreparedDataSection(const config::DataConfig& data) {
  config::DataConfig copy = data;
  copy.clear_prepared_dir();
  copy.clear_records_per_shard();
  copy.clear_loader_cache_mb();
  return copy;
}

std::string FirstDataDifference(const config::DataConfig& prepared,
                                const config::DataConfig& current) {
  pb::util::MessageDifferencer differencer;
  // A field unset in the record equals its default: data prepared before a field existed
  // was prepared with its default.
  differencer.set_message_field_comparison(pb::util::MessageDifferencer::EQUIVALENT);
  FirstDifference reporter("data", "when prepared", "in the config");
  differencer.ReportDifferencesTo(&reporter);
  if (differencer.Compare(PreparedDataSection(prepared), PreparedDataSection(current))) return "";
  return reporter.first().empty() ? std::string("the data sections differ") : reporter.first();
}

}  // namespace flexmoe
