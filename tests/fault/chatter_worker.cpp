#include "chatter_worker.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <charconv>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace galaxies::fault {
namespace {

using json = nlohmann::ordered_json;

double monotonic_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

std::string error_name(std::error_code ec) {
  if (!ec) return "ok";
  if (ec.category() == galaxies::error_category()) {
    switch (static_cast<errc>(ec.value())) {
      case errc::ok:
        return "ok";
      case errc::timeout:
        return "timeout";
      case errc::node_left:
        return "node_left";
      case errc::no_such_node:
        return "no_such_node";
      case errc::no_handler:
        return "no_handler";
      case errc::too_large:
        return "too_large";
      case errc::overloaded:
        return "overloaded";
      case errc::unauthorized:
        return "unauthorized";
      case errc::handler_failed:
        return "handler_failed";
      case errc::shutting_down:
        return "shutting_down";
      case errc::not_connected:
        return "not_connected";
    }
  }
  return ec.message();
}

// The node's event file. Lines of one handler run are gathered and written with one write(2)
// when the handler returns (a posted flush); membership and other rare events are written at
// once, so that a worker killed or stopped loses at most the message lines of its last handler.
class line_log {
 public:
  line_log(asio::any_io_executor ex, const std::filesystem::path& path) : ex_(std::move(ex)) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("chatter: cannot open " + path.string());
  }
  ~line_log() {
    flush();
    ::close(fd_);
  }
  line_log(const line_log&) = delete;
  line_log& operator=(const line_log&) = delete;

  void add(std::string_view ev, const json& fields, bool urgent = false) {
    char head[64];
    const int n = std::snprintf(head, sizeof head, "{\"t_ms\":%.3f,\"ev\":\"", monotonic_ms());
    buffer_.append(head, static_cast<std::size_t>(n));
    buffer_.append(ev);
    buffer_.push_back('"');
    if (!fields.empty()) {
      const std::string rest = fields.dump();  // {"a":1,...}
      buffer_.push_back(',');
      buffer_.append(rest, 1, std::string::npos);
    } else {
      buffer_.push_back('}');
    }
    buffer_.push_back('\n');
    if (urgent || buffer_.size() > (64u << 10)) return flush();
    if (!flush_posted_) {
      flush_posted_ = true;
      asio::post(ex_, [this, alive = std::weak_ptr<int>(alive_)] {
        if (alive.expired()) return;
        flush_posted_ = false;
        flush();
      });
    }
  }

  void flush() {
    const char* p = buffer_.data();
    std::size_t left = buffer_.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    buffer_.clear();
  }

 private:
  asio::any_io_executor ex_;
  int fd_ = -1;
  std::string buffer_;
  bool flush_posted_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

class chatter : public std::enable_shared_from_this<chatter> {
 public:
  chatter(node& n, chatter_settings s)
      : node_(n),
        settings_(std::move(s)),
        log_(n.get_executor(), settings_.log_dir / (n.id().to_string() + ".jsonl")),
        send_timer_(n.get_executor()),
        request_timer_(n.get_executor()),
        quiesce_path_(settings_.log_dir / "quiesce") {}

  void install() {
    log_.add("boot",
             {{"me", node_.id().to_string()}, {"pid", ::getpid()}, {"label", settings_.label}},
             true);
    node_.on("chat", [this, self = shared_from_this()](const message& m, responder) {
      // "<seq>" or, with groups, "<seq>/<publishes made before it>".
      const auto text = as_text(m.payload);
      std::uint64_t seq = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seq);
      json fields{{"from", m.from.to_string()}, {"seq", seq}};
      if (std::uint64_t pubs = 0; end != text.data() + text.size() && *end == '/') {
        std::from_chars(end + 1, text.data() + text.size(), pubs);
        fields["pubs"] = pubs;
      }
      log_.add("recv", fields);
    });
    if (settings_.rooms > 0) install_groups();
    node_.on("echo", [this](const message& m, responder r) {
      const auto text = as_text(m.payload);
      std::uint64_t id = 0;
      if (const auto slash = text.find('/'); slash != std::string_view::npos)
        std::from_chars(text.data() + slash + 1, text.data() + text.size(), id);
      log_.add("serve", {{"from", m.from.to_string()}, {"id", id}});
      r.reply(m.payload);
    });
    node_.on_ready([this] {
      log_.add("started",
               {{"me", node_.id().to_string()},
                {"host", node_.host().to_string()},
                {"pid", ::getpid()},
                {"label", settings_.label}},
               true);
      node_.on_disconnected([this](std::error_code, std::string_view why) {
        log_.add("disconnected", {{"why", std::string(why)}}, true);
      });
      if (settings_.rooms > 0) join_room();
      schedule_send();
      schedule_request();
    });
    node_.on_node_joined([this](const node_info& x) {
      log_.add("nodeJoined",
               {{"node", x.id.to_string()}, {"host", x.host.to_string()}, {"pid", x.pid}}, true);
      peers_.emplace(x.id, true);
    });
    node_.on_node_left([this](const node_info& x, leave_reason why, int detail) {
      log_.add("nodeLeft",
               {{"node", x.id.to_string()},
                {"host", x.host.to_string()},
                {"reason", std::string(to_string(why))},
                {"detail", detail}},
               true);
      peers_.erase(x.id);
    });
    node_.on_host_joined([this](const host_info& h) {
      log_.add("hostJoined", {{"host", h.id.to_string()}, {"address", h.address}}, true);
    });
    node_.on_host_left([this](const host_info& h, leave_reason why) {
      log_.add("hostLeft", {{"host", h.id.to_string()}, {"reason", std::string(to_string(why))}},
               true);
    });
  }

