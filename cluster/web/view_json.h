// The job's view as the page's JSON (/api/job) and as Prometheus text (/metrics); both are
// pure functions of a JobViewState.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cluster/web/job_view.h"

namespace flexmoe {

// /api/job: the schema cluster/web/page.html reads (docs/coordinator.md, "Live view").
nlohmann::json JobViewJson(const JobViewState& state);

// /metrics: the Prometheus text exposition format (version 0.0.4), flexmoe_ prefix, base
// units, _total for counters.
std::string PrometheusText(const JobViewState& state);

}  // namespace flexmoe
