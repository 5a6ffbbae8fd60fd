// `flexmoe serve RUN_DIR` (serve_command.h): the coordinator's page and /metrics from a run
// directory, until SIGINT or SIGTERM.
#include "launch/serve_command.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include "cluster/base/error.h"
#include "cluster/net/job_token.h"
#include "cluster/web/http_server.h"
#include "cluster/web/routes.h"
#include "cluster/web/run_dir_view.h"
#include "launch/cli/args.h"
#include "launch/preemption.h"

namespace flexmoe {
namespace {

std::atomic<int> stop_signal{0};
void OnStopSignal(int signal) { stop_signal = signal; }

}  // namespace

int ServeCommand(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  const std::string run_dir = args.positional.at(0);
  auto view = std::make_shared<RunDirView>(run_dir);
  ReadRunDirView(run_dir);  // a directory without job.json: its error, before serving
  HttpServerOptions options;
  options.listen = args.Get("listen", "127.0.0.1:0");
  options.what = "serve --listen";
  // A token of this server's own, printed once in the URL (never the job's token).
  if (!args.Has("no-token")) options.token = NewToken();
  // A handler sets a flag (LibTorch's threads, started before main, cannot all block the
  // signals for sigwait); the loop below polls it.
  CatchSignals(OnStopSignal, {SIGINT, SIGTERM});
  HttpServer server(options, ViewRoutes([view] { return view->Snapshot(); }));
  std::cout << "serving " << run_dir << " on http://" << server.address() << "/"
            << (options.token.empty() ? "" : "?token=" + options.token) << std::endl;
  while (stop_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::cout << "stopped (signal " << stop_signal << ")" << std::endl;
  return 0;
}

}  // namespace flexmoe
