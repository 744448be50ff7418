// send_batch frames (protocol.md §4.2): a send grows into a batch byte for byte as the protocol
// says, the growth a sender debits adds up to the frame, and every malformed batch is refused.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "base/endian.hpp"
#include "unit/wire_test_frames.hpp"
#include "wire/message.hpp"
#include "wire/message_batch.hpp"

namespace galaxies::wire {
namespace {

using namespace galaxies::wire::test;

std::vector<std::pair<std::string, std::string>> read_all(const frame_view& frame) {
  std::vector<std::pair<std::string, std::string>> out;
  batch_reader reader(frame);
  std::string_view command;
  std::span<const std::byte> payload;
  while (reader.next(command, payload))
    out.emplace_back(command,
                     std::string(reinterpret_cast<const char*>(payload.data()), payload.size()));
  return out;
}

TEST(WireBatch, ASecondSendTurnsTheFirstIntoTheGoldenBatch) {
  const auto ping = bytes({0xde, 0xad, 0xbe, 0xef});
  std::vector<std::byte> out = bytes({7, 7});  // what was queued before stays as it was
  ASSERT_FALSE(append_message(out, frame_type::send, node_a, node_b, 0, 0, "ping", ping,
                              limits::default_max_frame_size));
  const std::size_t growth = batch_growth(std::span(out).subspan(2), 2, 0);
  EXPECT_EQ(growth, 2 * batch_entry_header_size + 2) << "its own entry and the first one's header";
  append_to_batch(out, 2, "go", {}, 0);
  EXPECT_EQ(hex(std::span(out).first(2)), "07 07");
  EXPECT_EQ(hex(std::span(out).subspan(2)), hex(golden_send_batch));
  EXPECT_EQ(out.size() - 2, message_frame_size(4, ping.size()) + growth)
      << "what the sender debits adds up to the frame's size";
}

TEST(WireBatch, AGoldenBatchReadsAsItsMessagesInOrder) {
  const frame_view frame = parse_one(golden_send_batch);
  ASSERT_EQ(frame.header.type, frame_type::send_batch);
  EXPECT_FALSE(check_batch(frame));
  EXPECT_FALSE(check_message_body(frame));
  EXPECT_EQ(peek_src(frame), node_a);
  EXPECT_EQ(peek_dst(frame), node_b);
  const std::vector<std::pair<std::string, std::string>> expected = {{"ping", "\xde\xad\xbe\xef"},
                                                                     {"go", ""}};
  EXPECT_EQ(read_all(frame), expected);
  message_view m;
  EXPECT_TRUE(decode_message(frame, m)) << "a batch is no single message";
}

TEST(WireBatch, ABatchOfManyMessagesKeepsEachAndCarriesEveryFlagSet) {
  std::vector<std::byte> out;
  std::vector<std::pair<std::string, std::string>> sent = {{"m0", "first"}};
  ASSERT_FALSE(append_message(out, frame_type::send, node_a, node_b, 0, 0, "m0",
                              as_bytes(std::span(sent[0].second.data(), sent[0].second.size())),
                              limits::default_max_frame_size));
  std::size_t debited = out.size();
  // Commands of 2 to 26 bytes and payloads of 0 to 300, every byte telling where it belongs:
  // small entries are put together by hand (a copy that slips shows), large ones are not.
  const auto text = [](std::size_t size, int seed) {
    std::string out(size, '\0');
    for (std::size_t k = 0; k < size; ++k) out[k] = static_cast<char>('a' + (k + 7 * seed) % 26);
    return out;
  };
  for (int i = 1; i < 500; ++i) {
    sent.emplace_back("m" + std::to_string(i) + text(static_cast<std::size_t>(i % 23), i),
                      text(static_cast<std::size_t>(i % 301), i));
    const auto& [command, payload] = sent.back();
    const auto body = as_bytes(std::span(payload.data(), payload.size()));
    debited += batch_growth(out, command.size(), body.size());
    append_to_batch(out, 0, command, body, i == 250 ? flag_blocked : 0);
  }
  EXPECT_EQ(debited, out.size());
  const frame_view frame = parse_one(out);
  ASSERT_EQ(frame.bytes.size(), out.size());
  EXPECT_FALSE(check_batch(frame));
  EXPECT_EQ(frame.header.flags, flag_blocked);
  EXPECT_EQ(read_all(frame), sent);
}

TEST(WireBatch, MalformedBatchesAreRefused) {
  const auto changed = [](std::size_t at, std::initializer_list<std::uint8_t> values) {
    std::vector<std::byte> frame = golden_send_batch;
    for (const auto v : values) frame[at++] = std::byte{v};
    return frame;
  };
  const auto resized = [](std::vector<std::byte> frame, std::size_t size) {
    frame.resize(size, std::byte{'x'});
    base::store_le(frame.data(), static_cast<std::uint32_t>(size - 4));
    return frame;
  };
  constexpr std::size_t count = 48, first = 56, second = 72;
  const std::vector<std::pair<const char*, std::vector<std::byte>>> cases = {
      {"count 0", changed(count, {0})},
      {"count 3: a message missing", changed(count, {3})},
      {"count 1: bytes left over", changed(count, {1})},
      {"an empty command", changed(first, {0, 0})},
      {"a command past the frame", changed(second, {0x20, 0})},
      {"a payload past the frame", changed(first + 4, {0x05})},
      {"a payload length that would wrap", changed(first + 4, {0xff, 0xff, 0xff, 0xff})},
      {"a command that is not UTF-8", changed(first + 8, {0xff})},
      {"no destination", changed(24, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})},
      {"a message cut short", resized(golden_send_batch, golden_send_batch.size() - 1)},
      {"trailing bytes", resized(golden_send_batch, golden_send_batch.size() + 3)},
  };
  for (const auto& [what, frame] : cases) {
    const frame_view view = parse_one(frame);
    ASSERT_EQ(view.bytes.size(), frame.size()) << what << ": the parser takes it whole";
    EXPECT_EQ(check_batch(view), decode_error::bad_message) << what;
    EXPECT_EQ(check_message_body(view), decode_error::bad_message) << what;
  }

  // A command longer than any allowed is refused even when the frame holds it.
  std::vector<std::byte> long_command = golden_send_batch;
  long_command[second] = std::byte{0};
  long_command[second + 1] = std::byte{1};  // 256 bytes
  long_command = resized(long_command, second + batch_entry_header_size + 256);
  EXPECT_EQ(check_batch(parse_one(long_command)), decode_error::bad_message);

  // The header's aux is the parser's to refuse, before the body is looked at.
  const auto with_aux = changed(6, {1});
  EXPECT_EQ(frame_parser().parse(with_aux).error, decode_error::bad_message);
}

}  // namespace
}  // namespace galaxies::wire
