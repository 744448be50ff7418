// Who may join: the router's handshakes over socketpairs, as a stranger, a host without the secret,
// a host with it, and a dialler facing fake acceptors. Nothing but the router and its links runs.
#include <gtest/gtest.h>

#include "router_test_steps.hpp"
#include "security/peer_auth.hpp"
#include "support/router_harness.hpp"

namespace galaxies::test {
namespace {

// A lambda names each structured binding it uses in an init-capture ([&, &peer = peer]): clang 14,
// the sanitizer build's compiler, cannot capture a structured binding (C++20's P1091; clang 16).

const std::string secret = "unit-test-cluster-secret-0123456789";

harness_options with_secret() {
  harness_options o;
  o.secret = secret;
  return o;
}

std::span<const std::byte> key() {
  return std::as_bytes(std::span(secret));
}

// Nothing in what a stranger received names our cluster or our UUID, as text or as bytes.
void expect_nothing_told(const router_harness& h, const fake_end& end) {
  EXPECT_FALSE(contains(end.received(), h.options().cluster)) << "the cluster name leaked";
  EXPECT_FALSE(contains(end.received(), h.options().self.to_string())) << "our UUID leaked";
  const auto& raw = h.options().self.value().bytes();
  const std::string_view raw_text(reinterpret_cast<const char*>(raw.data()), raw.size());
  EXPECT_FALSE(contains(end.received(), raw_text)) << "our UUID leaked as bytes";
}

// ---- without a secret ------------------------------------------------------------------------

TEST(RouterHandshake, PlainHostOnLoopbackIsWelcomedAndGetsOurNodes) {
  router_harness h;
  const node_id a = node_named(0x11, 1);
  attached_node(h, a);
  fake_end& peer = linked_host(h, host_named(1), {});
  const auto w = welcome_of(peer);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->host, h.options().self);
  EXPECT_FALSE(w->auth_proof) << "no secret, no proof";
  ASSERT_TRUE(h.run_until([&] { return nodes_seen(peer) == std::vector<node_id>{a}; }));
}

TEST(RouterHandshake, PlainStrangerFromAnotherMachineIsTurnedAwayWithACodeOnly) {
  router_harness h;
  fake_end& end = h.connect_host({"10.9.8.7:5000", false});
  ASSERT_TRUE(h.run_until([&] { return end.closed(); }));
  const auto r = refusal(end);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, wire::refuse_code::unauthorized);
  EXPECT_TRUE(r->text.empty());
  EXPECT_EQ(end.frames().size(), 1u);
  EXPECT_EQ(h.router().counters().refused_connections, 1u);
  EXPECT_EQ(h.router().connection_count(), 0u) << "it never became a connection";
}

TEST(RouterHandshake, InsecureModeWelcomesAHostFromAnotherMachine) {
  harness_options o;
  o.allow_insecure = true;
  router_harness h(o);
  fake_end& end = h.connect_host({"10.9.8.7:5000", false});
  dial_in(h, end, host_named(1), std::nullopt);
  EXPECT_TRUE(welcome_of(end));
}

struct plain_refusal {
  const char* name;
  std::function<frame_bytes(const router_harness&)> hello;
  wire::refuse_code code;
};

class RouterPlainRefusal : public ::testing::TestWithParam<plain_refusal> {};

