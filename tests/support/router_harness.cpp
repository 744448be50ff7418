#include "support/router_harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/generic/stream_protocol.hpp>
#include <cerrno>
#include <thread>

namespace galaxies::test {
namespace {

std::pair<int, int> socket_pair() {
  int fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw std::system_error(errno, std::system_category(), "socketpair");
  ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
  return {fds[0], fds[1]};
}

transport::socket router_socket(asio::io_context& io, int fd) {
  return transport::socket(io, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), fd);
}

}  // namespace

// ---- fake_end -------------------------------------------------------------------------------

fake_end::fake_end(int fd) : fd_(fd) {}

fake_end::~fake_end() {
  close();
}

void fake_end::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool fake_end::send(std::span<const std::byte> bytes) {
  const auto until = std::chrono::steady_clock::now() + 2s;
  while (!bytes.empty() && fd_ >= 0) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes = bytes.subspan(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && std::chrono::steady_clock::now() < until) {
      // The router reads on the same thread: the caller must pump; a big write is a test bug.
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 10);
      continue;
    }
    return false;
  }
  return fd_ >= 0;
}

void fake_end::send_later(std::span<const std::byte> bytes) {
  out_.insert(out_.end(), bytes.begin(), bytes.end());
  pump();
}

void fake_end::pump() {
  while (!out_.empty() && fd_ >= 0) {
    const ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_.erase(out_.begin(), out_.begin() + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) out_.clear();  // the router closed its end
    break;
  }
  if (!reading_ || closed_ || fd_ < 0) return;
  std::byte chunk[65536];
  while (true) {
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      in_.insert(in_.end(), chunk, chunk + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    closed_ = true;  // EOF or reset
    return;
  }
}

std::size_t fake_end::count(wire::frame_type type) const {
  std::size_t n = 0;
  for (const auto& f : frames())
    if (f.header.type == type) ++n;
  return n;
}

std::optional<wire::frame_view> fake_end::last(wire::frame_type type) const {
  std::optional<wire::frame_view> found;
  for (const auto& f : frames())
    if (f.header.type == type) found = f;
  return found;
}

// ---- router_harness -------------------------------------------------------------------------

router_harness::router_harness(harness_options opts) : opts_(std::move(opts)) {
  router::router::settings s;
  s.self = opts_.self;
  s.cluster = opts_.cluster;
  s.address = "127.0.0.1:7000";
  s.hostname = "unit-host";
  s.limits = opts_.limits;
  s.heartbeat = opts_.heartbeat;
  s.secret = opts_.secret;
  s.allow_insecure = opts_.allow_insecure;
  router::router::callbacks cb;
  cb.cpu_wait = opts_.cpu_wait;
  cb.connect = [this](const std::string& address, transport::connect_handler done) {
    dials_.emplace_back(address, std::move(done));
  };
  router_ = std::make_unique<router::router>(io_.get_executor(), std::move(s), std::move(cb));
}

router_harness::~router_harness() {
  router_.reset();
  io_.run_for(50ms);  // let the links' coroutines unwind before the ends go
}

fake_end& router_harness::connect_host(transport::remote_address from) {
  auto [mine, theirs] = socket_pair();
  ends_.push_back(std::make_unique<fake_end>(theirs));
  router_->accept_tcp(router_socket(io_, mine), from);
  return *ends_.back();
}

fake_end& router_harness::connect_local() {
  auto [mine, theirs] = socket_pair();
  ends_.push_back(std::make_unique<fake_end>(theirs));
  router_->accept_unix(router_socket(io_, mine));
  return *ends_.back();
}

fake_end& router_harness::connect_worker(pid_t pid, std::uint32_t slot) {
  auto [mine, theirs] = socket_pair();
  ends_.push_back(std::make_unique<fake_end>(theirs));
  router_->adopt_worker(mine, pid, slot);
  return *ends_.back();
}

fake_end* router_harness::answer_dial(std::string* address) {
  if (dials_.empty()) return nullptr;
  auto [wanted, done] = std::move(dials_.front());
  dials_.pop_front();
  if (address) *address = wanted;
  auto [mine, theirs] = socket_pair();
  ends_.push_back(std::make_unique<fake_end>(theirs));
  done({}, router_socket(io_, mine));
  return ends_.back().get();
}

bool router_harness::run_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (true) {
    for (auto& end : ends_) end->pump();
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    if (io_.stopped()) io_.restart();
    io_.run_for(2ms);
  }
}

void router_harness::run_for(std::chrono::milliseconds how_long) {
  run_until([] { return false; }, how_long);
}

// ---- frames ---------------------------------------------------------------------------------

