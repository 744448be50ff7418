#include "builtin_service.hpp"

#include <unistd.h>

#include <asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>

namespace galaxies::cli {
namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One write(2) per line: lines of several workers sharing stdout never interleave.
void emit(nlohmann::json event) {
  event["ts_ms"] = now_ms();
  // Every text in an event was validated where it was decoded; replacing what still is not UTF-8
  // keeps a bug elsewhere from throwing inside an event callback.
  std::string line = event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line.push_back('\n');
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

constexpr std::size_t max_held = 10000;

nlohmann::json slot_json(const std::optional<slot>& s) {
  return s ? nlohmann::json(s->index) : nlohmann::json(nullptr);
}

// The requests a worker is answering, and the drain that waits for them to end.
struct answering {
  std::size_t requests = 0;
  drain leaving;  // empty until the master stops
  void one_less() {
    if (--requests == 0) leaving.done();
  }
};

}  // namespace

void install_builtin_service(node& n, bool json_events, bool drain) {
  n.on("echo", [](const message& m, responder r) { r.reply(m.payload); });
  n.on("whoami", [&n](const message&, responder r) {
    const nlohmann::json me{{"node", n.id().to_string()},
                            {"host", n.host().to_string()},
                            {"pid", ::getpid()},
                            {"slot", slot_json(n.slot())}};
    r.reply(me.dump());
  });
  auto busy = std::make_shared<answering>();
  n.on("delay", [&n, busy](const message& m, responder r) {
    unsigned ms = 0;
    const auto text = as_text(m.payload);
    std::from_chars(text.data(), text.data() + text.size(), ms);
    auto timer =
        std::make_shared<asio::steady_timer>(n.get_executor(), std::chrono::milliseconds(ms));
    ++busy->requests;
    timer->async_wait([timer, busy, r = std::move(r)](std::error_code) mutable {
      r.reply("done");
      busy->one_less();
    });
  });
  // Groups (README "Groups"): PAYLOAD names the group; the reply is "ok" or the error.
  for (const bool joining : {true, false})
    n.on(joining ? "join" : "leave", [&n, joining](const message& m, responder r) {
      const std::string_view group = as_text(m.payload);
      const std::error_code ec = joining ? n.join(group) : n.leave(group);
      if (ec) return r.fail(errc::handler_failed, ec.message());
      r.reply("ok");
    });
  auto held = std::make_shared<std::deque<responder>>();
  n.on("hold", [held, busy](const message&, responder r) {
    if (held->size() >= max_held) return r.fail(errc::overloaded, "holding too many");
    held->push_back(std::move(r));
    ++busy->requests;  // for good: a held request is answered only when the worker goes
  });
  if (drain)
    n.on_stopping([&n, busy, json_events](galaxies::drain d) {
      if (json_events)
        emit({{"event", "stopping"},
              {"observer", n.id().to_string()},
              {"node", n.id().to_string()},
              {"host", n.host().to_string()},
              {"pid", ::getpid()},
              {"answering", busy->requests}});
      busy->leaving = std::move(d);
      if (busy->requests == 0) busy->leaving.done();
    });

  if (!json_events) return;
  n.on_ready([&n] {
    // Set late on purpose: an application's on_disconnected, set at any time, must not keep a
    // worker alive after its master is gone; the tests that kill masters check exactly that.
    n.on_disconnected([&n](std::error_code, std::string_view why) {
      emit({{"event", "disconnected"},
            {"observer", n.id().to_string()},
            {"node", n.id().to_string()},
            {"host", n.host().to_string()},
            {"pid", ::getpid()},
            {"reason", std::string(why)}});
    });
    emit({{"event", "started"},
          {"observer", n.id().to_string()},
          {"node", n.id().to_string()},
          {"host", n.host().to_string()},
          {"pid", ::getpid()},
          {"slot", slot_json(n.slot())}});
  });
  n.on_node_joined([&n](const node_info& x) {
    emit({{"event", "nodeJoined"},
          {"observer", n.id().to_string()},
          {"node", x.id.to_string()},
          {"host", x.host.to_string()},
          {"pid", x.pid},
          {"slot", slot_json(x.slot)}});
  });
  n.on_node_left([&n](const node_info& x, leave_reason why, int detail) {
    emit({{"event", "nodeLeft"},
          {"observer", n.id().to_string()},
          {"node", x.id.to_string()},
          {"host", x.host.to_string()},
          {"pid", x.pid},
          {"slot", slot_json(x.slot)},
          {"reason", to_string(why)},
          {"detail", detail}});
  });
  for (const bool joined : {true, false}) {
    auto group_event = [&n, joined](std::string_view group, const node_info& x) {
      emit({{"event", joined ? "groupJoined" : "groupLeft"},
            {"observer", n.id().to_string()},
            {"node", x.id.to_string()},
            {"host", x.host.to_string()},
            {"pid", x.pid},
            {"group", std::string(group)}});
    };
    joined ? n.on_group_joined(group_event) : n.on_group_left(group_event);
  }
  n.on_host_joined([&n](const host_info& h) {
    emit({{"event", "hostJoined"},
          {"observer", n.id().to_string()},
          {"node", nullptr},
          {"host", h.id.to_string()},
          {"address", h.address},
          {"pid", ::getpid()}});
  });
  n.on_host_left([&n](const host_info& h, leave_reason why) {
    emit({{"event", "hostLeft"},
          {"observer", n.id().to_string()},
          {"node", nullptr},
          {"host", h.id.to_string()},
          {"address", h.address},
          {"pid", ::getpid()},
          {"reason", to_string(why)}});
  });
}

}  // namespace galaxies::cli
