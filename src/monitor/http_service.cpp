#include "monitor/http_service.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>

#include "base/host_port.hpp"
#include "base/text.hpp"
#include "monitor/snapshot_board.hpp"
#include "monitor/web_assets.hpp"

namespace galaxies::monitor {
namespace {

using namespace std::chrono_literals;

// Connections served at once, and waiting for a thread: past both, the accepting thread serves
// the next one itself, so it stops accepting meanwhile and the kernel's backlog pushes back.
constexpr std::size_t http_threads = 2;
constexpr std::size_t http_queued = 16;
// A snapshot this recent is served as it is: at most four builds a second on the loop, however
// many clients poll.
constexpr auto snapshot_max_age = 250ms;
constexpr auto snapshot_wait = 1s;

class bounded_pool final : public httplib::TaskQueue {
 public:
  bounded_pool() {
    for (std::size_t i = 0; i < http_threads; ++i) threads_.emplace_back([this] { work(); });
  }
  ~bounded_pool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    {
      std::unique_lock lock(mutex_);
      if (!stopping_ && jobs_.size() < http_queued) {
        jobs_.push_back(std::move(fn));
        ready_.notify_one();
        return;
      }
    }
    fn();  // serves (and closes) the connection here: it must never be dropped unclosed
  }

  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and every queued connection served
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      fn();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

bool is_loopback(std::string_view host) {
  const std::string h(host);
  in_addr v4{};
  if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return ::inet_pton(AF_INET6, h.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

bool is_numeric(std::string_view host) {
  const std::string h(host);
  in_addr v4{};
  in6_addr v6{};
  return ::inet_pton(AF_INET, h.c_str(), &v4) == 1 || ::inet_pton(AF_INET6, h.c_str(), &v6) == 1;
}

}  // namespace

http_service::http_service(const std::string& listen, bool allow_any_address,
                           std::shared_ptr<snapshot_board> board)
    : board_(std::move(board)), server_(std::make_unique<httplib::Server>()) {
  const auto where = base::split_host_port(listen);
  if (!where || !is_numeric(where->host))
    throw std::invalid_argument("--http '" + listen +
                                "' is not a numeric ip:port (for example 127.0.0.1:9464)");
  if (!allow_any_address && !is_loopback(where->host))
    throw std::invalid_argument(
        "--http " + listen +
        " is not a loopback address: the status it serves tells anyone who can reach it about "
        "the cluster; add --insecure to serve it there anyway");

  server_->new_task_queue = [] { return new bounded_pool(); };
  // Another thread of this process may fork+exec a worker at any moment; the listener must not
  // leak into it (the workers' spawn also closes every descriptor above its channel's).
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    ::fcntl(sock, F_SETFD, FD_CLOEXEC);
  });
  server_->set_read_timeout(5s);
  server_->set_write_timeout(5s);
  server_->set_keep_alive_timeout(5);
  server_->set_keep_alive_max_count(100);
  server_->set_payload_max_length(4096);
  routes();

  const std::string host(where->host);
  int port = where->port;
  if (port == 0) {
    port = server_->bind_to_any_port(host);
  } else if (!server_->bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) throw std::runtime_error("cannot serve HTTP on " + listen + ": bind failed");
  address_ =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  thread_ = std::thread([this] {
    if (!server_->listen_after_bind()) spdlog::warn("HTTP on {}: the server stopped", address_);
  });
}

http_service::~http_service() {
  stop();
}

void http_service::stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

void http_service::routes() {
  // Every response: no caching (the figures are live), no sniffing, no framing, no script or
  // style from anywhere but this address.
  server_->set_default_headers({{"Cache-Control", "no-store"},
                                {"X-Content-Type-Options", "nosniff"},
                                {"X-Frame-Options", "DENY"},
                                {"Content-Security-Policy", "default-src 'self'"}});
  server_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("HTTP {}: {}", base::printable(req.path, 200), what);
        res.status = 500;
        res.set_content("internal error\n", "text/plain; charset=utf-8");
      });
  const auto serve_snapshot = [this](httplib::Response& res, bool metrics) {
    const auto s = board_->get(snapshot_max_age, snapshot_wait);
    if (!s) {
      res.status = 503;
      res.set_content("this master has not built its status yet\n", "text/plain; charset=utf-8");
      return;
    }
    if (metrics)
      res.set_content(s->metrics, "text/plain; version=0.0.4; charset=utf-8");
    else
      res.set_content(s->status_json, "application/json");
  };
  server_->Get("/metrics", [serve_snapshot](const httplib::Request&, httplib::Response& res) {
    serve_snapshot(res, true);
  });
  server_->Get("/status.json", [serve_snapshot](const httplib::Request&, httplib::Response& res) {
    serve_snapshot(res, false);
  });
  server_->Get(".*", [](const httplib::Request& req, httplib::Response& res) {
    const web_asset* asset = find_web_asset(req.path);
    if (!asset) {
      res.status = 404;
      res.set_content("not found\n", "text/plain; charset=utf-8");
      return;
    }
    res.set_content(std::string(asset->body), std::string(asset->content_type).c_str());
  });
}

}  // namespace galaxies::monitor
