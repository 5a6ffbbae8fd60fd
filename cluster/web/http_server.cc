// The live view's HTTP server (http_server.h).
#include "cluster/web/http_server.h"

#include <glog/logging.h>

#include <atomic>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <mutex>
#include <thread>

#include "cluster/net/acceptor.h"
#include "cluster/net/job_token.h"

namespace flexmoe {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using net::error_code;
using net::asio::ip::tcp;

// The cookie is per port: two jobs on one host keep their own.
std::string CookieName(unsigned short port) { return "flexmoe_token_" + std::to_string(port); }

// The value of `name` in a Cookie header ("a=1; b=2"), or "".
std::string CookieValue(beast::string_view header, const std::string& name) {
  std::string text(header);
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find(';', at);
    if (end == std::string::npos) end = text.size();
    std::string pair = text.substr(at, end - at);
    pair.erase(0, pair.find_first_not_of(' '));
    if (pair.rfind(name + "=", 0) == 0) return pair.substr(name.size() + 1);
    at = end + 1;
  }
  return "";
}

// The value of `key` in a query string ("a=1&token=x"), or "".
std::string QueryValue(const std::string& query, const std::string& key) {
  size_t at = 0;
  while (at < query.size()) {
    size_t end = query.find('&', at);
    if (end == std::string::npos) end = query.size();
    if (query.compare(at, key.size() + 1, key + "=") == 0) {
      return query.substr(at + key.size() + 1, end - at - key.size() - 1);
    }
    at = end + 1;
  }
  return "";
}

// Whether a request's Host header names this server the way a browser that was not tricked
// does: an IP literal (v4, or v6 in brackets), localhost, or the host the server listens
// on, with any port; an absent Host (HTTP/1.0) too. A DNS-rebinding page reaches a
// loopback server under its own name (Host: attacker.example), which this refuses.
bool HostAllowed(beast::string_view header, const std::string& listen_host) {
  std::string host(header);
  if (host.empty()) return true;
  if (host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string::npos) return false;
    error_code ec;
    net::asio::ip::make_address_v6(host.substr(1, close - 1), ec);
    return !ec;
  }
  host = host.substr(0, host.find(':'));
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (host == "localhost" || (!listen_host.empty() && host == listen_host)) return true;
  error_code ec;
  net::asio::ip::make_address_v4(host, ec);
  return !ec;
}

}  // namespace

class HttpServer::Impl {
 public:
  class Session;

  Impl(HttpServerOptions options, HttpHandler handler)
      : options_(std::move(options)), handler_(std::move(handler)), acceptor_(io_) {
    net::OpenAcceptor(acceptor_, options_.listen, options_.what);
    address_ = net::EndpointName(acceptor_.local_endpoint());
    cookie_ = CookieName(acceptor_.local_endpoint().port());
    listen_host_ = options_.listen.substr(0, options_.listen.rfind(':'));
    for (char& c : listen_host_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    Accept();
    thread_ = std::thread([this] { Serve(); });
  }

  ~Impl() {
    net::asio::post(io_, [this] {
      error_code ignored;
      acceptor_.close(ignored);
      io_.stop();
    });
    thread_.join();
  }

  // Runs io_ until it is stopped; a handler's exception is logged, never the process's end.
  void Serve() {
    while (true) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        LOG(ERROR) << options_.what << ": " << e.what();
      }
    }
  }
  void Accept();
  // A new connection: a session, or 503 over the connection limit.
  void Accepted(tcp::socket socket);
  // The reply to a parsed request: the token check, then the handler.
  http::response<http::string_body> Respond(const http::request<http::empty_body>& request);
  void Count(int64_t HttpStats::*field, int64_t by = 1) {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    stats_.*field += by;
  }

  HttpServerOptions options_;
  HttpHandler handler_;
  // Before io_: sessions still queued in io_ count themselves out as it is destroyed.
  mutable std::mutex stats_mutex_;
  HttpStats stats_;
  net::asio::io_context io_;
  tcp::acceptor acceptor_;
  net::asio::steady_timer accept_retry_{io_};
  std::string address_, cookie_;
  std::string listen_host_;  // lower case, as options_.listen names it
  std::thread thread_;
};

