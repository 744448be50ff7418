// TLS 1.3 on host links, with certificates the test makes (scripts/make-test-certs.sh): hosts
// with certificates from one CA link (with and without the cluster secret inside), a host whose
// certificate another CA signed never does, and a plain-TCP client gets nothing at all.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "support/cluster.hpp"
#include "support/eventually.hpp"
#include "support/raw_connection.hpp"
#include "transport/endpoint.hpp"
#include "wire/control.hpp"

namespace galaxies::test {
namespace {

namespace fs = std::filesystem;

// Runs the project's certificate script; the test fails if it does.
void make_certs(const fs::path& dir, const std::vector<std::string>& names) {
  std::string command =
      std::string(GALAXIES_SOURCE_DIR) + "/scripts/make-test-certs.sh '" + dir.string() + "'";
  for (const auto& n : names) command += " " + n;
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command;
}

std::vector<std::string> tls_args(const fs::path& dir, const std::string& name) {
  return {"--tls-cert", (dir / (name + ".pem")).string(),
          "--tls-key",  (dir / (name + ".key")).string(),
          "--tls-ca",   (dir / "ca.pem").string()};
}

bool linked(host_process& h, std::size_t peers, bool authenticated) {
  const auto s = h.status();
  if (s.is_null()) return false;
  const auto& list = s["status"]["peers"];
  std::size_t ok = 0;
  for (const auto& p : list)
    if (p.value("state", "") == "linked" && p.value("tls", false) &&
        p.value("authenticated", false) == authenticated)
      ++ok;
  return ok == peers;
}

class tls : public ::testing::Test {
 protected:
  void SetUp() override { make_certs(cluster_.dir() / "certs", {"one", "two"}); }
  fs::path certs() const { return cluster_.dir() / "certs"; }

  host_process& add(const std::string& name, std::vector<std::string> more = {}) {
    host_options o = with_workers(1);
    o.extra_args = tls_args(certs(), name);
    o.extra_args.insert(o.extra_args.end(), more.begin(), more.end());
    auto& h = cluster_.add_host(o);
    EXPECT_EQ(h.wait_started(1).size(), 1u) << h.log();
    return h;
  }

  cluster cluster_;
};

TEST_F(tls, hosts_with_certificates_from_one_ca_link_and_carry_requests) {
  auto& one = add("one");
  auto& two = add("two");
  ASSERT_TRUE(eventually(20s, [&] { return linked(one, 1, false) && linked(two, 1, false); }))
      << one.log();
  test_node n(one.unix_path(), cluster_.name());
  ASSERT_TRUE(n.wait_ready());
  const auto target = two.wait_started(1)[0];
  ASSERT_TRUE(eventually(10s, [&] {
    for (const auto& info : n.nodes())
      if (info.id.to_string() == target) return true;
    return false;
  }));
  const auto [ec, reply] = n.request(*node_id::parse(target), "echo", "through tls");
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(as_text(reply), "through tls");
}

TEST_F(tls, the_secret_is_proved_inside_tls) {
  const auto secret = (cluster_.dir() / "secret").string();
  std::ofstream(secret) << "tls-and-secret-0123456789\n";
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  auto& one = add("one", {"--secret-file", secret});
  auto& two = add("two", {"--secret-file", secret});
  ASSERT_TRUE(eventually(20s, [&] { return linked(one, 1, true) && linked(two, 1, true); }))
      << one.log();
}

TEST_F(tls, a_host_whose_certificate_another_ca_signed_never_links) {
  make_certs(cluster_.dir() / "other", {"stranger"});
  auto& one = add("one");
  host_options o = with_workers(1);
  o.extra_args = tls_args(cluster_.dir() / "other", "stranger");
  auto& stranger = cluster_.add_host(o);
  ASSERT_EQ(stranger.wait_started(1).size(), 1u) << stranger.log();
  ASSERT_TRUE(eventually(10s, [&] {
    return one.log().find("TLS handshake failed") != std::string::npos;
  })) << one.log();
  EXPECT_TRUE(linked(one, 0, false));
  EXPECT_TRUE(linked(stranger, 0, false));
  // Each host's own worker saw it join, and nobody else did.
  const auto all = cluster_.all_events();
  EXPECT_EQ(count(all, "hostJoined", "", one.host_id()), 1u);
  EXPECT_EQ(count(all, "hostJoined", "", stranger.host_id()), 1u);
}

TEST_F(tls, a_plain_tcp_client_gets_nothing_but_the_close) {
  auto& one = add("one");
  auto conn = raw_connection::tcp(transport::parse_endpoint(one.address())->port());
  wire::hello h;
  h.role = wire::role::host;
  h.sender = uuid::random();
  h.target = *uuid::parse(one.host_id());
  h.cluster = cluster_.name();
  h.listen = "127.0.0.1:9";
  frame_bytes out;
  wire::append_hello(out, h);
  conn.write(out);
  const auto got = conn.read_until_closed(5s);
  EXPECT_TRUE(got.closed);
  EXPECT_TRUE(frames_in(got.data).empty()) << "a frame reached a client that spoke no TLS";
}

}  // namespace
}  // namespace galaxies::test