TEST_P(RouterPlainRefusal, TellsAStrangerTheCodeAndNothingElse) {
  router_harness h;
  fake_end& end = h.connect_host();
  end.send(GetParam().hello(h));
  ASSERT_TRUE(h.run_until([&] { return end.closed(); }));
  const auto r = refusal(end);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, GetParam().code) << wire::to_string(r->code);
  EXPECT_TRUE(r->text.empty()) << r->text;
  EXPECT_EQ(end.frames().size(), 1u) << "only the refuse";
  expect_nothing_told(h, end);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RouterPlainRefusal,
    ::testing::Values(
        plain_refusal{"WrongCluster",
                      [](const router_harness& h) {
                        return host_hello(host_named(1), h.options().self, "other");
                      },
                      wire::refuse_code::wrong_cluster},
        plain_refusal{"WrongTarget",
                      [](const router_harness& h) {
                        return host_hello(host_named(1), high_host(9), h.options().cluster);
                      },
                      wire::refuse_code::wrong_target},
        plain_refusal{"AnyTarget",
                      [](const router_harness& h) {
                        return host_hello(host_named(1), host_id{}, h.options().cluster);
                      },
                      wire::refuse_code::wrong_target},
        plain_refusal{"NodeRoleOnTcp",
                      [](const router_harness& h) {
                        return node_hello(node_named(1, 1), h.options().cluster);
                      },
                      wire::refuse_code::wrong_role},
        plain_refusal{"HostnameWithAnEscape",
                      [](const router_harness& h) {
                        return host_hello(host_named(1), h.options().self, h.options().cluster,
                                          std::nullopt, "evil\x1b[31m");
                      },
                      wire::refuse_code::malformed},
        plain_refusal{"ListenNotUtf8",
                      [](const router_harness& h) {
                        return host_hello(host_named(1), h.options().self, h.options().cluster,
                                          std::nullopt, "host", "127.0.0.1:\xff\xfe");
                      },
                      wire::refuse_code::malformed},
        plain_refusal{"DiallerWithASecretWeLack",
                      [](const router_harness& h) {
                        return host_hello(host_named(1), h.options().self, h.options().cluster,
                                          security::make_nonce());
                      },
                      wire::refuse_code::unauthorized}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(RouterHandshake, LocalClientsAreToldWhy) {
  router_harness h;
  fake_end& end = h.connect_local();
  end.send(node_hello(node_named(1, 1), "other"));
  ASSERT_TRUE(h.run_until([&] { return end.closed(); }));
  const auto r = refusal(end);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, wire::refuse_code::wrong_cluster);
  EXPECT_NE(r->text.find("unit"), std::string::npos) << r->text;
}

// ---- with a secret ---------------------------------------------------------------------------

TEST(RouterHandshake, SecretBothSidesProveItAndTheWelcomeIsBoundToTheHandshake) {
  router_harness h(with_secret());
  fake_end& end = h.connect_host();
  const frame_bytes hello = dial_in(h, end, host_named(1), secret);
  const auto challenge = challenge_of(end);
  ASSERT_TRUE(challenge);
  const auto frame = end.last(wire::frame_type::welcome);
  ASSERT_TRUE(frame);
  const auto w = welcome_of(end);
  ASSERT_TRUE(w && w->auth_proof);
  // The proof covers the welcome itself (with its proof zeroed), the hello and the challenge.
  frame_bytes zeroed(frame->bytes.begin(), frame->bytes.end());
  std::fill(zeroed.end() - wire::welcome_proof_size, zeroed.end(), std::byte{0});
  const auto expected = security::acceptor_proof(key(), hello, *challenge, {}, zeroed);
  EXPECT_TRUE(security::same_digest(expected, *w->auth_proof));
  // Another welcome byte would not verify: the proof binds the negotiated parameters.
  zeroed[wire::header_size + 2] ^= std::byte{1};
  EXPECT_FALSE(security::same_digest(security::acceptor_proof(key(), hello, *challenge, {}, zeroed),
                                     *w->auth_proof));
  const auto peers = h.router().status()["peers"];
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_TRUE(peers[0]["authenticated"].get<bool>());
}

TEST(RouterHandshake, SecretHelloWithoutANonceIsRefusedWithACodeOnly) {
  router_harness h(with_secret());
  fake_end& end = h.connect_host();
  end.send(host_hello(host_named(1), h.options().self, h.options().cluster));
  ASSERT_TRUE(h.run_until([&] { return end.closed(); }));
  const auto r = refusal(end);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, wire::refuse_code::unauthorized);
  EXPECT_TRUE(r->text.empty());
  EXPECT_EQ(end.frames().size(), 1u);
  expect_nothing_told(h, end);
}

