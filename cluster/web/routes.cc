// The live view's routes (routes.h).
#include "cluster/web/routes.h"

#include "cluster/web/view_json.h"

namespace flexmoe {

HttpHandler ViewRoutes(std::function<JobViewState()> snapshot) {
  return [snapshot = std::move(snapshot)](const std::string& path) -> std::optional<HttpReply> {
    if (path == "/" || path == "/index.html") {
      return HttpReply{200, "text/html; charset=utf-8", PageHtml()};
    }
    if (path != "/api/job" && path != "/metrics") return std::nullopt;
    try {
      const JobViewState state = snapshot();
      if (path == "/api/job") {
        return HttpReply{
            200, "application/json",
            JobViewJson(state).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
      }
      return HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", PrometheusText(state)};
    } catch (const std::exception& e) {
      // A run directory being written, or bad: the page keeps its last data and says so.
      return HttpReply{500, "text/plain; charset=utf-8", std::string(e.what()) + "\n"};
    }
  };
}

}  // namespace flexmoe
