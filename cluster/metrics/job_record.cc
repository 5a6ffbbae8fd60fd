// job.json to and from JSON (job_record.h).
#include "cluster/metrics/job_record.h"

#include <filesystem>

#include "cluster/base/atomic_file.h"
#include "cluster/base/error.h"
#include "cluster/base/placement_json.h"
#include "cluster/base/run_dir.h"

namespace flexmoe {
namespace {

using Json = nlohmann::json;

Json MemberJson(const JobMemberRecord& m, bool with_port_and_state) {
  Json json = {{"role", m.role}, {"rank", m.rank}, {"host", m.host}, {"pid", m.pid}};
  if (with_port_and_state) {
    json["port"] = m.port;
    json["state"] = m.state;
  }
  return json;
}

JobMemberRecord MemberFromJson(const Json& json) {
  JobMemberRecord m;
  m.role = json.at("role").get<std::string>();
  m.rank = json.at("rank").get<int>();
  m.host = json.at("host").get<std::string>();
  m.pid = json.at("pid").get<int64_t>();
  m.port = json.value("port", 0);
  m.state = json.value("state", "");
  return m;
}

}  // namespace

Json JobRecordToJson(const JobRecord& job) {
  Json members = Json::array();
  for (const JobMemberRecord& m : job.members) members.push_back(MemberJson(m, true));
  return {{"job_id", job.job_id},
          {"state", job.state},
          {"coordinator", job.coordinator},
          {"workers", job.workers},
          {"members", members},
          {"placement", PlacementToJson(job.placement)},
          {"newest_checkpoint", job.newest_checkpoint},
          {"reason", job.reason},
          {"culprit", job.culprit ? MemberJson(*job.culprit, false) : Json()},
          {"combinations", job.combinations}};
}

JobRecord JobRecordFromJson(const Json& json, const std::string& source) {
  JobRecord job;
  try {
    job.job_id = json.at("job_id").get<std::string>();
    job.state = json.at("state").get<std::string>();
    job.coordinator = json.at("coordinator").get<std::string>();
    job.workers = json.at("workers").get<int>();
    for (const Json& m : json.at("members")) job.members.push_back(MemberFromJson(m));
    job.newest_checkpoint = json.at("newest_checkpoint").get<std::string>();
    job.reason = json.at("reason").get<std::string>();
    if (!json.at("culprit").is_null()) job.culprit = MemberFromJson(json.at("culprit"));
    // Absent from the job.json of an older flexmoe.
    job.combinations = json.value("combinations", std::vector<std::string>());
    // Before the first worker registers the placement is empty (no ranks yet).
    const Json& placement = json.at("placement");
    if (!placement.at("layers").empty()) job.placement = PlacementFromJson(placement, source);
  } catch (const Json::exception& e) {
    Fail(ErrorCode::kDataLoss, source, ": ", e.what());
  }
  return job;
}

JobRecord ReadJobRecord(const std::string& run_dir) {
  const std::string path = RunDir(run_dir).job_json();
  if (!std::filesystem::exists(path)) Fail(ErrorCode::kNotFound, path, ": no such file");
  const Json json = Json::parse(ReadFile(path), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) Fail(ErrorCode::kDataLoss, path, ": not JSON");
  return JobRecordFromJson(json, path);
}

}  // namespace flexmoe
