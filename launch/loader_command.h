// `flexmoe loader --config FILE [--listen HOST:PORT]`: a data-loader process that serves
// the prepared dataset's epoch plans to workers (data_loader/loader_server.h).
#pragma once

namespace flexmoe {

// Loads data.prepared_dir, binds --listen (default cluster.bind_address, port 0), prints
// "listening on HOST:PORT" on stdout and serves until SIGINT or SIGTERM. Returns the exit
// status; throws flexmoe::Error for a bad config, dataset, token source or address.
int LoaderCommand(int argc, char** argv);

}  // namespace flexmoe
