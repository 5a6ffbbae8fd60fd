// The live view's routes (routes.h).
#include "cluster/web/routes.h"

#include "cluster/web/view_json.h"

namespace flexmoe {

HttpHandler ViewRoutes(std::function<JobViewState()> snapshot) {
  return [snapshot = std::move(snapshot)](const std::string& path) -> std::optional<HttpReply> {
    if (path == "/" || path == "/index.html") {
      return HttpReply{200, "text/html; charset=utf-8", PageHtml()};
    }
    const std::string members = "/api/members/";
    const bool page = path.rfind(members, 0) == 0 && path.size() > members.size() &&
                      path.size() <= members.size() + 9 &&
                      path.find_first_not_of("0123456789", members.size()) == std::string::npos;
    if (path != "/api/job" && path != "/metrics" && !page) return std::nullopt;
    try {
      const JobViewState state = snapshot();
      if (page) {
        return HttpReply{200, "application/json",
                         MembersPageJson(state, std::stoul(path.substr(members.size())))
                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
      }
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
