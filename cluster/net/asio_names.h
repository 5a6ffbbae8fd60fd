// The Boost.Asio names and the deadline clock that cluster/net's sources share (a private
// header of flexmoe_cluster_net: Boost stays out of its public headers).
#pragma once

#include <boost/asio.hpp>
#include <chrono>

#include "cluster/net/clock.h"

namespace flexmoe::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

}  // namespace flexmoe::net
