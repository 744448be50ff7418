// base/text: the UTF-8 validator against a table of golden sequences and an independent
// reference over every 1-, 2- and 3-byte input; the printable escape against hostile input.
#include "base/text.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace galaxies::base {
namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

struct sample {
  std::string text;
  const char* what;
};

// Golden sequences written from Unicode table 3-7, not from the implementation.
const std::vector<sample> valid = {
    {"", "empty"},
    {"plain ascii", "ASCII"},
    {bytes({0x00}), "NUL is well-formed UTF-8"},
    {bytes({0x7f}), "U+007F, the last one-byte character"},
    {bytes({0xc2, 0x80}), "U+0080, the first two-byte character"},
    {bytes({0xc3, 0xa9}), "U+00E9 e acute"},
    {bytes({0xdf, 0xbf}), "U+07FF, the last two-byte character"},
    {bytes({0xe0, 0xa0, 0x80}), "U+0800, the first three-byte character"},
    {bytes({0xe2, 0x82, 0xac}), "U+20AC euro sign"},
    {bytes({0xed, 0x9f, 0xbf}), "U+D7FF, just below the surrogates"},
    {bytes({0xee, 0x80, 0x80}), "U+E000, just above the surrogates"},
    {bytes({0xef, 0xbf, 0xbd}), "U+FFFD replacement character"},
    {bytes({0xef, 0xbf, 0xbf}), "U+FFFF, the last three-byte character"},
    {bytes({0xf0, 0x90, 0x80, 0x80}), "U+10000, the first four-byte character"},
    {bytes({0xf0, 0x9d, 0x84, 0x9e}), "U+1D11E musical symbol G clef"},
    {bytes({0xf4, 0x8f, 0xbf, 0xbf}), "U+10FFFF, the last code point"},
    {"h\xc3\xa9llo w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac", "mixed scripts"},
};

const std::vector<sample> invalid = {
    {bytes({0x80}), "a lone continuation byte"},
    {bytes({0xbf}), "the last continuation byte alone"},
    {bytes({0x41, 0x80, 0x41}), "a continuation byte between ASCII"},
    {bytes({0xc0, 0x80}), "overlong NUL (modified UTF-8)"},
    {bytes({0xc0, 0xaf}), "overlong '/'"},
    {bytes({0xc1, 0xbf}), "overlong U+007F"},
    {bytes({0xe0, 0x80, 0x80}), "overlong three-byte NUL"},
    {bytes({0xe0, 0x9f, 0xbf}), "overlong U+07FF"},
    {bytes({0xf0, 0x80, 0x80, 0x80}), "overlong four-byte NUL"},
    {bytes({0xf0, 0x8f, 0xbf, 0xbf}), "overlong U+FFFF"},
    {bytes({0xed, 0xa0, 0x80}), "U+D800, the first surrogate"},
    {bytes({0xed, 0xbf, 0xbf}), "U+DFFF, the last surrogate"},
    {bytes({0xed, 0xa0, 0xbd, 0xed, 0xb4, 0x9e}), "a surrogate pair (CESU-8)"},
    {bytes({0xf4, 0x90, 0x80, 0x80}), "U+110000, past the last code point"},
    {bytes({0xf5, 0x80, 0x80, 0x80}), "lead F5"},
    {bytes({0xf7, 0xbf, 0xbf, 0xbf}), "lead F7"},
    {bytes({0xf8, 0x88, 0x80, 0x80, 0x80}), "a five-byte form"},
    {bytes({0xfc, 0x84, 0x80, 0x80, 0x80, 0x80}), "a six-byte form"},
    {bytes({0xfe}), "FE"},
    {bytes({0xff}), "FF"},
    {bytes({0xc3}), "a two-byte sequence cut after its lead"},
    {bytes({0xe2, 0x82}), "a three-byte sequence cut short"},
    {bytes({0xf0, 0x9d, 0x84}), "a four-byte sequence cut short"},
    {bytes({0xc3, 0x41}), "a lead followed by ASCII"},
    {bytes({0xe2, 0x28, 0xa1}), "a bad second byte"},
    {bytes({0xe2, 0x82, 0x28}), "a bad third byte"},
    {bytes({0xf0, 0x9d, 0x84, 0x41}), "a bad fourth byte"},
    {bytes({0xc3, 0xa9, 0xa9}), "one continuation byte too many"},
    {"valid prefix " + bytes({0xff}), "valid text, then one bad byte"},
};

TEST(Utf8, GoldenValidSequences) {
  for (const auto& s : valid) EXPECT_TRUE(is_valid_utf8(s.text)) << s.what;
}

