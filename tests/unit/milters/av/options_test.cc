// Tests milters/av/options.cc: defaults, parsing with units, and validation errors naming the
// option.
#include "milters/av/options.h"

#include <gtest/gtest.h>

#include "tests/fixtures/parse_options.h"

namespace mxguard::milter::av {
namespace {

int parse(Options& o, std::vector<std::string> args, std::string* err = nullptr) {
  return testing::parse_args("mxguard-av", o, std::move(args), err);
}

TEST(AvOptions, Defaults) {
  Options o;
  EXPECT_EQ(o.clamd, std::vector<std::string>{"unix:/run/clamav/clamd.ctl"});
  EXPECT_EQ(o.max_size.bytes, 25u * 1024 * 1024);
  EXPECT_EQ(o.chunk_size.bytes, 64u * 1024);
  EXPECT_EQ(o.on_infected, "reject");
  EXPECT_EQ(o.on_error, "tempfail");
  EXPECT_EQ(o.on_oversize, "accept");
  EXPECT_NO_THROW(o.validate());
}

TEST(AvOptions, ParsesEveryKind) {
  Options o;
  ASSERT_EQ(parse(o, {"--clamd",
                      "unix:/tmp/a.sock",
                      "--clamd",
                      "inet:127.0.0.1:3310",
                      "--scan-timeout",
                      "5s",
                      "--connect-timeout",
                      "250ms",
                      "--max-size",
                      "10M",
                      "--chunk-size",
                      "32k",
                      "--on-infected",
                      "quarantine",
                      "--on-error",
                      "accept",
                      "--on-oversize",
                      "reject",
                      "--add-header=no",
                      "--skip-authenticated",
                      "--skip-networks",
                      "10.0.0.0/8, 192.0.2.1",
                      "--allow-senders",
                      "a@example.org",
                      "--allow-recipients",
                      ".example.net"}),
            -1);
  EXPECT_EQ(o.clamd.size(), 2u);
  EXPECT_EQ(o.scan_timeout.value.count(), 5000);
  EXPECT_EQ(o.connect_timeout.value.count(), 250);
  EXPECT_EQ(o.max_size.bytes, 10u * 1024 * 1024);
  EXPECT_EQ(o.chunk_size.bytes, 32u * 1024);
  EXPECT_EQ(o.on_infected, "quarantine");
  EXPECT_FALSE(o.add_header);
  EXPECT_TRUE(o.skip_authenticated);
  EXPECT_EQ(o.skip_networks.size(), 2u);
}

TEST(AvOptions, BadValuesNameTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string option;
  };
  for (const auto& c : std::vector<Case>{
           {{"--clamd", "tcp:1.2.3.4"}, "clamd"},
           {{"--clamd", "inet:127.0.0.1"}, "clamd"},
           {{"--on-infected", "tempfail"}, "on-infected"},
           {{"--on-error", "reject"}, "on-error"},
           {{"--on-oversize", "discard"}, "on-oversize"},
           {{"--skip-networks", "10.0.0.0/33"}, "skip-networks"},
           {{"--allow-senders", "nodot"}, "allow-senders"},
           {{"--chunk-size", "100"}, "chunk-size"},
           {{"--max-size", "2k"}, "max-size"},
           {{"--scan-timeout", "10ms"}, "scan-timeout"},
           {{"--connect-timeout", "0s"}, "connect-timeout"},
           {{"--reject-text", "two\tlines"}, "reject-text"},
           {{"--on-internal-error", "discard"}, "on-internal-error"},
       }) {
    Options o;
    std::string err;
    EXPECT_EQ(parse(o, c.args, &err), common::daemon::kExitConfig) << c.args[0];
    EXPECT_NE(err.find(c.option), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace mxguard::milter::av
