#include "registry/redis/redis_connection.hpp"

#include <fcntl.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <asio/post.hpp>
#include <cerrno>

#include "base/text.hpp"
#include "registry/redis/hiredis_asio.hpp"

namespace galaxies::registry::redis {
namespace {

bool is_string(const redisReply* value) {
  return value != nullptr && (value->type == REDIS_REPLY_STRING) && value->str != nullptr;
}

}  // namespace

struct connection::pending {
  reply_handler done;
  bool timed;  // counted against request_timeout (setup commands live under the connect deadline)
};

connection::connection(const asio::any_io_executor& executor, target where,
                       std::chrono::milliseconds request_timeout)
    : executor_(executor),
      where_(std::move(where)),
      request_timeout_(request_timeout),
      timer_(executor) {}

connection::~connection() {
  close();
}

void connection::connect(std::chrono::milliseconds timeout, status_handler done,
                         status_handler on_lost) {
  if (phase_ != phase::idle) {
    post_status(std::move(done), errc::not_connected, "redis " + where_.endpoint() + ": reused");
    return;
  }
  phase_ = phase::connecting;
  connect_done_ = std::move(done);
  on_lost_ = std::move(on_lost);
  connect_timeout_ = timeout;
  connect_deadline_ = clock::now() + timeout;

  redisAsyncContext* context = redisAsyncConnect(where_.host.c_str(), where_.port);
  if (context == nullptr) {
    phase_ = phase::failed;
    post_status(std::move(connect_done_), std::make_error_code(std::errc::not_enough_memory),
                "redis " + where_.endpoint() + ": cannot allocate a connection");
    return;
  }
  if (context->err) {  // refused at once (loopback), or the name did not resolve
    note_context_error(*context);
    redisAsyncFree(context);
    phase_ = phase::failed;
    post_status(std::move(connect_done_), failure_, failure_detail_);
    return;
  }
  // Workers are fork+exec'd from this process: they must not inherit the registry's socket.
  ::fcntl(context->c.fd, F_SETFD, ::fcntl(context->c.fd, F_GETFD) | FD_CLOEXEC);
  // Before anything is read: a reply may not make us allocate for elements it never sends.
  limit_reply_elements(*context->c.reader);
  context->data = this;
  events_ = hiredis_asio::attach(context, executor_,
                                 [this](const redisAsyncContext& gone) { on_detached(gone); });
  if (!events_) {
    redisAsyncFree(context);
    phase_ = phase::failed;
    post_status(std::move(connect_done_), errc::not_connected,
                "redis " + where_.endpoint() + ": cannot watch the connection's socket");
    return;
  }
  // Registering the callback asks for the first writable event, which completes the connect.
  redisAsyncSetConnectCallback(context, &connection::on_connect_cb);
  // hiredis buffers these until the connect completes; their replies end the connect phase.
  start_setup();
  arm_timer();
}

void connection::start_setup() {
  const auto refused = [this](const char* what) {
    return [this, what](std::error_code ec, const std::string&, reply value) {
      if (phase_ != phase::connecting || !ec) return;
      fail(ec, "redis " + where_.endpoint() + ": " + what + ": " +
                   (value.text.empty() ? ec.message() : base::printable(value.text, 200)));
    };
  };
  if (!where_.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!where_.username.empty()) auth.push_back(where_.username);
    auth.push_back(where_.password);
    send(auth, refused("AUTH"), false);
  }
  if (where_.db) send({"SELECT", std::to_string(*where_.db)}, refused("SELECT"), false);
  send(
      {"PING"},
      [this, refused = refused("PING")](std::error_code ec, const std::string& detail,
                                        reply value) {
        if (phase_ != phase::connecting) return;
        if (ec) return refused(ec, detail, std::move(value));
        phase_ = phase::ready;
        connect_deadline_ = clock::time_point::max();
        post_status(std::move(connect_done_), {}, {});
      },
      false);
}

void connection::command(std::vector<std::string> args, reply_handler done) {
  if (!ready() || phase_ == phase::subscribed || dying_) {
    asio::post(executor_, [alive = alive_, done = std::move(done), ec = failure_, where = where_] {
      if (*alive && done) {
        done(ec ? ec : make_error_code(errc::not_connected),
             "redis " + where.endpoint() + ": not connected", {});
      }
    });
    return;
  }
  send(args, std::move(done), true);
}