TEST(Utf8, GoldenInvalidSequences) {
  for (const auto& s : invalid) EXPECT_FALSE(is_valid_utf8(s.text)) << s.what;
}

// An independent formulation of the rules: decode any lead pattern permissively, then demand the
// shortest encoding of a scalar value (not a surrogate, at most U+10FFFF).
bool reference_valid(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t cp = 0;
    if (lead < 0x80) {
      length = 1;
      cp = lead;
    } else if ((lead & 0xe0) == 0xc0) {
      length = 2;
      cp = lead & 0x1f;
    } else if ((lead & 0xf0) == 0xe0) {
      length = 3;
      cp = lead & 0x0f;
    } else if ((lead & 0xf8) == 0xf0) {
      length = 4;
      cp = lead & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto c = static_cast<unsigned char>(text[i + k]);
      if ((c & 0xc0) != 0x80) return false;
      cp = cp << 6 | (c & 0x3f);
    }
    const std::size_t shortest = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (length != shortest || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
    i += length;
  }
  return true;
}

TEST(Utf8, AgreesWithTheReferenceOnEveryShortInput) {
  std::string text;
  std::size_t disagreements = 0;
  for (int a = 0; a < 256; ++a) {
    text.assign(1, static_cast<char>(a));
    if (is_valid_utf8(text) != reference_valid(text)) ++disagreements;
    for (int b = 0; b < 256; ++b) {
      text.assign({static_cast<char>(a), static_cast<char>(b)});
      if (is_valid_utf8(text) != reference_valid(text)) ++disagreements;
      for (int c = 0; c < 256; ++c) {
        text.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        if (is_valid_utf8(text) != reference_valid(text)) ++disagreements;
      }
    }
  }
  EXPECT_EQ(disagreements, 0u);
}

TEST(Utf8, AgreesWithTheReferenceOnFourByteInputs) {
  // Every lead and second byte; the last two bytes at the edges of each byte class.
  const int edges[] = {0x00, 0x41, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xf4, 0xff};
  std::size_t disagreements = 0;
  std::size_t accepted = 0;
  std::string text(4, '\0');
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b)
      for (int c : edges)
        for (int d : edges) {
          text = {static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                  static_cast<char>(d)};
          const bool ours = is_valid_utf8(text);
          accepted += ours;
          if (ours != reference_valid(text)) ++disagreements;
        }
  EXPECT_EQ(disagreements, 0u);
  EXPECT_GT(accepted, 0u);
}

TEST(Utf8, AgreesWithTheReferenceWhereverASequenceSitsInAnAsciiRun) {
  // ASCII is skipped a word at a time: a sequence at any offset, cut at any length, must be
  // judged as on its own.
  const std::string sequences[] = {"\xc3\xa9",    "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x80",
                                   "\xc3",        "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff",
                                   "\xe0\x80\xaf"};
  std::size_t disagreements = 0;
  std::size_t accepted = 0;
  for (const auto& sequence : sequences)
    for (std::size_t before = 0; before <= 17; ++before)
      for (std::size_t after = 0; after <= 17; ++after) {
        const std::string text = std::string(before, 'a') + sequence + std::string(after, 'z');
        for (std::size_t cut = 0; cut <= text.size(); ++cut) {
          const std::string_view part(text.data(), cut);
          const bool ours = is_valid_utf8(part);
          accepted += ours;
          if (ours != reference_valid(part)) ++disagreements;
        }
      }
  EXPECT_EQ(disagreements, 0u);
  EXPECT_GT(accepted, 0u);
}

// Encodes a code point in `length` bytes, overlong if it fits in fewer.
std::string encode(std::uint32_t cp, std::size_t length) {
  if (length == 1) return std::string(1, static_cast<char>(cp));
  static constexpr unsigned char leads[] = {0, 0, 0xc0, 0xe0, 0xf0};
  std::string out(length, '\0');
  for (std::size_t k = length - 1; k > 0; --k) {
    out[k] = static_cast<char>(0x80 | (cp & 0x3f));
    cp >>= 6;
  }
  out[0] = static_cast<char>(leads[length] | cp);
  return out;
}

TEST(Utf8, EveryScalarValueIsValidAndEveryOtherEncodingOfItIsNot) {
  std::size_t wrong = 0;
  for (std::uint32_t cp = 0; cp <= 0x10ffff; ++cp) {
    const std::size_t shortest = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    const bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
    if (is_valid_utf8(encode(cp, shortest)) == surrogate) ++wrong;
    for (std::size_t longer = shortest + 1; longer <= 4; ++longer)
      if (is_valid_utf8(encode(cp, longer))) ++wrong;  // overlong
  }
  EXPECT_EQ(wrong, 0u);
}

