// `flexmoe serve RUN_DIR` (serve_command.h): the coordinator's page and /metrics from a run
// directory, until SIGINT or SIGTERM.
#include "launch/serve_command.h"

#include <csignal>
#include <filesystem>
#include <iostream>

#include "cluster/base/error.h"
#include "cluster/net/job_token.h"
#include "cluster/web/http_server.h"
#include "cluster/web/routes.h"
#include "cluster/web/run_dir_view.h"
#include "launch/args.h"

namespace flexmoe {
int ServeCommand(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  const std::string run_dir = args.positional.at(0);
  auto view = std::make_shared<RunDirView>(run_dir);
  ReadRunDirView(run_dir);  // a directory without job.json: its error, before serving
  HttpServerOptions options;
  options.listen = args.Get("listen", "127.0.0.1:0");
  options.what = "serve --listen";
  if (!args.Has("no-token") && std::filesystem::exists(run_dir + "/job.token")) {
    config::ClusterConfig source;
    source.set_job_token_source("file:" + run_dir + "/job.token");
    options.token = ReadJobToken(source);
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before the server's thread starts
  HttpServer server(options, ViewRoutes([view] { return view->Snapshot(); }));
  std::cout << "serving " << run_dir << " on http://" << server.address() << "/"
            << (options.token.empty() ? "" : "?token=" + options.token) << std::endl;
  int signal = 0;
  sigwait(&signals, &signal);
  std::cout << "stopped (signal " << signal << ")" << std::endl;
  return 0;
}

}  // namespace flexmoe
