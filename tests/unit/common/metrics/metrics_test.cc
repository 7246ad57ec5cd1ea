#include "common/metrics/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace mxguard::common::metrics {
namespace {

TEST(MetricsTest, CounterRendersWithLabels) {
  Registry r;
  r.counter("mxg_decisions_total", "Decisions", {{"action", "defer"}}).inc(3);
  r.counter("mxg_decisions_total", "Decisions", {{"action", "dunno"}}).inc();
  std::string text = r.render();
  EXPECT_NE(text.find("# TYPE mxg_decisions_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("mxg_decisions_total{action=\"defer\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mxg_decisions_total{action=\"dunno\"} 1\n"), std::string::npos);
}

TEST(MetricsTest, SameNameAndLabelsIsSameCounter) {
  Registry r;
  auto& a = r.counter("c", "h", {{"k", "v"}});
  auto& b = r.counter("c", "h", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
  EXPECT_THROW(r.gauge("c", "h"), std::logic_error);
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Registry r;
  auto& h = r.histogram("lat_seconds", "Latency", {0.001, 0.01, 0.1});
  h.observe(0.0005);
  h.observe(0.005);
  h.observe(0.005);
  h.observe(5);
  std::string text = r.render();
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.001\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.01\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"0.10000000000000001\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_count 4\n"), std::string::npos);
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  EXPECT_EQ(render_labels({{"a", "x\"y\\z\n"}}), "{a=\"x\\\"y\\\\z\\n\"}");
}

TEST(MetricsTest, ConcurrentIncrementsAreNotLost) {
  Registry r;
  auto& c = r.counter("n", "h");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 40000u);
}

}  // namespace
}  // namespace mxguard::common::metrics