 private:
  void install_groups() {
    node_.on("room", [this](const message& m, responder) {
      std::uint64_t seq = 0;
      const auto text = as_text(m.payload);
      std::from_chars(text.data(), text.data() + text.size(), seq);
      log_.add("deliver",
               {{"from", m.from.to_string()}, {"group", std::string(m.group)}, {"seq", seq}});
    });
    node_.on_group_joined([this](std::string_view group, const node_info& x) {
      log_.add("groupJoined", {{"group", std::string(group)}, {"node", x.id.to_string()}}, true);
    });
    node_.on_group_left([this](std::string_view group, const node_info& x) {
      log_.add("groupLeft", {{"group", std::string(group)}, {"node", x.id.to_string()}}, true);
    });
    // Joined before registration: the master learns it right after the welcome.
    join("all");
  }

  // A refused join is logged (the checker counts it as a violation), never silent.
  void join(const std::string& group) {
    if (auto ec = node_.join(group))
      log_.add("join_fail", {{"group", group}, {"error", error_name(ec)}}, true);
  }

  // The room follows the slot, known once registered; a node without one (attached) takes room0.
  void join_room() {
    const auto s = node_.slot();
    room_ = "room" + std::to_string((s ? s->index : 0) % settings_.rooms);
    join(room_);
  }

  void publish_round() {
    if (room_.empty()) return;
    const std::string payload = std::to_string(published_ + 1);
    if (auto ec = node_.publish(room_, "room", as_bytes(payload))) {
      log_.add("publish_fail", {{"group", room_}, {"error", error_name(ec)}});
      return;
    }
    ++published_;
    log_.add("publish", {{"group", room_}, {"seq", published_}});
  }

  bool check_quiesce() {
    if (quiesced_) return true;
    if (::access(quiesce_path_.c_str(), F_OK) != 0) return false;
    quiesced_ = true;
    json nodes = json::array();
    for (const auto& x : node_.nodes()) nodes.push_back(x.id.to_string());
    json hosts = json::array();
    for (const auto& h : node_.hosts()) hosts.push_back(h.id.to_string());
    json sent = json::object();
    for (const auto& [to, seq] : next_seq_) sent[to.to_string()] = seq;
    log_.add("quiesce", {{"nodes", nodes}, {"hosts", hosts}, {"sent", sent}}, true);
    maybe_idle();
    return true;
  }

  void maybe_idle() {
    if (quiesced_ && pending_ == 0 && !idle_) {
      idle_ = true;
      log_.add("idle", json::object(), true);
    }
  }

  void schedule_send() {
    send_timer_.expires_after(settings_.send_every);
    send_timer_.async_wait([weak = weak_from_this()](std::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->send_round();
    });
  }

  void send_round() {
    if (check_quiesce()) return;
    publish_round();
    for (const auto& [to, known] : peers_) {
      auto& seq = next_seq_[to];
      std::string payload = std::to_string(seq + 1);
      if (settings_.rooms > 0) payload += "/" + std::to_string(published_);
      if (auto ec = node_.send(to, "chat", as_bytes(payload))) {
        log_.add("send_fail", {{"to", to.to_string()}, {"error", error_name(ec)}});
        continue;
      }
      ++seq;
      log_.add("send", {{"to", to.to_string()}, {"seq", seq}});
    }
    schedule_send();
  }

  void schedule_request() {
    request_timer_.expires_after(settings_.request_every);
    request_timer_.async_wait([weak = weak_from_this()](std::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->request_round();
    });
  }

  void request_round() {
    if (check_quiesce()) return;
    if (!peers_.empty() && pending_ < settings_.max_pending_requests) {
      // Round robin over the known nodes, by id order.
      auto it = peers_.upper_bound(last_target_);
      if (it == peers_.end()) it = peers_.begin();
      const node_id to = it->first;
      last_target_ = to;
      const std::uint64_t id = ++request_count_;
      const std::string payload = node_.id().to_string() + "/" + std::to_string(id);
      log_.add("request", {{"id", id}, {"to", to.to_string()}});
      ++pending_;
      node_.request(to, "echo", as_bytes(payload), settings_.request_timeout,
                    [weak = weak_from_this(), id, to, payload](std::error_code ec, bytes reply) {
                      auto self = weak.lock();
                      if (!self) return;
                      const bool echo = !ec && as_text(reply) == payload;
                      self->log_.add("request_end", {{"id", id},
                                                     {"to", to.to_string()},
                                                     {"outcome", ec ? error_name(ec) : "reply"},
                                                     {"echo", echo}});
                      --self->pending_;
                      self->maybe_idle();
                    });
    }
    schedule_request();
  }

  node& node_;
  chatter_settings settings_;
  line_log log_;
  asio::steady_timer send_timer_;
  asio::steady_timer request_timer_;
  std::filesystem::path quiesce_path_;
  std::map<node_id, bool> peers_;              // known now
  std::map<node_id, std::uint64_t> next_seq_;  // last seq sent, per receiver, kept across episodes
  node_id last_target_;
  std::uint64_t request_count_ = 0;
  std::size_t pending_ = 0;
  std::string room_;             // joined once registered (groups on)
  std::uint64_t published_ = 0;  // publishes made so far
  bool quiesced_ = false;
  bool idle_ = false;
};

}  // namespace

void install_chatter(node& n, const chatter_settings& settings) {
  auto c = std::make_shared<chatter>(n, settings);
  c->install();
}

}  // namespace galaxies::fault