TEST(RouterHandshake, SecretWrongProofGetsACodeAndNothingIsDelivered) {
  router_harness h(with_secret());
  const node_id a = node_named(0x11, 1);
  fake_end& local = attached_node(h, a);
  local.forget_received();
  fake_end& end = h.connect_host();
  end.send(
      host_hello(host_named(1), h.options().self, "wrong-cluster-too", security::make_nonce()));
  ASSERT_TRUE(h.run_until([&] { return challenge_of(end).has_value(); }));
  wire::auth_value guess{};
  guess[0] = std::byte{1};
  end.send(auth_proof(guess));
  // Frames sent before the proof is judged must be dropped with it, never forwarded.
  end.send(nodes_up({{node_named(0x41, 1), host_named(1), 1}}));
  end.send(message(wire::frame_type::send, node_named(0x41, 1), a));
  ASSERT_TRUE(h.run_until([&] { return end.closed(); }));
  const auto r = refusal(end);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, wire::refuse_code::unauthorized);
  EXPECT_TRUE(r->text.empty());
  ASSERT_EQ(end.frames().size(), 2u) << "a challenge, then the refuse: nothing else";
  expect_nothing_told(h, end);
  h.run_for(50ms);
  EXPECT_TRUE(local.frames().empty()) << "the local node heard of the stranger";
}

TEST(RouterHandshake, SecretCapturedProofCannotBeReplayed) {
  router_harness h(with_secret());
  fake_end& first = h.connect_host();
  const frame_bytes hello = dial_in(h, first, host_named(1), secret);
  const auto challenge = challenge_of(first);
  ASSERT_TRUE(challenge && welcome_of(first));
  const auto captured = security::dialler_proof(key(), hello, *challenge, {});
  first.close();

  fake_end& again = h.connect_host();
  again.send(hello);
  ASSERT_TRUE(h.run_until([&] { return challenge_of(again).has_value(); }));
  EXPECT_NE(*challenge_of(again), *challenge) << "a challenge must be fresh";
  again.send(auth_proof(captured));
  ASSERT_TRUE(h.run_until([&] { return again.closed(); }));
  const auto r = refusal(again);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, wire::refuse_code::unauthorized);
}

TEST(RouterHandshake, SecretAuthenticatedHostWithTheWrongClusterIsToldWhy) {
  router_harness h(with_secret());
  fake_end& end = h.connect_host();
  const auto nonce = security::make_nonce();
  const frame_bytes hello = host_hello(host_named(1), h.options().self, "elsewhere", nonce);
  end.send(hello);
  ASSERT_TRUE(h.run_until([&] { return challenge_of(end).has_value(); }));
  end.send(auth_proof(security::dialler_proof(key(), hello, *challenge_of(end), {})));
  ASSERT_TRUE(h.run_until([&] { return end.closed(); }));
  const auto r = refusal(end);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, wire::refuse_code::wrong_cluster);
  EXPECT_NE(r->text.find("unit"), std::string::npos) << "a proven host is told: " << r->text;
}

// ---- the router as dialler -------------------------------------------------------------------

// The router dials host `p`; returns the fake acceptor and the hello it received.
std::pair<fake_end*, frame_bytes> dialled(router_harness& h, const host_id& p) {
  h.router().set_peers({{p, "127.0.0.1:7100"}});
  fake_end* end = h.answer_dial();
  EXPECT_TRUE(end);
  if (!end) return {nullptr, {}};
  EXPECT_TRUE(h.run_until([&] { return end->count(wire::frame_type::hello) == 1; }));
  const auto frame = end->last(wire::frame_type::hello);
  return {end, frame ? frame_bytes(frame->bytes.begin(), frame->bytes.end()) : frame_bytes{}};
}

