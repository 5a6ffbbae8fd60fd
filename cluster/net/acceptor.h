// A listening socket on HOST:PORT (port 0: a free one), shared by the framed server and the
// coordinator's HTTP endpoint (a private header of the cluster libraries: it names Boost).
#pragma once

#include <string>

#include "cluster/net/asio_names.h"

namespace flexmoe::net {

// "127.0.0.1:40312" or "[::1]:40312".
std::string EndpointName(const tcp::endpoint& endpoint);

// Opens, binds and listens `acceptor` on `listen`. kInvalidArgument naming `what` when the
// address is not HOST:PORT or does not resolve; kUnavailable when it cannot be bound.
void OpenAcceptor(tcp::acceptor& acceptor, const std::string& listen, const std::string& what);

}  // namespace flexmoe::net
