// Space files and trial generation (search_space.h).
#include "tune/search_space.h"

#include <cmath>
#include <set>
#include <sstream>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/splitmix.h"
#include "proto/config_loader.h"

namespace flexmoe {
namespace {

// A number for the override text: integers without a point, others with enough digits
// to read back the same double.
std::string FormatNumber(double v, bool integer) {
  std::ostringstream out;
  if (integer) {
    out << std::llround(v);
  } else {
    out.precision(6);
    out << v;
  }
  return out.str();
}

// Uniform in [0, 1) from 53 random bits.
double Unit(uint64_t* state) { return (SplitMix64(state) >> 11) * (1.0 / 9007199254740992.0); }

std::string Draw(const tune::Param& p, uint64_t* state) {
  if (p.values_size() > 0) return p.values(SplitMix64(state) % p.values_size());
  const double u = Unit(state);
  const double v = p.log_scale() ? std::exp(std::log(p.min()) + u * std::log(p.max() / p.min()))
                                 : p.min() + u * (p.max() - p.min());
  return FormatNumber(v, p.integer());
}

}  // namespace

tune::Space LoadSpace(const std::string& path) {
  tune::Space space;
  ParseTextMessage(ReadFile(path), path, &space);
  auto fail = [&](int i, const std::string& why) {
    Fail(ErrorCode::kInvalidArgument, path, ": params[", i, "] (",
         space.params(i).field().empty() ? std::string("no field") : space.params(i).field(),
         "): ", why);
  };
  if (space.params_size() == 0) Fail(ErrorCode::kInvalidArgument, path, ": no params");
  if (space.folds() < 2) {
    Fail(ErrorCode::kInvalidArgument, path, ": folds: ", space.folds(), " (need at least 2)");
  }
  std::set<std::string> fields;
  for (int i = 0; i < space.params_size(); ++i) {
    const tune::Param& p = space.params(i);
    if (p.field().empty() || p.field().find('=') != std::string::npos) {
      fail(i, "field must name a config field, e.g. model.hidden_dim");
    }
    if (!fields.insert(p.field()).second) fail(i, "the field appears twice");
    const bool range = p.has_min() || p.has_max();
    if (p.values_size() > 0 && range) fail(i, "give values or min/max, not both");
    if (p.values_size() == 0 && !range) fail(i, "give values, or min and max");
    if (range) {
      if (space.search() == tune::Space::GRID) fail(i, "a grid needs values (min/max: RANDOM)");
      if (!p.has_min() || !p.has_max() || !(p.min() <= p.max())) {
        fail(i, "min and max must both be given, min <= max");
      }
      if (p.log_scale() && p.min() <= 0) fail(i, "log_scale needs min > 0");
    } else if (p.log_scale() || p.integer()) {
      fail(i, "log_scale and integer apply to min/max ranges");
    }
  }
  return space;
}

long long GridSize(const tune::Space& space) {
  if (space.search() != tune::Space::GRID) return 0;
  long long n = 1;
  for (const tune::Param& p : space.params()) n *= p.values_size();
  return n;
}

std::vector<Trial> MakeTrials(const tune::Space& space, int max_trials) {
  std::vector<Trial> trials;
  if (space.search() == tune::Space::GRID) {
    const long long n = std::min<long long>(GridSize(space), max_trials);
    for (long long t = 0; t < n; ++t) {
      Trial trial;
      trial.number = static_cast<int>(t) + 1;
      long long rest = t;
      std::vector<std::string> reversed;
      for (int i = space.params_size() - 1; i >= 0; --i) {
        const tune::Param& p = space.params(i);
        reversed.push_back(p.field() + "=" + p.values(rest % p.values_size()));
        rest /= p.values_size();
      }
      trial.overrides.assign(reversed.rbegin(), reversed.rend());
      trials.push_back(std::move(trial));
    }
    return trials;
  }
  uint64_t state = space.seed() ^ 0x7475E3ull;
  std::set<std::vector<std::string>> seen;
  // A space with few distinct points stops drawing after many repeats in a row.
  for (int misses = 0; static_cast<int>(trials.size()) < max_trials && misses < 1000;) {
    Trial trial;
    for (const tune::Param& p : space.params()) {
      trial.overrides.push_back(p.field() + "=" + Draw(p, &state));
    }
    if (!seen.insert(trial.overrides).second) {
      ++misses;
      continue;
    }
    misses = 0;
    trial.number = static_cast<int>(trials.size()) + 1;
    trials.push_back(std::move(trial));
  }
  return trials;
}

std::string OverrideValue(const std::string& override_text) {
  return override_text.substr(override_text.find('=') + 1);
}

}  // namespace flexmoe
