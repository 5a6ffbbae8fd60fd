// The tests' HTTP client (http_client.h).
#include "tests/web/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace flexmoe::testing {

int ConnectTo(const std::string& address, double timeout_s) {
  const size_t colon = address.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(address.substr(colon + 1).c_str())));
  if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr) != 1) return -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{static_cast<time_t>(timeout_s),
             static_cast<suseconds_t>((timeout_s - static_cast<int>(timeout_s)) * 1e6)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

HttpResponse Exchange(int fd, const std::string& raw) {
  HttpResponse r;
  if (fd < 0) return r;
  if (!raw.empty()) (void)!::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL);
  std::string all;
  char buffer[65536];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0;) all.append(buffer, n);
  ::close(fd);
  const size_t end = all.find("\r\n\r\n");
  if (all.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) return r;
  r.status = std::atoi(all.substr(9, 3).c_str());
  r.head = all.substr(0, end);
  r.body = all.substr(end + 4);
  return r;
}

HttpResponse HttpGet(const std::string& address, const std::string& path,
                     const std::string& headers) {
  return Exchange(ConnectTo(address), "GET " + path + " HTTP/1.1\r\nHost: " + address + "\r\n" +
                                          headers + "Connection: close\r\n\r\n");
}

std::string HeaderValue(const std::string& head, const std::string& name) {
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
  };
  const std::string h = lower(head), key = "\r\n" + lower(name) + ": ";
  const size_t at = h.find(key);
  if (at == std::string::npos) return "";
  const size_t start = at + key.size();
  return head.substr(start, head.find("\r\n", start) - start);
}

}  // namespace flexmoe::testing