void connection::send(const std::vector<std::string>& args, reply_handler done, bool timed) {
  redisAsyncContext* context = events_ ? events_->context() : nullptr;
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  auto* request = new pending{std::move(done), timed};
  // hiredis refuses commands once the context is disconnecting or freeing; the callback then
  // never runs, so the request is ours to answer.
  if (context == nullptr || redisAsyncCommandArgv(context, &connection::on_reply_cb, request,
                                                  static_cast<int>(args.size()), argv.data(),
                                                  lengths.data()) != REDIS_OK) {
    std::unique_ptr<pending> owned(request);
    asio::post(executor_, [alive = alive_, done = std::move(owned->done), where = where_] {
      if (*alive && done) {
        done(make_error_code(errc::not_connected), "redis " + where.endpoint() + ": not connected",
             {});
      }
    });
    return;
  }
  if (timed) expect_reply();
}

void connection::subscribe(std::vector<std::string> channels, std::vector<std::string> patterns,
                           message_handler on_message, status_handler done) {
  redisAsyncContext* context = events_ ? events_->context() : nullptr;
  if (phase_ != phase::ready || dying_ || context == nullptr ||
      (channels.empty() && patterns.empty())) {
    post_status(std::move(done), errc::not_connected, "redis " + where_.endpoint() + ": not ready");
    return;
  }
  phase_ = phase::subscribed;
  on_message_ = std::move(on_message);
  subscribe_done_ = std::move(done);
  unconfirmed_ = channels.size() + patterns.size();
  for (auto [verb, names] :
       {std::pair{"SUBSCRIBE", &channels}, std::pair{"PSUBSCRIBE", &patterns}}) {
    if (names->empty()) continue;
    std::vector<const char*> argv{verb};
    std::vector<std::size_t> lengths{std::string_view(verb).size()};
    for (const auto& name : *names) {
      argv.push_back(name.data());
      lengths.push_back(name.size());
    }
    // The subscription callbacks share no per-command data (privdata stays null): hiredis calls
    // each of them once more with a null reply when it frees the context.
    if (redisAsyncCommandArgv(context, &connection::on_subscription_cb, nullptr,
                              static_cast<int>(argv.size()), argv.data(),
                              lengths.data()) != REDIS_OK) {
      fail(errc::not_connected, "redis " + where_.endpoint() + ": " + verb + " refused by hiredis");
      return;
    }
    for (std::size_t i = 0; i < names->size(); ++i) expect_reply();
  }
}

void connection::close() {
  *alive_ = false;
  phase_ = phase::closed;
  timer_.cancel();
  timer_armed_ = false;
  if (!events_) return;
  events_->forget_owner();
  // Callbacks that hiredis runs while freeing (null replies) find no owner and only release
  // their request.
  if (auto* context = events_->context()) context->data = nullptr;
  events_->free_context();
  events_.reset();
}

void connection::on_connect_cb(const redisAsyncContext* context, int status) {
  auto* self = static_cast<connection*>(context->data);
  // A failed connect is followed at once by the free (and on_detached), which reports it; errno
  // still holds the reason here and only here.
  if (self != nullptr && status != REDIS_OK) self->note_context_error(*context);
}

void connection::on_reply_cb(redisAsyncContext* context, void* value, void* privdata) {
  std::unique_ptr<pending> request(static_cast<pending*>(privdata));
  auto* self = static_cast<connection*>(context->data);
  if (self == nullptr || !request) return;
  const auto* r = static_cast<const redisReply*>(value);
  if (r == nullptr) self->note_context_error(*context);
  self->on_reply(r, std::move(request->done), request->timed);
}

void connection::on_subscription_cb(redisAsyncContext* context, void* value, void*) {
  auto* self = static_cast<connection*>(context->data);
  if (self == nullptr || value == nullptr) return;  // freeing: on_detached reports the failure
  self->on_subscription(static_cast<const redisReply*>(value));
}

void connection::on_reply(const redisReply* value, reply_handler done, bool timed) {
  if (value == nullptr) {
    asio::post(executor_,
               [alive = alive_, done = std::move(done), ec = failure_, detail = failure_detail_] {
                 if (*alive && done)
                   done(ec ? ec : make_error_code(errc::connection_closed), detail, {});
               });
    return;
  }
  if (timed) answered();
  auto owned = copy_reply(*value);
  std::error_code ec;
  std::string detail;
  if (owned.type == reply::kind::error) {
    ec = errc::server_error;
    detail = "redis " + where_.endpoint() + ": " + base::printable(owned.text, 200);
  }
  asio::post(executor_, [alive = alive_, done = std::move(done), ec, detail = std::move(detail),
                         owned = std::move(owned)]() mutable {
    if (*alive && done) done(ec, detail, std::move(owned));
  });
}

