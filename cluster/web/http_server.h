// A small read-only HTTP/1.1 server (Boost.Beast) for the live page and /metrics, on its own
// thread and io_context: a slow, hostile or numerous client never delays the caller's
// threads (the coordinator's heartbeats). Requests are bounded in size (headers) and time
// (the whole request and its reply), connections in number; only GET and HEAD are served.
// With a token, a request must carry it: `Authorization: Bearer TOKEN`, or the cookie that
// `?token=TOKEN` sets (then redirects to `/`, so the token leaves the address bar). Tokens are
// hex (NewToken), so they need no escaping in a URL or a cookie. Without a token, a request
// must name the server by an IP address, localhost or the host it listens on (Host header),
// else 421: a DNS-rebinding page cannot read it under a name of its own. HEAD replies carry
// the Content-Length that GET's would.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace flexmoe {

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// The reply for a path ("/api/job", query removed), or none for 404. Runs on the server's
// thread.
using HttpHandler = std::function<std::optional<HttpReply>(const std::string& path)>;

struct HttpServerOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT; port 0 picks a free one
  std::string what = "http";           // names the setting in errors (cluster.http_listen)
  std::string token;                   // required from every request; "" serves anyone
  size_t max_header_bytes = 8192;      // a larger request line and headers: 431
  double request_timeout_s = 5;        // to read a request and write its reply
  int max_connections = 256;           // more at once are answered 503 and closed
};

struct HttpStats {
  int64_t requests = 0, unauthorized = 0, refused_connections = 0, timed_out = 0;
  int64_t open_connections = 0;
};

class HttpServer {
 public:
  // Binds (kInvalidArgument / kUnavailable naming options.what) and starts serving.
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();  // stops serving and joins its thread
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::string address() const;  // HOST:PORT bound
  HttpStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flexmoe
