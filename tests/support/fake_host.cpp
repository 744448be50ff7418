#include "support/fake_host.hpp"

#include "security/peer_auth.hpp"
#include "transport/endpoint.hpp"

namespace galaxies::test {
namespace {

std::uint16_t port_of(const std::string& address) {
  const auto endpoint = transport::parse_endpoint(address);
  return endpoint ? endpoint->port() : 0;
}

}  // namespace

fake_host::fake_host(options opts)
    : opts_(std::move(opts)), conn_(raw_connection::tcp(port_of(opts_.address))) {}

bool fake_host::join(std::chrono::milliseconds deadline) {
  wire::hello h;
  h.role = wire::role::host;
  h.sender = opts_.self.value();
  h.target = opts_.target;
  h.pid = 1;
  h.cluster = opts_.cluster;
  h.listen = "127.0.0.1:9";  // never dialled back: this host is in no registry
  h.hostname = opts_.hostname;
  h.heartbeat_ms = opts_.heartbeat_ms;
  h.flow_window = limits::default_flow_window;
  if (opts_.secret) h.auth_nonce = security::make_nonce();
  frame_bytes hello;
  wire::append_hello(hello, h);
  if (!conn_.write(hello)) return false;

  bool proved = false;
  while (true) {
    const auto got = conn_.read_until(
        deadline, [](const frame_bytes& data) { return !frames_in(data).empty(); });
    pending_.insert(pending_.end(), got.data.begin(), got.data.end());
    const auto frames = frames_in(pending_);
    if (frames.empty()) return false;
    const auto& first = frames.front();
    const auto type = first.header.type;
    const std::size_t used = first.header.total();
    if (type == wire::frame_type::refuse) {
      wire::refuse r;
      if (!wire::decode_refuse(first, r)) refusal_ = r;
      return false;
    }
    if (type == wire::frame_type::auth_challenge && opts_.secret && !proved) {
      wire::auth_value challenge;
      if (wire::decode_auth_value(first, challenge)) return false;
      frame_bytes proof;
      wire::append_auth_proof(
          proof,
          security::dialler_proof(std::as_bytes(std::span(*opts_.secret)), hello, challenge, {}));
      pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(used));
      if (!conn_.write(proof)) return false;
      proved = true;
      continue;
    }
    const bool welcomed = type == wire::frame_type::welcome;
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(used));
    return welcomed;
  }
}

void fake_host::announce(const std::vector<node_id>& nodes, bool snapshot) {
  std::vector<wire::node_entry> entries;
  for (const auto& n : nodes) entries.push_back({n, opts_.self, 4242});
  frame_bytes out;
  wire::append_nodes_up(out, entries, snapshot);
  conn_.write(out);
}

bool fake_host::closed_within(std::chrono::milliseconds deadline) {
  const auto got = conn_.read_until_closed(deadline);
  pending_.insert(pending_.end(), got.data.begin(), got.data.end());
  return got.closed;
}

frame_bytes fake_host::read_for(std::chrono::milliseconds deadline) {
  const auto got = conn_.read_until(deadline, [](const frame_bytes&) { return false; });
  pending_.insert(pending_.end(), got.data.begin(), got.data.end());
  return pending_;
}

}  // namespace galaxies::test