class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl* server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {
    server_->Count(&HttpStats::open_connections);
  }
  ~Session() { server_->Count(&HttpStats::open_connections, -1); }

  void Read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->options_.max_header_bytes));
    parser_->body_limit(0);
    stream_.expires_after(std::chrono::milliseconds(
        static_cast<int64_t>(server_->options_.request_timeout_s * 1000)));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(error_code ec) {
    if (ec == beast::error::timeout) return server_->Count(&HttpStats::timed_out);
    if (ec == http::error::header_limit) return Reply(Refusal(431, "request headers too large"));
    if (ec == http::error::body_limit) return Reply(Refusal(413, "a request has no body here"));
    if (ec) return;  // closed, or not HTTP
    server_->Count(&HttpStats::requests);
    Reply(server_->Respond(parser_->get()));
  }

  http::response<http::string_body> Refusal(int status, const std::string& why) {
    http::response<http::string_body> r{static_cast<http::status>(status), 11};
    r.set(http::field::content_type, "text/plain; charset=utf-8");
    r.body() = why + "\n";
    r.keep_alive(false);
    r.prepare_payload();
    return r;
  }

  void Reply(http::response<http::string_body> response) {
    response_ = std::move(response);
    http::async_write(stream_, response_, [self = shared_from_this()](error_code ec, size_t) {
      if (ec == beast::error::timeout) self->server_->Count(&HttpStats::timed_out);
      if (ec || !self->response_.keep_alive()) {
        error_code ignored;
        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        return;
      }
      self->Read();
    });
  }

  Impl* server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> response_;
};

void HttpServer::Impl::Accept() {
  acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;
    if (ec) {
      // Out of descriptors (EMFILE) and the like: try again shortly, not in a busy loop.
      LOG(WARNING) << options_.what << ": accept: " << ec.message();
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](error_code) { Accept(); });
      return;
    }
    Accepted(std::move(socket));
    Accept();
  });
}

void HttpServer::Impl::Accepted(tcp::socket socket) {
  int64_t open = 0;
  {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    open = stats_.open_connections;
  }
  if (open < options_.max_connections) {
    std::make_shared<Session>(this, std::move(socket))->Read();
    return;
  }
  // Over the limit: a best-effort 503 that never blocks this thread, then close.
  Count(&HttpStats::refused_connections);
  error_code ignored;
  socket.non_blocking(true, ignored);
  static const char kBusy[] =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  socket.write_some(net::asio::buffer(kBusy, sizeof(kBusy) - 1), ignored);
  socket.close(ignored);
}

http::response<http::string_body> HttpServer::Impl::Respond(
    const http::request<http::empty_body>& request) {
  const std::string target(request.target());
  const size_t q = target.find('?');
  const std::string path = target.substr(0, q);
  const std::string query = q == std::string::npos ? "" : target.substr(q + 1);
  http::response<http::string_body> r;
  r.version(request.version());
  r.keep_alive(request.keep_alive());
  r.set(http::field::cache_control, "no-store");
  r.set("X-Content-Type-Options", "nosniff");
  auto finish = [&](http::status status, const std::string& type, std::string body) {
    r.result(status);
    r.set(http::field::content_type, type);
    r.body() = std::move(body);
    r.prepare_payload();
    if (request.method() == http::verb::head) {
      // HEAD: the headers GET would send, Content-Length included, and no body.
      const size_t length = r.body().size();
      r.body().clear();
      r.content_length(length);
    }
    return r;
  };
  if (request.method() != http::verb::get && request.method() != http::verb::head) {
    r.set(http::field::allow, "GET, HEAD");
    return finish(http::status::method_not_allowed, "text/plain", "read-only: GET and HEAD\n");
  }
  if (options_.token.empty() && !HostAllowed(request[http::field::host], listen_host_)) {
    Count(&HttpStats::unauthorized);
    return finish(http::status::misdirected_request, "text/plain",
                  "this server answers to its address or localhost only (Host: " +
                      std::string(request[http::field::host]) + ")\n");
  }
  if (!options_.token.empty()) {
    const std::string asked = QueryValue(query, "token");
    if (!asked.empty() && TokensEqual(asked, options_.token)) {
      r.set(http::field::set_cookie,
            cookie_ + "=" + options_.token + "; Path=/; HttpOnly; SameSite=Strict");
      r.set(http::field::location, "/");
      return finish(http::status::see_other, "text/plain", "");
    }
    std::string bearer(request[http::field::authorization]);
    bearer = bearer.rfind("Bearer ", 0) == 0 ? bearer.substr(7) : "";
    const std::string cookie = CookieValue(request[http::field::cookie], cookie_);
    if (!TokensEqual(bearer, options_.token) && !TokensEqual(cookie, options_.token)) {
      Count(&HttpStats::unauthorized);
      r.set(http::field::www_authenticate, "Bearer");
      return finish(http::status::unauthorized, "text/plain",
                    "a token is required: open the URL `flexmoe train` or `flexmoe serve` "
                    "printed, or send Authorization: Bearer TOKEN (a job's page: "
                    "RUN_DIR/web.token)\n");
    }
  }
  std::optional<HttpReply> reply = handler_(path);
  if (!reply) return finish(http::status::not_found, "text/plain", "not found\n");
  return finish(static_cast<http::status>(reply->status), reply->content_type,
                std::move(reply->body));
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}
HttpServer::~HttpServer() = default;
std::string HttpServer::address() const { return impl_->address_; }
HttpStats HttpServer::stats() const {
  std::lock_guard<std::mutex> lock(impl_->stats_mutex_);
  return impl_->stats_;
}

}  // namespace flexmoe