frame_bytes host_hello(const host_id& sender, const host_id& target, const std::string& cluster,
                       const std::optional<wire::auth_value>& nonce, const std::string& hostname,
                       const std::string& listen) {
  wire::hello h;
  h.role = wire::role::host;
  h.sender = sender.value();
  h.target = target.value();
  h.pid = 4242;
  h.cluster = cluster;
  h.listen = listen;
  h.max_frame = limits::default_max_frame_size;
  h.flow_window = limits::default_flow_window;
  h.hostname = hostname;
  h.auth_nonce = nonce;
  frame_bytes out;
  wire::append_hello(out, h);
  return out;
}

frame_bytes node_hello(const node_id& sender, const std::string& cluster, wire::role role) {
  wire::hello h;
  h.role = role;
  h.sender = sender.value();
  h.pid = 4343;
  h.cluster = cluster;
  h.max_frame = limits::default_max_frame_size;
  h.flow_window = limits::default_flow_window;
  frame_bytes out;
  wire::append_hello(out, h);
  return out;
}

frame_bytes nodes_up(const std::vector<wire::node_entry>& nodes, bool snapshot) {
  frame_bytes out;
  wire::append_nodes_up(out, nodes, snapshot);
  return out;
}

frame_bytes nodes_down(const std::vector<node_id>& nodes, leave_reason why) {
  std::vector<wire::node_down_entry> entries;
  for (const auto& n : nodes) entries.push_back({n, why, 0});
  frame_bytes out;
  wire::append_nodes_down(out, entries);
  return out;
}

frame_bytes message(wire::frame_type type, const node_id& src, const node_id& dst,
                    std::uint64_t request_id, std::uint32_t word, std::string_view command,
                    std::string_view payload) {
  frame_bytes out;
  if (type == wire::frame_type::reply) command = {};
  // Written field by field, not with append_message: tests send frames the encoder refuses
  // (a request without an id).
  const std::size_t size = wire::message_frame_size(command.size(), payload.size());
  out.resize(size);
  auto put = [&](std::size_t at, const void* p, std::size_t n) {
    if (n > 0) std::memcpy(out.data() + at, p, n);  // p may be null when n is 0
  };
  const std::uint32_t size_field = static_cast<std::uint32_t>(size - 4);
  const std::uint8_t type_byte = static_cast<std::uint8_t>(type);
  const std::uint16_t aux = static_cast<std::uint16_t>(command.size());
  put(0, &size_field, 4);
  put(4, &type_byte, 1);
  put(6, &aux, 2);
  put(8, src.value().bytes().data(), 16);
  put(24, dst.value().bytes().data(), 16);
  put(40, &request_id, 8);
  put(48, &word, 4);
  put(56, command.data(), command.size());
  put(56 + command.size(), payload.data(), payload.size());
  return out;
}

frame_bytes auth_proof(const wire::auth_value& proof) {
  frame_bytes out;
  wire::append_auth_proof(out, proof);
  return out;
}

std::optional<wire::refuse> refusal(const fake_end& end) {
  const auto frame = end.last(wire::frame_type::refuse);
  if (!frame) return std::nullopt;
  wire::refuse r;
  if (wire::decode_refuse(*frame, r)) return std::nullopt;
  return r;
}

std::optional<wire::welcome> welcome_of(const fake_end& end) {
  const auto frame = end.last(wire::frame_type::welcome);
  if (!frame) return std::nullopt;
  wire::welcome w;
  if (wire::decode_welcome(*frame, w)) return std::nullopt;
  return w;
}

std::optional<wire::auth_value> challenge_of(const fake_end& end) {
  const auto frame = end.last(wire::frame_type::auth_challenge);
  if (!frame) return std::nullopt;
  wire::auth_value v;
  if (wire::decode_auth_value(*frame, v)) return std::nullopt;
  return v;
}

std::vector<node_id> nodes_seen(const fake_end& end) {
  std::vector<node_id> live;
  for (const auto& f : end.frames()) {
    if (f.header.type == wire::frame_type::nodes_up) {
      std::vector<wire::node_entry> entries;
      bool snapshot = false;
      if (!wire::decode_nodes_up(f, entries, snapshot))
        for (const auto& e : entries) live.push_back(e.node);
    } else if (f.header.type == wire::frame_type::nodes_down) {
      std::vector<wire::node_down_entry> entries;
      if (!wire::decode_nodes_down(f, entries))
        for (const auto& e : entries) std::erase(live, e.node);
    }
  }
  return live;
}

std::vector<wire::message_view> messages(const fake_end& end) {
  std::vector<wire::message_view> out;
  for (const auto& f : end.frames()) {
    if (!wire::is_message(f.header.type)) continue;
    wire::message_view m;
    if (!wire::decode_message(f, m)) out.push_back(m);
  }
  return out;
}

bool contains(const frame_bytes& bytes, std::string_view text) {
  const auto* begin = reinterpret_cast<const char*>(bytes.data());
  return std::string_view(begin, bytes.size()).find(text) != std::string_view::npos;
}

}  // namespace galaxies::test
