// A blocking HTTP/1.1 client on POSIX sockets for the live view's tests: one request per
// connection, every read and write bounded by a deadline.
#pragma once

#include <string>

namespace flexmoe::testing {

struct HttpResponse {
  int status = 0;    // 0: the connection closed (or timed out) before a status line
  std::string head;  // the status line and headers
  std::string body;
};

// A connected socket to HOST:PORT with `timeout_s` on its reads and writes; -1 on failure.
int ConnectTo(const std::string& address, double timeout_s = 5);
// Sends `raw` on `fd` and reads until the peer closes (or the socket's timeout).
HttpResponse Exchange(int fd, const std::string& raw);
// GET `path` with `headers` ("Name: value\r\n" each), Connection: close.
HttpResponse HttpGet(const std::string& address, const std::string& path,
                     const std::string& headers = "");
// The value of header `name` (case-insensitive) in `head`, or "".
std::string HeaderValue(const std::string& head, const std::string& name);

}  // namespace flexmoe::testing
