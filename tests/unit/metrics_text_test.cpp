// The Prometheus text format as monitor::metrics_text writes it: exact text for a few families
// (what a scraper reads byte for byte), escaping of label values and HELP, and the programming
// errors it refuses rather than writing a page that would fail the whole scrape.
#include "monitor/metrics_text.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "support/metrics_samples.hpp"

namespace galaxies::monitor {
namespace {

TEST(metrics_text, writes_families_and_samples_exactly) {
  metrics_text m;
  m.family("demo_requests_total", "counter", "Requests served.");
  m.sample(std::uint64_t{7});
  m.sample(std::uint64_t{3}, {{"code", "404"}, {"method", "get"}});
  m.family("demo_latency_seconds", "summary", "Time taken per request.");
  m.sample(1.5, {}, "_sum");
  m.sample(std::uint64_t{4}, {}, "_count");
  m.family("demo_ratio", "gauge", "Odd values.");
  m.sample(std::nan(""), {{"kind", "nan"}});
  m.sample(std::numeric_limits<double>::infinity(), {{"kind", "inf"}});
  m.sample(-std::numeric_limits<double>::infinity(), {{"kind", "minus_inf"}});
  m.sample(std::vector<label>{{"kind", "quarter"}}, 0.25);
  // The shortest text that reads back as the same double, not 17 digits of binary noise.
  m.sample(std::vector<label>{{"kind", "tenth"}}, 0.1);
  m.sample(std::vector<label>{{"kind", "sum"}}, 0.1 + 0.2);
  m.family("demo_big", "untyped", "The largest count, not rounded through a double.");
  m.sample(std::numeric_limits<std::uint64_t>::max());

  EXPECT_EQ(m.text(),
            "# HELP demo_requests_total Requests served.\n"
            "# TYPE demo_requests_total counter\n"
            "demo_requests_total 7\n"
            "demo_requests_total{code=\"404\",method=\"get\"} 3\n"
            "# HELP demo_latency_seconds Time taken per request.\n"
            "# TYPE demo_latency_seconds summary\n"
            "demo_latency_seconds_sum 1.5\n"
            "demo_latency_seconds_count 4\n"
            "# HELP demo_ratio Odd values.\n"
            "# TYPE demo_ratio gauge\n"
            "demo_ratio{kind=\"nan\"} NaN\n"
            "demo_ratio{kind=\"inf\"} +Inf\n"
            "demo_ratio{kind=\"minus_inf\"} -Inf\n"
            "demo_ratio{kind=\"quarter\"} 0.25\n"
            "demo_ratio{kind=\"tenth\"} 0.1\n"
            "demo_ratio{kind=\"sum\"} 0.30000000000000004\n"
            "# HELP demo_big The largest count, not rounded through a double.\n"
            "# TYPE demo_big untyped\n"
            "demo_big 18446744073709551615\n");
}

TEST(metrics_text, escapes_label_values_and_keeps_utf8) {
  const std::string value = "back\\slash \"quoted\"\nnext line h\xC3\xA9llo \xE2\x9C\x93";
  metrics_text m;
  m.family("demo_info", "gauge", "Escaping.");
  m.sample(std::uint64_t{1}, {{"text", value}});
  // Backslash, double quote and line feed escaped; UTF-8 passes as its own bytes.
  EXPECT_EQ(m.text(),
            "# HELP demo_info Escaping.\n"
            "# TYPE demo_info gauge\n"
            "demo_info{text=\"back\\\\slash \\\"quoted\\\"\\nnext line h\xC3\xA9llo "
            "\xE2\x9C\x93\"} 1\n");
  // And a reader gets the value back whole.
  const auto page = test::parse_metrics(m.text());
  ASSERT_TRUE(page.problems.empty()) << page.problems.front();
  ASSERT_EQ(page.samples.size(), 1u);
  EXPECT_EQ(page.samples[0].labels.at("text"), value);
}

TEST(metrics_text, escapes_help_backslash_and_line_feed_only) {
  metrics_text m;
  m.family("demo_total", "counter", "Path C:\\tmp, \"as is\"\nsecond line.");
  EXPECT_EQ(m.text(),
            "# HELP demo_total Path C:\\\\tmp, \"as is\"\\nsecond line.\n"
            "# TYPE demo_total counter\n");
  EXPECT_EQ(test::parse_metrics(m.text()).help.at("demo_total"),
            "Path C:\\tmp, \"as is\"\nsecond line.");
}

TEST(metrics_text, a_repeated_family_is_a_programming_error) {
  metrics_text m;
  m.family("demo_total", "counter", "Once.");
  m.sample(std::uint64_t{1});
  EXPECT_THROW(m.family("demo_total", "counter", "Twice."), std::logic_error);
  // Even with another type: its samples would be split in two groups.
  EXPECT_THROW(m.family("demo_total", "gauge", "Twice."), std::logic_error);
}

TEST(metrics_text, bad_metric_names_are_refused) {
  for (const char* name : {"", "1abc", "a-b", "a b", "caf\xC3\xA9", "a{b}"}) {
    metrics_text m;
    EXPECT_THROW(m.family(name, "gauge", "x"), std::logic_error) << name;
    EXPECT_FALSE(is_metric_name(name)) << name;
  }
  for (const char* name : {"a", "_a", "a:b", "ns:sub_total", "A9"})
    EXPECT_TRUE(is_metric_name(name));
}

TEST(metrics_text, bad_label_names_are_refused) {
  // "__" is reserved for Prometheus's own labels; colons belong to metric names only.
  for (const char* name : {"__x", "__name__", "1a", "", "a:b", "a-b"}) {
    metrics_text m;
    m.family("demo", "gauge", "x");
    EXPECT_THROW(m.sample(std::uint64_t{1}, {{name, "v"}}), std::logic_error) << name;
    EXPECT_THROW(m.sample(std::vector<label>{{name, "v"}}, 1.0), std::logic_error) << name;
    EXPECT_FALSE(is_label_name(name)) << name;
  }
  for (const char* name : {"a", "_x", "slot", "a1_b"}) EXPECT_TRUE(is_label_name(name));
}

TEST(metrics_text, bad_types_are_refused) {
  for (const char* type : {"", "Counter", "histo", "gauge ", "info"}) {
    metrics_text m;
    EXPECT_THROW(m.family("demo", type, "x"), std::logic_error) << type;
  }
}

TEST(metrics_text, a_sample_before_any_family_is_refused) {
  metrics_text m;
  EXPECT_THROW(m.sample(std::uint64_t{1}), std::logic_error);
}

}  // namespace
}  // namespace galaxies::monitor
