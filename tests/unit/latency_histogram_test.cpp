// galaxies::latency_histogram: bounds are inclusive upper edges (Prometheus' `le`), counts() is
// cumulative, and quantile() interpolates as histogram_quantile() does. Expected values are worked
// out by hand from the bucket bounds, not from the implementation.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "galaxies/counters.hpp"

namespace galaxies {
namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

constexpr std::size_t n = latency_histogram::bucket_count;

nanoseconds bound_ns(std::size_t i) {
  return nanoseconds{std::llround(latency_histogram::bounds()[i] * 1e9)};
}

TEST(latency_histogram, BoundsAreTheDocumentedLadderEndingInInf) {
  const auto& b = latency_histogram::bounds();
  ASSERT_EQ(b.size(), 18u);
  const double expected[] = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
                             50e-3, 100e-3, 250e-3, 500e-3, 1.0,  2.5,    5.0,  10.0};
  for (std::size_t i = 0; i + 1 < n; ++i) EXPECT_DOUBLE_EQ(b[i], expected[i]) << i;
  EXPECT_TRUE(std::isinf(b.back()));
}

TEST(latency_histogram, AnObservationAtABoundIsInThatBucketAndJustAboveInTheNext) {
  for (std::size_t i = 0; i + 1 < n; ++i) {
    latency_histogram at;
    at.observe(bound_ns(i));
    EXPECT_EQ(at.in_bucket[i], 1u) << "at bound " << i;
    latency_histogram above;
    above.observe(bound_ns(i) + 1ns);
    EXPECT_EQ(above.in_bucket[i + 1], 1u) << "just above bound " << i;
    latency_histogram below;
    below.observe(bound_ns(i) - 1ns);
    EXPECT_EQ(below.in_bucket[i], 1u) << "just below bound " << i;
  }
}

TEST(latency_histogram, ZeroNegativeAndHugeRoundTrips) {
  latency_histogram h;
  h.observe(0ns);
  h.observe(-5ms);  // counted as 0: steady_clock never goes back, but a caller's arithmetic might
  h.observe(1h);
  EXPECT_EQ(h.in_bucket[0], 2u);
  EXPECT_EQ(h.in_bucket[n - 1], 1u);
  EXPECT_EQ(h.count, 3u);
  EXPECT_EQ(h.sum, nanoseconds(1h));
}

TEST(latency_histogram, CountsAreCumulativeAndEndAtCount) {
  latency_histogram h;
  h.observe(30us);   // bucket 0 (<= 50 µs)
  h.observe(30us);   // bucket 0
  h.observe(700us);  // bucket 4 (<= 1 ms)
  h.observe(3s);     // bucket 15 (<= 5 s)
  h.observe(20s);    // +Inf
  const auto c = h.counts();
  const std::uint64_t expected[n] = {2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 5};
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(c[i], expected[i]) << "bucket " << i;
  EXPECT_EQ(c.back(), h.count);
  EXPECT_EQ(h.sum, 30us + 30us + 700us + 3s + 20s);
}

TEST(latency_histogram, AnEmptyHistogramHasNoQuantile) {
  const latency_histogram h;
  EXPECT_EQ(h.count, 0u);
  EXPECT_EQ(h.counts().back(), 0u);
  EXPECT_TRUE(std::isnan(h.quantile(0.5)));
  EXPECT_TRUE(std::isnan(h.quantile(0)));
}

TEST(latency_histogram, QuantilesInterpolateWithinTheirBucket) {
  latency_histogram h;
  for (int i = 0; i < 4; ++i) h.observe(20us);   // (0, 50 µs]
  for (int i = 0; i < 4; ++i) h.observe(200us);  // (100 µs, 250 µs]
  // Rank 4 of 8 is the top of the first bucket.
  EXPECT_NEAR(h.quantile(0.5), 50e-6, 1e-12);
  // Rank 6: the first bucket holds 4, the second none, so 2 of the 4 in (100, 250]: half way.
  EXPECT_NEAR(h.quantile(0.75), 175e-6, 1e-12);
  // Rank 1: a quarter into the first bucket, which starts at 0.
  EXPECT_NEAR(h.quantile(0.125), 12.5e-6, 1e-12);
  EXPECT_NEAR(h.quantile(1), 250e-6, 1e-12);
  EXPECT_NEAR(h.quantile(0), 0, 1e-12);
}

TEST(latency_histogram, QuantileEdges) {
  latency_histogram h;
  h.observe(200us);
  EXPECT_NEAR(h.quantile(0), 100e-6, 1e-12) << "the lower edge of the first non-empty bucket";
  EXPECT_EQ(h.quantile(-0.1), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(h.quantile(1.1), std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(h.quantile(std::numeric_limits<double>::quiet_NaN())));

  latency_histogram slow;
  slow.observe(30s);
  slow.observe(40s);
  // A rank in +Inf: the largest finite bound, as histogram_quantile() answers.
  EXPECT_DOUBLE_EQ(slow.quantile(0.5), 10.0);
}

}  // namespace
}  // namespace galaxies
