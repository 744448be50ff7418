// galaxies::node and galaxies::responder: thin handles over detail::node_core.
#include "galaxies/node.hpp"

#include <asio/post.hpp>

#include "worker/node_core.hpp"

namespace galaxies {

void detail::cancel_request(const std::weak_ptr<node_core>& core, std::uint64_t id,
                            asio::cancellation_type_t type) {
  const auto alive = core.lock();
  if (!alive) return;
  // Inline when the signal is emitted on the node's executor (the usual case, and no allocation);
  // otherwise the node's state is touched only there.
  asio::dispatch(alive->executor(), [core, id, type] {
    if (const auto self = core.lock()) self->cancel_request(id, type);
  });
}

responder& responder::operator=(responder&& other) noexcept {
  if (this != &other) {
    if (pending()) fail(errc::handler_failed, "the handler dropped the request");
    core_ = std::move(other.core_);
    to_ = other.to_;
    request_id_ = std::exchange(other.request_id_, 0);
  }
  return *this;
}

void responder::abandon() noexcept {
  fail(errc::handler_failed, "the handler dropped the request without replying");
}

void responder::reply(byte_view payload) {
  if (!pending()) return;
  if (auto core = core_.lock()) core->send_reply(to_, request_id_, errc::ok, payload);
  request_id_ = 0;
}

void responder::fail(errc code, std::string_view text) {
  if (!pending()) return;
  if (code == errc::ok) code = errc::handler_failed;
  if (auto core = core_.lock()) core->send_reply(to_, request_id_, code, as_bytes(text));
  request_id_ = 0;
}

drain& drain::operator=(drain&& other) noexcept {
  if (this != &other) {
    done();
    core_ = std::move(other.core_);
    deadline_ = other.deadline_;
    pending_ = std::exchange(other.pending_, false);
  }
  return *this;
}

void drain::done() noexcept {
  if (!std::exchange(pending_, false)) return;
  const auto core = core_.lock();
  if (!core) return;
  try {
    asio::post(core->executor(), [weak = core_] {
      if (auto c = weak.lock()) c->stop();
    });
  } catch (...) {
    // Out of memory for the post: the master's grace still ends this worker.
  }
}

node::node(std::shared_ptr<detail::node_core> core) : core_(std::move(core)) {}

node::~node() {
  if (core_) core_->stop();
}

asio::any_io_executor node::get_executor() const {
  return core_->executor();
}
node_id node::id() const {
  return core_->id();
}
host_id node::host() const {
  return core_->host();
}
bool node::ready() const {
  return core_->ready();
}
std::optional<galaxies::slot> node::slot() const {
  return core_->slot();
}
std::optional<node_info> node::node_in(const galaxies::slot& s) const {
  return core_->node_in(s);
}
std::vector<node_info> node::nodes() const {
  return core_->nodes();
}
std::vector<host_info> node::hosts() const {
  return core_->hosts();
}
node_counters node::counters() const {
  return core_->counters();
}
std::vector<peer_traffic> node::peer_counters() const {
  return core_->peer_counters();
}

void node::on(std::string command, message_handler handler) {
  core_->set_handler(std::move(command), std::move(handler));
}
void node::on_ready(std::function<void()> cb) {
  core_->events().ready = std::move(cb);
}
void node::on_node_joined(std::function<void(const node_info&)> cb) {
  core_->events().node_joined = std::move(cb);
}
void node::on_node_left(std::function<void(const node_info&, leave_reason, int)> cb) {
  core_->events().node_left = std::move(cb);
}
void node::on_host_joined(std::function<void(const host_info&)> cb) {
  core_->events().host_joined = std::move(cb);
}
void node::on_host_left(std::function<void(const host_info&, leave_reason)> cb) {
  core_->events().host_left = std::move(cb);
}
void node::on_disconnected(std::function<void(std::error_code, std::string_view)> cb) {
  core_->events().disconnected = std::move(cb);
}
void node::on_stopping(std::function<void(drain)> cb) {
  core_->events().stopping = std::move(cb);
}

std::error_code node::join(std::string_view group) {
  return core_->join(group);
}
std::error_code node::leave(std::string_view group) {
  return core_->leave(group);
}
std::vector<node_info> node::members(std::string_view group) const {
  return core_->members(group);
}
std::vector<std::string> node::groups() const {
  return core_->groups();
}
std::error_code node::publish(std::string_view group, std::string_view command, byte_view payload) {
  return core_->publish(group, command, payload);
}
void node::on_group_joined(std::function<void(std::string_view, const node_info&)> cb) {
  core_->events().group_joined = std::move(cb);
}
void node::on_group_left(std::function<void(std::string_view, const node_info&)> cb) {
  core_->events().group_left = std::move(cb);
}

std::error_code node::send(const node_id& to, std::string_view command, byte_view payload) {
  return core_->send(to, command, payload);
}
std::error_code node::broadcast(std::string_view command, byte_view payload) {
  return core_->broadcast(command, payload);
}
std::uint64_t node::start_request(const node_id& to, std::string_view command, byte_view payload,
                                  std::chrono::milliseconds timeout, request_callback done) {
  return core_->start_request(to, command, payload, timeout, std::move(done));
}

void node::start_send(const node_id& to, std::string_view command, byte_view payload,
                      send_callback done) {
  core_->start_send(to, command, payload, std::move(done));
}
void node::stop() {
  core_->stop();
}

}  // namespace galaxies
