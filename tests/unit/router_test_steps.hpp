// Steps the router tests share: a host linked in (with the secret when the router has one), an
// attached node registered, a number of ids to tell parties apart.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "security/peer_auth.hpp"
#include "support/router_harness.hpp"

namespace galaxies::test {

inline uuid id_of(std::uint8_t first, std::uint8_t last) {
  std::array<std::uint8_t, uuid::size> raw{};
  raw[0] = first;
  raw[15] = last;
  return uuid(raw);
}
inline host_id host_named(std::uint8_t n) {
  return host_id(id_of(0x40, n));  // below the harness's own 0x80...: it wins ties
}
inline host_id high_host(std::uint8_t n) {
  return host_id(id_of(0xc0, n));  // above the harness's own id
}
inline node_id node_named(std::uint8_t host, std::uint8_t n) {
  return node_id(id_of(host, n));
}

// How many nodes the router holds for peer `p` (from its status), -1 if not linked.
inline int linked_nodes(router::router& r, const host_id& p) {
  const nlohmann::json status = r.status();
  for (const auto& peer : status["peers"])
    if (peer["host"] == p.to_string() && peer["state"] == "linked") return peer["nodes"].get<int>();
  return -1;
}

// The dialler's part of the handshake on `end`, through to the welcome (and its proof checked
// when there is a secret). Returns the hello it sent.
inline frame_bytes dial_in(router_harness& h, fake_end& end, const host_id& p,
                           const std::optional<std::string>& secret) {
  std::optional<wire::auth_value> nonce;
  if (secret) nonce = security::make_nonce();
  const frame_bytes hello = host_hello(p, h.options().self, h.options().cluster, nonce);
  end.send(hello);
  if (secret) {
    EXPECT_TRUE(h.run_until([&] { return challenge_of(end).has_value() || end.closed(); }));
    const auto challenge = challenge_of(end);
    if (!challenge) return hello;
    end.send(auth_proof(
        security::dialler_proof(std::as_bytes(std::span(*secret)), hello, *challenge, {})));
  }
  EXPECT_TRUE(h.run_until([&] { return welcome_of(end).has_value() || end.closed(); }));
  return hello;
}

// A host `p` linked in, announcing `nodes`; waits until the router routes them.
inline fake_end& linked_host(router_harness& h, const host_id& p,
                             const std::vector<node_id>& nodes) {
  fake_end& end = h.connect_host();
  dial_in(h, end, p, h.options().secret);
  std::vector<wire::node_entry> entries;
  for (const auto& n : nodes) entries.push_back({n, p, 1000});
  end.send(nodes_up(entries));
  EXPECT_TRUE(h.run_until([&] {
    return linked_nodes(h.router(), p) == static_cast<int>(nodes.size());
  })) << "host "
      << p.to_string() << " not linked with its nodes";
  return end;
}

// A node attached through the Unix socket, ready (its snapshot received).
inline fake_end& attached_node(router_harness& h, const node_id& n) {
  fake_end& end = h.connect_local();
  end.send(node_hello(n, h.options().cluster));
  EXPECT_TRUE(h.run_until([&] {
    const auto f = end.last(wire::frame_type::nodes_up);
    return f && (f->header.flags & wire::flag_snapshot);
  })) << "node "
      << n.to_string() << " not registered";
  return end;
}

}  // namespace galaxies::test
