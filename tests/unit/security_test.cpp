// The cluster secret's cryptography and its file, and the text checks every decoder relies on.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/text.hpp"
#include "security/hmac.hpp"
#include "security/peer_auth.hpp"
#include "security/secret_file.hpp"

namespace galaxies::security {
namespace {

std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

std::string hex(const digest& d) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (auto b : d) {
    out.push_back(digits[static_cast<unsigned>(b) >> 4]);
    out.push_back(digits[static_cast<unsigned>(b) & 15]);
  }
  return out;
}

// RFC 4231, test case 2.
TEST(Hmac, MatchesTheRfc4231Vector) {
  EXPECT_EQ(
      hex(hmac_sha256(bytes_of("Jefe"), {bytes_of("what do ya want "), bytes_of("for nothing?")})),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Hmac, ComparesWholeDigestsOnly) {
  const auto d = hmac_sha256(bytes_of("k"), {bytes_of("m")});
  EXPECT_TRUE(same_digest(d, d));
  auto other = d;
  other[31] ^= std::byte{1};
  EXPECT_FALSE(same_digest(d, other));
  EXPECT_FALSE(same_digest(d, std::span(d).first(31)));
}

class PeerAuth : public ::testing::Test {
 protected:
  const std::string secret = "sixteen-bytes-or-more";
  const std::vector<std::byte> hello = std::vector<std::byte>(60, std::byte{7});
  const nonce challenge = make_nonce();
  std::span<const std::byte> key() const { return bytes_of(secret); }
};

TEST_F(PeerAuth, NoncesAreFresh) {
  EXPECT_NE(make_nonce(), make_nonce());
}

TEST_F(PeerAuth, TheTwoDirectionsNeverProveAlike) {
  // A proof one side made cannot be reflected as the other side's.
  EXPECT_NE(dialler_proof(key(), hello, challenge, {}),
            acceptor_proof(key(), hello, challenge, {}, {}));
}

TEST_F(PeerAuth, EveryInputChangesTheProof) {
  const auto base = dialler_proof(key(), hello, challenge, {});
  auto other_hello = hello;
  other_hello[10] ^= std::byte{1};
  auto other_challenge = challenge;
  other_challenge[0] ^= std::byte{1};
  const std::array<std::byte, 32> binding{};
  EXPECT_NE(base, dialler_proof(key(), other_hello, challenge, {}));
  EXPECT_NE(base, dialler_proof(key(), hello, other_challenge, {}));
  EXPECT_NE(base, dialler_proof(key(), hello, challenge, binding)) << "the TLS session";
  EXPECT_NE(base, dialler_proof(bytes_of("another-secret-entirely"), hello, challenge, {}));
}

class SecretFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("galaxies-secret-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& content, mode_t mode) {
    const auto path = (dir_ / "secret").string();
    std::ofstream(path, std::ios::trunc) << content;
    ::chmod(path.c_str(), mode);
    return path;
  }
  static std::string error_of(const std::string& path) {
    try {
      load_secret_file(path);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }

  std::filesystem::path dir_;
};

TEST_F(SecretFile, ReadsTheSecretWithoutItsTrailingNewline) {
  EXPECT_EQ(load_secret_file(write("0123456789abcdefXYZ\n", 0600)), "0123456789abcdefXYZ");
  EXPECT_EQ(load_secret_file(write("0123456789abcdefXYZ", 0400)), "0123456789abcdefXYZ");
}

TEST_F(SecretFile, RefusesAFileOthersCanRead) {
  for (mode_t mode : {0644, 0640, 0604, 0660, 0602}) {
    const auto why = error_of(write("0123456789abcdefXYZ", mode));
    EXPECT_NE(why.find("chmod 600"), std::string::npos) << std::oct << mode << ": " << why;
  }
}

TEST_F(SecretFile, RefusesShortMissingAndOddFiles) {
  EXPECT_NE(error_of(write("short", 0600)).find("shorter than 16"), std::string::npos);
  EXPECT_NE(error_of((dir_ / "absent").string()).find("No such file"), std::string::npos);
  EXPECT_NE(error_of(dir_.string()).find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace galaxies::security
