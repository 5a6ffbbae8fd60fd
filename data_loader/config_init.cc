// A commented config from a wide CSV and a grouping of its columns (config_init.h).
#include "data_loader/config_init.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_map>

#include "cluster/base/error.h"
#include "data_loader/csv_reader.h"
#include "proto/config_loader.h"

namespace flexmoe {
namespace {

constexpr int kMaxClasses = 64;

struct Group {
  std::string name;
  std::vector<std::string> specs;  // what the config lists (names, or prefixes with '*')
  std::vector<int> columns;        // header positions
  int64_t observed = 0;            // rows with a non-empty value in one of the columns
};

std::string Trimmed(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

std::vector<Group> GroupsFromJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) Fail(ErrorCode::kNotFound, path, ": cannot open the modalities file");
  nlohmann::ordered_json json;
  try {
    json = nlohmann::ordered_json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    Fail(ErrorCode::kInvalidArgument, path, ": not JSON: ", e.what());
  }
  if (!json.is_object() || json.empty()) {
    Fail(ErrorCode::kInvalidArgument, path,
         ": expected {\"modality\": [\"column\", ...], ...} with at least one modality");
  }
  std::vector<Group> groups;
  for (const auto& [name, columns] : json.items()) {
    if (!columns.is_array() || columns.empty()) {
      Fail(ErrorCode::kInvalidArgument, path, ": modality '", name,
           "': expected a non-empty list of column names");
    }
    Group group{name, {}, {}, 0};
    for (const auto& column : columns) {
      if (!column.is_string()) {
        Fail(ErrorCode::kInvalidArgument, path, ": modality '", name, "': ", column.dump(),
             " is not a column name");
      }
      group.specs.push_back(column.get<std::string>());
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

std::vector<Group> GroupsFromPrefixes(const std::vector<std::string>& specs) {
  std::vector<Group> groups;
  for (const std::string& spec : specs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      Fail(ErrorCode::kInvalidArgument, "--group ", spec, ": expected NAME=PREFIX[,PREFIX...]");
    }
    Group group{spec.substr(0, eq), {}, {}, 0};
    std::stringstream prefixes(spec.substr(eq + 1));
    for (std::string prefix; std::getline(prefixes, prefix, ',');) {
      if (prefix.empty()) Fail(ErrorCode::kInvalidArgument, "--group ", spec, ": empty prefix");
      group.specs.push_back(prefix + "*");
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

// Header positions of every group's columns; each column in one group at most.
void ResolveColumns(const std::vector<std::string>& header, const std::set<int>& reserved,
                    const std::string& where, std::vector<Group>* groups) {
  std::unordered_map<std::string, int> position;
  for (size_t i = 0; i < header.size(); ++i) position.emplace(header[i], static_cast<int>(i));
  std::map<int, std::string> owner;
  for (Group& group : *groups) {
    for (const std::string& spec : group.specs) {
      std::vector<int> matched;
      if (spec.back() == '*') {
        const std::string prefix = spec.substr(0, spec.size() - 1);
        for (size_t i = 0; i < header.size(); ++i) {
          if (header[i].compare(0, prefix.size(), prefix) == 0 && !reserved.count(i)) {
            matched.push_back(static_cast<int>(i));
          }
        }
        if (matched.empty()) {
          Fail(ErrorCode::kInvalidArgument, where, ":1: modality '", group.name,
               "': no feature column starts with '", prefix, "'");
        }
      } else {
        auto it = position.find(spec);
        if (it == position.end()) {
          Fail(ErrorCode::kInvalidArgument, where, ":1: column '", spec, "' of modality '",
               group.name, "' is not in the header");
        }
        if (reserved.count(it->second)) {
          Fail(ErrorCode::kInvalidArgument, "modality '", group.name, "': column '", spec,
               "' is the id, the label or excluded");
        }
        matched.push_back(it->second);
      }
      for (int column : matched) {
        auto [it, fresh] = owner.emplace(column, group.name);
        if (!fresh) {
          Fail(ErrorCode::kInvalidArgument, "column '", header[column], "' is in modality '",
               it->second, "' and in modality '", group.name, "'");
        }
        group.columns.push_back(column);
      }
    }
  }
}

// The labels seen, and the rows each group observes.
struct Scan {
  int64_t rows = 0;
  std::map<std::string, int64_t> labels;
};

Scan ScanRows(CsvReader& csv, size_t width, int id, int label, std::vector<Group>* groups) {
  Scan scan;
  std::vector<std::string_view> fields;
  while (csv.Next(&fields)) {
    if (fields.size() == 1 && Trimmed(fields[0]).empty()) continue;  // a blank line
    if (fields.size() != width) {
      Fail(ErrorCode::kInvalidArgument, csv.Where(), ": ", fields.size(),
           " fields, the header has ", width);
    }
    if (Trimmed(fields[id]).empty()) Fail(ErrorCode::kInvalidArgument, csv.Where(), ": empty id");
    const std::string value = Trimmed(fields[label]);
    if (value.empty()) Fail(ErrorCode::kInvalidArgument, csv.Where(), ": empty label");
    if (++scan.labels[value] == 1 && static_cast<int>(scan.labels.size()) > kMaxClasses) {
      Fail(ErrorCode::kInvalidArgument, csv.Where(), ": the label column has more than ",
           kMaxClasses, " distinct values; is '", csv.path(), "' a classification table?");
    }
    for (Group& group : *groups) {
      for (int c : group.columns) {
        if (!Trimmed(fields[c]).empty()) {
          ++group.observed;
          break;
        }
      }
    }
    ++scan.rows;
  }
  return scan;
}

// The labels as class ids 0..K-1 (num_classes), or as names (class_names, sorted).
void WriteClasses(const Scan& scan, std::ostream& out) {
  int top = -1;
  bool integral = true;
  for (const auto& [value, count] : scan.labels) {
    double d;
    if (!ParseNumber(value, &d) || d != std::floor(d) || d < 0 || d >= kMaxClasses) {
      integral = false;
      break;
    }
    top = std::max(top, static_cast<int>(d));
  }
  out << "  # Labels: ";
  bool first = true;
  for (const auto& [value, count] : scan.labels) {
    out << (first ? "" : ", ") << value << " (" << count << " rows)";
    first = false;
  }
  out << ".\n";
  if (integral) {
    out << "  num_classes: " << std::max(top + 1, 2) << "\n";
    return;
  }
  out << "  class_names: [";
  first = true;
  for (const auto& [value, count] : scan.labels) {
    out << (first ? "" : ", ") << std::quoted(value);
    first = false;
  }
  out << "]\n";
}

// `key: ["a", "b", ...]`, wrapped at 96 columns under the bracket.
void WriteList(const std::string& indent, const std::string& key,
               const std::vector<std::string>& values, std::ostream& out) {
  std::string line = indent + key + ": [";
  const size_t hang = line.size();
  for (size_t i = 0; i < values.size(); ++i) {
    std::ostringstream item;
    item << std::quoted(values[i]) << (i + 1 < values.size() ? "," : "]");
    if (line.size() + 1 + item.str().size() > 96 && line.size() > hang) {
      out << line << "\n";
      line = std::string(hang, ' ');
    } else if (line.size() > hang) {
      line += " ";
    }
    line += item.str();
  }
  out << line << "\n";
}

std::string Percent(int64_t part, int64_t whole) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << (whole > 0 ? 100.0 * part / whole : 0.0) << "%";
  return out.str();
}

}  // namespace

namespace {

// What init read: the header, the columns never features, the modalities and the rows.
struct Table {
  std::vector<std::string> header;
  std::set<int> reserved;  // the id, the label and --exclude
  std::vector<Group> groups;
  Scan scan;
};

Table ReadTable(const InitOptions& options) {
  Table table;
  table.groups = options.modalities_json.empty() ? GroupsFromPrefixes(options.groups)
                                                 : GroupsFromJson(options.modalities_json);
  CsvReader csv(options.input);
  std::vector<std::string_view> fields;
  if (!csv.Next(&fields)) Fail(ErrorCode::kInvalidArgument, options.input, ": empty file");
  for (std::string_view f : fields) table.header.push_back(Trimmed(f));
  auto column = [&](const std::string& name, const char* flag) {
    auto it = std::find(table.header.begin(), table.header.end(), name);
    if (it == table.header.end()) {
      Fail(ErrorCode::kInvalidArgument, options.input, ":1: the ", flag, " column '", name,
           "' is not in the header");
    }
    return static_cast<int>(it - table.header.begin());
  };
  const int id = column(options.id_column, "id (--id)");
  const int label = column(options.label_column, "label (--label)");
  table.reserved = {id, label};
  for (const std::string& name : options.exclude) table.reserved.insert(column(name, "--exclude"));
  ResolveColumns(table.header, table.reserved, options.input, &table.groups);
  table.scan = ScanRows(csv, table.header.size(), id, label, &table.groups);
  if (table.scan.rows == 0) Fail(ErrorCode::kInvalidArgument, options.input, ": no rows");
  for (const Group& group : table.groups) {
    if (group.observed == 0) {
      Fail(ErrorCode::kInvalidArgument, options.input, ": modality '", group.name,
           "' is empty in every row");
    }
  }
  return table;
}

// The data section's lines up to the modalities: input, columns, classes, exclusions, splits.
void WriteDataHead(const InitOptions& options, const Table& table,
                   const std::vector<std::string>& unlisted, std::ostream& out) {
  out << "  layout: WIDE_CSV\n"
      << "  input: " << std::quoted(options.input) << "\n";
  if (!options.prepared_dir.empty()) {
    out << "  prepared_dir: " << std::quoted(options.prepared_dir) << "\n";
  }
  out << "  id_column: " << std::quoted(options.id_column) << "\n"
      << "  label_column: " << std::quoted(options.label_column) << "\n";
  WriteClasses(table.scan, out);
  std::vector<std::string> excluded = options.exclude;
  excluded.insert(excluded.end(), unlisted.begin(), unlisted.end());
  if (!excluded.empty()) {
    out << "  # Never features: " << options.exclude.size() << " named by --exclude";
    if (!unlisted.empty()) out << ", and " << unlisted.size() << " that no modality lists";
    out << ". prepare, train and predict refuse a\n"
        << "  # column that is neither a feature nor excluded.\n";
    WriteList("  ", "exclude_columns", excluded, out);
  }
  if (!options.splits_file.empty()) {
    out << "  # The rows of each split ({\"training\": [ids], \"validation\": [...], \"testing\": "
           "[...]}).\n"
        << "  splits_file: " << std::quoted(options.splits_file) << "\n";
  } else {
    out << "  # No splits file: a seeded split stratified by label (data.split, 70/15/15).\n";
  }
  out << "  # A 0/1 indicator per feature with missing values inside an observed modality.\n"
      << "  missing_indicators: " << (options.missing_indicators ? "true" : "false") << "\n";
}

}  // namespace

InitResult InitConfig(const InitOptions& options) {
  if (options.modalities_json.empty() == options.groups.empty()) {
    Fail(
        ErrorCode::kInvalidArgument,
        "init: group the columns with --modalities FILE or with --group NAME=PREFIX (one of them)");
  }
  const Table table = ReadTable(options);
  InitResult result;
  result.rows = table.scan.rows;
  std::set<int> listed;
  for (const Group& group : table.groups) listed.insert(group.columns.begin(), group.columns.end());
  for (size_t i = 0; i < table.header.size(); ++i) {
    const int c = static_cast<int>(i);
    if (!table.reserved.count(c) && !listed.count(c)) result.unlisted.push_back(table.header[i]);
  }
  std::ostringstream out;
  out << "# Written by `flexmoe init` from " << options.input << ":\n# " << table.scan.rows
      << " rows, " << table.header.size() << " columns, " << listed.size() << " features in "
      << table.groups.size() << " modalities.\n"
      << "# The model and training sections are left out: the default recipe applies\n"
      << "# (docs/recipe.md). Add model { } or training { } fields to change it.\n"
      << "data {\n";
  WriteDataHead(options, table, result.unlisted, out);
  for (const Group& group : table.groups) {
    out << "  modalities {\n"
        << "    # " << group.columns.size() << " columns, observed in " << group.observed << " of "
        << table.scan.rows << " rows (" << Percent(group.observed, table.scan.rows) << ")\n"
        << "    name: " << std::quoted(group.name) << "\n";
    WriteList("    ", "columns", group.specs, out);
    out << "    encoder: " << config::EncoderKind_Name(options.encoder) << "\n"
        << "  }\n";
  }
  out << "}\n";
  result.text = out.str();
  result.config = ParseConfig(result.text, "the generated config", {});
  return result;
}

}  // namespace flexmoe