// A welcome as host `p` would send it, with its proof computed over `hello` and `challenge`.
frame_bytes proven_welcome(const router_harness& h, const host_id& p, const frame_bytes& hello,
                           const wire::auth_value& challenge, bool corrupt) {
  wire::welcome w;
  w.host = p;
  w.cluster = h.options().cluster;
  w.listen = "127.0.0.1:7100";
  w.max_frame = limits::default_max_frame_size;
  w.flow_window = limits::default_flow_window;
  w.auth_proof.emplace();
  frame_bytes out;
  wire::append_welcome(out, w);
  auto proof = security::acceptor_proof(key(), hello, challenge, {}, out);
  if (corrupt) proof[0] ^= std::byte{1};
  std::copy(proof.begin(), proof.end(), out.end() - wire::welcome_proof_size);
  return out;
}

TEST(RouterDialler, ProvesTheSecretAndChecksTheAcceptorsProof) {
  router_harness h(with_secret());
  const host_id p = host_named(2);
  auto [end, hello] = dialled(h, p);
  ASSERT_TRUE(end);
  wire::hello decoded;
  ASSERT_FALSE(wire::decode_hello(*end->last(wire::frame_type::hello), decoded));
  ASSERT_TRUE(decoded.auth_nonce) << "a dialler with a secret offers a nonce";
  const auto challenge = security::make_nonce();
  frame_bytes c;
  wire::append_auth_challenge(c, challenge);
  end->send(c);
  ASSERT_TRUE(
      h.run_until([&, &end = end] { return end->count(wire::frame_type::auth_proof) == 1; }));
  wire::auth_value proof;
  ASSERT_FALSE(wire::decode_auth_value(*end->last(wire::frame_type::auth_proof), proof));
  EXPECT_TRUE(security::same_digest(security::dialler_proof(key(), hello, challenge, {}), proof));
  end->send(proven_welcome(h, p, hello, challenge, false));
  ASSERT_TRUE(h.run_until([&] { return linked_nodes(h.router(), p) == 0; }));
}

TEST(RouterDialler, AnAcceptorWithAWrongProofIsDropped) {
  router_harness h(with_secret());
  const host_id p = host_named(2);
  auto [end, hello] = dialled(h, p);
  ASSERT_TRUE(end);
  const auto challenge = security::make_nonce();
  frame_bytes c;
  wire::append_auth_challenge(c, challenge);
  end->send(c);
  ASSERT_TRUE(
      h.run_until([&, &end = end] { return end->count(wire::frame_type::auth_proof) == 1; }));
  end->send(proven_welcome(h, p, hello, challenge, true));
  ASSERT_TRUE(h.run_until([&, &end = end] { return end->closed(); }));
  EXPECT_EQ(linked_nodes(h.router(), p), -1);
  EXPECT_EQ(end->count(wire::frame_type::nodes_up), 0u) << "our nodes went to an impostor";
}

TEST(RouterDialler, AnAcceptorThatSkipsTheChallengeIsDropped) {
  router_harness h(with_secret());
  const host_id p = host_named(2);
  auto [end, hello] = dialled(h, p);
  ASSERT_TRUE(end);
  wire::welcome w;
  w.host = p;
  w.cluster = h.options().cluster;
  frame_bytes out;
  wire::append_welcome(out, w);
  end->send(out);
  ASSERT_TRUE(h.run_until([&, &end = end] { return end->closed(); }));
  EXPECT_EQ(linked_nodes(h.router(), p), -1);
  EXPECT_EQ(end->count(wire::frame_type::nodes_up), 0u);
}

TEST(RouterDialler, WithoutASecretItCannotAnswerAChallenge) {
  router_harness h;
  const host_id p = host_named(2);
  auto [end, hello] = dialled(h, p);
  ASSERT_TRUE(end);
  frame_bytes c;
  wire::append_auth_challenge(c, security::make_nonce());
  end->send(c);
  ASSERT_TRUE(h.run_until([&, &end = end] { return end->closed(); }));
  EXPECT_EQ(end->count(wire::frame_type::auth_proof), 0u);
  EXPECT_EQ(linked_nodes(h.router(), p), -1);
}

}  // namespace
}  // namespace galaxies::test