void connection::on_subscription(const redisReply* value) {
  if (value->type != REDIS_REPLY_ARRAY || value->elements < 3 || !is_string(value->element[0])) {
    fail(errc::unexpected_reply, "redis " + where_.endpoint() + ": unexpected subscription reply");
    return;
  }
  const std::string kind(value->element[0]->str, value->element[0]->len);
  if (kind == "subscribe" || kind == "psubscribe") {
    answered();
    if (unconfirmed_ > 0 && --unconfirmed_ == 0) post_status(std::move(subscribe_done_), {}, {});
    return;
  }
  // ["message", channel, payload] or ["pmessage", pattern, channel, payload].
  const std::size_t at = kind == "message" ? 1 : kind == "pmessage" ? 2 : 0;
  if (at == 0 || value->elements < at + 2 || !is_string(value->element[at]) ||
      !is_string(value->element[at + 1])) {
    return;
  }
  const auto* channel = value->element[at];
  const auto* payload = value->element[at + 1];
  asio::post(executor_, [this, alive = alive_, channel = std::string(channel->str, channel->len),
                         payload = std::string(payload->str, payload->len)] {
    if (!*alive || !on_message_) return;
    auto on_message = on_message_;  // a copy: the handler may close or destroy this connection
    on_message(channel, payload);
  });
}

void connection::on_detached(const redisAsyncContext& context) {
  note_context_error(context);
  const auto previous = phase_;
  phase_ = phase::failed;
  deadlines_.clear();
  timer_.cancel();
  timer_armed_ = false;
  if (previous == phase::connecting) {
    post_status(std::move(connect_done_), failure_, failure_detail_);
    return;
  }
  if (previous != phase::ready && previous != phase::subscribed) return;
  if (subscribe_done_) post_status(std::move(subscribe_done_), failure_, failure_detail_);
  post_status(std::move(on_lost_), failure_, failure_detail_);
}

void connection::fail(std::error_code ec, std::string detail) {
  if (!failure_) {
    failure_ = ec;
    failure_detail_ = std::move(detail);
  }
  dying_ = true;
  if (events_) events_->free_context();  // on_detached reports it
}

void connection::note_context_error(const redisAsyncContext& context) {
  if (failure_) return;
  const int saved_errno = errno;
  // The redisContext's own fields: hiredis copies them to context.err and errstr only when it
  // starts disconnecting, which is after the connect callback has run.
  switch (context.c.err) {
    case REDIS_ERR_IO:
      failure_ = std::error_code(saved_errno != 0 ? saved_errno : EIO, std::system_category());
      break;
    case REDIS_ERR_PROTOCOL:
      failure_ = std::make_error_code(std::errc::protocol_error);
      break;
    case REDIS_ERR_OTHER:
      // Connecting: the name did not resolve. Later: an error the server sent unasked, such as
      // "max number of clients reached".
      failure_ = phase_ == phase::connecting ? errc::connect_failed : errc::server_error;
      break;
    default:  // REDIS_ERR_EOF, or no error recorded
      failure_ = errc::connection_closed;
      break;
  }
  const char* text = context.c.errstr[0] != '\0' ? context.c.errstr : nullptr;
  failure_detail_ =
      "redis " + where_.endpoint() + ": " + base::printable(text ? text : failure_.message(), 200);
}

void connection::expect_reply() {
  deadlines_.push_back(clock::now() + request_timeout_);
  if (deadlines_.size() == 1) arm_timer();
}

void connection::answered() {
  if (!deadlines_.empty()) deadlines_.pop_front();
  // The timer stays as it is: when it fires it re-arms for the oldest reply still due.
}

void connection::arm_timer() {
  auto next = clock::time_point::max();
  if (phase_ == phase::connecting) next = connect_deadline_;
  if (!deadlines_.empty()) next = std::min(next, deadlines_.front());
  if (next == clock::time_point::max()) return;
  if (timer_armed_ && timer_.expiry() <= next) return;
  timer_.expires_at(next);
  timer_armed_ = true;
  timer_.async_wait([this, alive = alive_](std::error_code ec) {
    if (!*alive || ec) return;
    timer_armed_ = false;
    on_timer();
  });
}

void connection::on_timer() {
  if (phase_ == phase::failed || phase_ == phase::closed) return;
  const auto now = clock::now();
  if (phase_ == phase::connecting && now >= connect_deadline_) {
    fail(std::make_error_code(std::errc::timed_out),
         "redis " + where_.endpoint() + ": no answer within " +
             std::to_string(connect_timeout_.count()) + " ms of connecting");
    return;
  }
  if (!deadlines_.empty() && now >= deadlines_.front()) {
    fail(std::make_error_code(std::errc::timed_out),
         "redis " + where_.endpoint() + ": no reply within " +
             std::to_string(request_timeout_.count()) + " ms");
    return;
  }
  arm_timer();
}

void connection::post_status(status_handler handler, std::error_code ec, std::string detail) {
  if (!handler) return;
  asio::post(executor_,
             [alive = alive_, handler = std::move(handler), ec, detail = std::move(detail)] {
               if (*alive) handler(ec, detail);
             });
}

}  // namespace galaxies::registry::redis
