// The live view's routes: `/` the page (cluster/web/page.html, built into the binary),
// `/api/job` the view as JSON, `/api/members/OFFSET` a page of the members, `/metrics` the
// Prometheus text; the coordinator serves them
// from its JobView, `flexmoe serve` from a run directory.
#pragma once

#include <functional>

#include "cluster/web/http_server.h"
#include "cluster/web/job_view.h"

namespace flexmoe {

// The page's HTML.
const char* PageHtml();

HttpHandler ViewRoutes(std::function<JobViewState()> snapshot);

}  // namespace flexmoe
