// This host's addresses (local_host.h).
#include "cluster/net/local_host.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <set>

#include "cluster/base/host_name.h"

namespace flexmoe {
namespace {

// Numeric forms of this machine's interface addresses.
std::set<std::string> InterfaceAddresses() {
  std::set<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr) continue;
    const int family = a->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    char text[INET6_ADDRSTRLEN] = {};
    const socklen_t size = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    if (::getnameinfo(a->ifa_addr, size, text, sizeof(text), nullptr, 0, NI_NUMERICHOST) == 0) {
      out.insert(text);
    }
  }
  ::freeifaddrs(list);
  return out;
}

bool IsLoopback(const sockaddr* address) {
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  return false;
}

}  // namespace

bool IsLocalHost(const std::string& host) {
  if (host.empty()) return false;
  const std::string self = HostName();
  if (host == self || host == self.substr(0, self.find('.')) ||
      self == host.substr(0, host.find('.'))) {
    return true;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return false;
  const std::set<std::string> mine = InterfaceAddresses();
  bool local = false;
  for (addrinfo* a = found; a != nullptr && !local; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    local = IsLoopback(a->ai_addr) || (::getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof(text),
                                                     nullptr, 0, NI_NUMERICHOST) == 0 &&
                                       mine.count(text) > 0);
  }
  ::freeaddrinfo(found);
  return local;
}

std::string PickNodeLocalAddress(const std::vector<std::string>& addresses, int worker) {
  std::vector<const std::string*> local;
  for (const std::string& a : addresses) {
    const size_t colon = a.rfind(':');
    std::string host = a.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    if (IsLocalHost(host)) local.push_back(&a);
  }
  if (!local.empty()) return *local[worker % local.size()];
  return addresses[worker % addresses.size()];
}

}  // namespace flexmoe