TEST(PlainText, RefusesControlsAndReorderingMarks) {
  EXPECT_TRUE(is_plain_text(""));
  EXPECT_TRUE(is_plain_text("host-1.example.org"));
  EXPECT_TRUE(is_plain_text("/run/user/1000/galaxies/a b.sock"));
  EXPECT_TRUE(is_plain_text("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac"));
  const std::vector<sample> unsafe = {
      {bytes({0x00}), "NUL"},
      {"a\nb", "newline: a forged second log line"},
      {"a\rb", "carriage return"},
      {"a\tb", "tab"},
      {"\x1b[31mred", "ESC: an ANSI sequence"},
      {bytes({0x7f}), "DEL"},
      {bytes({0xc2, 0x85}), "U+0085 next line (C1)"},
      {bytes({0xc2, 0x9b}) + "31m", "U+009B, the one-byte CSI"},
      {bytes({0xe2, 0x80, 0xa8}), "U+2028 line separator"},
      {bytes({0xe2, 0x80, 0xa9}), "U+2029 paragraph separator"},
      {bytes({0xe2, 0x80, 0xae}), "U+202E right-to-left override"},
      {bytes({0xe2, 0x81, 0xa6}), "U+2066 left-to-right isolate"},
      {bytes({0xe2, 0x80, 0x8f}), "U+200F right-to-left mark"},
      {bytes({0xd8, 0x9c}), "U+061C Arabic letter mark"},
      {bytes({0xff}), "invalid UTF-8"},
  };
  for (const auto& s : unsafe) EXPECT_FALSE(is_plain_text(s.text)) << s.what;
  EXPECT_FALSE(is_unsafe_to_show(0x20));
  EXPECT_FALSE(is_unsafe_to_show(0x7e));
  EXPECT_FALSE(is_unsafe_to_show(0xa0));
  EXPECT_TRUE(is_unsafe_to_show(0x9f));
}

TEST(CleanName, IsPlainTextOfOneToMaxBytes) {
  EXPECT_TRUE(is_clean_name("host-1.example", 255));
  EXPECT_TRUE(is_clean_name("h\xc3\xa9", 255));
  EXPECT_FALSE(is_clean_name("", 255));
  EXPECT_FALSE(is_clean_name("abc", 2));
  EXPECT_TRUE(is_clean_name("abc", 3));
  for (std::string_view bad : {"a\x1b[31m", "tab\there", "nl\n", "del\x7f", "c1\xc2\x9b", "\xff",
                               "rtl\xe2\x80\xae"
                               "evil"})
    EXPECT_FALSE(is_clean_name(bad, 255)) << ::testing::PrintToString(std::string(bad));
}

TEST(Printable, KeepsPlainTextIncludingNonAscii) {
  EXPECT_EQ(printable("host-1:7100"), "host-1:7100");
  EXPECT_EQ(printable("caf\xc3\xa9 \xf0\x9d\x84\x9e"), "caf\xc3\xa9 \xf0\x9d\x84\x9e");
  EXPECT_EQ(printable(""), "");
}

TEST(Printable, EscapesControlsInvalidBytesAndTheBackslash) {
  EXPECT_EQ(printable("a\nb"), "a\\x0ab");
  EXPECT_EQ(printable("\x1b[2J"), "\\x1b[2J");
  EXPECT_EQ(printable(bytes({0x00, 0x7f})), "\\x00\\x7f");
  EXPECT_EQ(printable(bytes({0xc2, 0x9b})), "\\xc2\\x9b") << "C1 CSI: both bytes";
  EXPECT_EQ(printable(bytes({0xe2, 0x80, 0xae})), "\\xe2\\x80\\xae") << "RLO";
  EXPECT_EQ(printable(bytes({0xff, 0x41})), "\\xffA");
  EXPECT_EQ(printable(bytes({0xc3})), "\\xc3") << "a cut sequence";
  EXPECT_EQ(printable(bytes({0xed, 0xa0, 0x80})), "\\xed\\xa0\\x80") << "a surrogate";
  EXPECT_EQ(printable(bytes({0xc0, 0x80})), "\\xc0\\x80") << "overlong";
  EXPECT_EQ(printable("a\\x41"), "a\\x5cx41") << "an escape in the input stays distinguishable";
}

