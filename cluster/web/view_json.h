// The job's view as the page's JSON (/api/job) and as Prometheus text (/metrics); both are
// pure functions of a JobViewState.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cluster/web/job_view.h"

namespace flexmoe {

// How many members /api/job and each /api/members/OFFSET list.
inline constexpr size_t kMembersPage = 50;

// /api/job: the schema cluster/web/page.html reads (docs/coordinator.md, "Live view"). Its
// members are the first page of MembersPageJson's order, with their counts by state and
// the hosts with members in trouble first.
nlohmann::json JobViewJson(const JobViewState& state);
// /api/members/OFFSET: kMembersPage members from `offset` in the page's order (the failed,
// the gone, the silent past the heartbeat timeout, the late past half of it, then the rest
// as they registered), with the total.
nlohmann::json MembersPageJson(const JobViewState& state, size_t offset);

// /metrics: the Prometheus text exposition format (version 0.0.4), flexmoe_ prefix, base
// units, _total for counters.
std::string PrometheusText(const JobViewState& state);

}  // namespace flexmoe
