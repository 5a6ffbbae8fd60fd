// Listening sockets (acceptor.h).
#include "cluster/net/acceptor.h"

#include "cluster/base/error.h"
#include "cluster/net/frame.h"

namespace flexmoe::net {

std::string EndpointName(const tcp::endpoint& endpoint) {
  const std::string host = endpoint.address().to_string();
  const std::string port = std::to_string(endpoint.port());
  return endpoint.address().is_v6() ? "[" + host + "]:" + port : host + ":" + port;
}

void OpenAcceptor(tcp::acceptor& acceptor, const std::string& listen, const std::string& what) {
  std::string host, port;
  SplitHostPort(listen, what, &host, &port);
  error_code ec;
  tcp::resolver resolver(acceptor.get_executor());
  auto endpoints = resolver.resolve(host, port, tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) {
    Fail(ErrorCode::kInvalidArgument, what, ": cannot resolve ", listen, ": ", ec.message());
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) Fail(ErrorCode::kUnavailable, what, ": cannot listen on ", listen, ": ", ec.message());
}

}  // namespace flexmoe::net