TEST(Printable, OutputIsAlwaysPlainTextAndBounded) {
  std::string every_byte;
  for (int v = 0; v < 256; ++v) every_byte.push_back(static_cast<char>(v));
  for (const auto& text : {every_byte, std::string(10000, '\xff'), std::string(10000, '\n')}) {
    const auto shown = printable(text, 100);
    EXPECT_TRUE(is_plain_text(shown));
    EXPECT_LE(shown.size(), 4u * 100 + 3);
  }
  for (const auto& s : invalid) EXPECT_TRUE(is_plain_text(printable(s.text))) << s.what;
}

TEST(Printable, CutsAtTheLimitWithoutSplittingACharacter) {
  EXPECT_EQ(printable(std::string(10, 'a'), 10), std::string(10, 'a')) << "exactly the limit";
  EXPECT_EQ(printable(std::string(11, 'a'), 10), std::string(10, 'a') + "...");
  EXPECT_EQ(printable("ab\xc3\xa9", 3), "ab...") << "the two-byte character does not fit";
  EXPECT_EQ(printable("ab\xc3\xa9", 4), "ab\xc3\xa9");
  EXPECT_EQ(printable("abc", 0), "...");
  EXPECT_EQ(printable(std::string(1000, 'x'), 80).size(), 83u) << "the default shows 80 bytes";
}

// Each character of `text` as decode_utf8 sees it: a code point, or 0xfffd for a replaced run.
std::vector<char32_t> decode_all(std::string_view text) {
  std::vector<char32_t> out;
  while (!text.empty()) {
    const auto c = decode_utf8(text);
    out.push_back(c.code_point);
    text.remove_prefix(c.length);
  }
  return out;
}

TEST(DecodeUtf8, ValidSequencesAreOneCharacterEach) {
  EXPECT_EQ(decode_all("a\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e"),
            (std::vector<char32_t>{'a', 0xe9, 0x20ac, 0x1d11e}));
  EXPECT_EQ(decode_all(bytes({0x00, 0x7f})), (std::vector<char32_t>{0, 0x7f}));
  EXPECT_EQ(decode_all("\xef\xbf\xbd"), (std::vector<char32_t>{0xfffd})) << "a real U+FFFD";
  EXPECT_TRUE(decode_utf8("\xef\xbf\xbd").valid);
  EXPECT_EQ(decode_utf8("\xef\xbf\xbd").length, 3u);
}

// Golden counts from Unicode chapter 3, "U+FFFD Substitution of Maximal Subparts" (table 3-8's
// rule, also Python's and the WHATWG decoder's): a cut-short sequence is one replacement, a byte
// that can start nothing valid is one each.
TEST(DecodeUtf8, InvalidInputIsReplacedByMaximalSubpart) {
  constexpr char32_t r = replacement_character;
  using v = std::vector<char32_t>;
  EXPECT_FALSE(decode_utf8(bytes({0xe2, 0x82})).valid);
  EXPECT_EQ(decode_utf8(bytes({0xe2, 0x82, 0x41})).length, 2u);
  EXPECT_EQ(decode_all(bytes({0xe2, 0x82})), v{r}) << "a three-byte sequence cut short";
  EXPECT_EQ(decode_all(bytes({0xf0, 0x9d, 0x84, 0x41})), (v{r, 'A'})) << "a bad fourth byte";
  EXPECT_EQ(decode_all(bytes({0xc3, 0x41})), (v{r, 'A'}));
  EXPECT_EQ(decode_all(bytes({0xc0, 0xaf})), (v{r, r})) << "overlong '/'";
  EXPECT_EQ(decode_all(bytes({0xe0, 0x80, 0xaf})), (v{r, r, r})) << "overlong three-byte '/'";
  EXPECT_EQ(decode_all(bytes({0xf0, 0x80, 0x80, 0x80})), (v{r, r, r, r}));
  EXPECT_EQ(decode_all(bytes({0xed, 0xa0, 0x80})), (v{r, r, r})) << "a surrogate";
  EXPECT_EQ(decode_all(bytes({0xf4, 0x90, 0x80, 0x80})), (v{r, r, r, r})) << "past U+10FFFF";
  EXPECT_EQ(decode_all(bytes({0x80, 0xff, 0x61})), (v{r, r, 'a'}));
  // The table's own example: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  EXPECT_EQ(decode_all(bytes(
                {0x61, 0xf1, 0x80, 0x80, 0xe1, 0x80, 0xc2, 0x62, 0x80, 0x63, 0x80, 0xbf, 0x64})),
            (v{'a', r, r, r, 'b', r, 'c', r, r, 'd'}));
}

}  // namespace
}  // namespace galaxies::base
