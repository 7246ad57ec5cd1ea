#include "common/net/socket_spec.h"

#include <gtest/gtest.h>

namespace mxguard::common::net {
namespace {

TEST(SocketSpecTest, ParsesPostfixForms) {
  auto u = SocketSpec::parse("unix:/run/mxguard/policyd.sock");
  EXPECT_EQ(u.kind, SocketSpec::Kind::kUnix);
  EXPECT_EQ(u.path, "/run/mxguard/policyd.sock");
  auto i = SocketSpec::parse("inet:127.0.0.1:10040");
  EXPECT_EQ(i.kind, SocketSpec::Kind::kInet);
  EXPECT_EQ(i.host, "127.0.0.1");
  EXPECT_EQ(i.port, 10040);
  auto v6 = SocketSpec::parse("inet6:[::1]:8891");
  EXPECT_EQ(v6.kind, SocketSpec::Kind::kInet6);
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.to_libmilter(), "inet6:8891@::1");
  auto lm = SocketSpec::parse("inet:8891@localhost");
  EXPECT_EQ(lm.host, "localhost");
  EXPECT_EQ(lm.port, 8891);
  EXPECT_EQ(i.to_string(), "inet:127.0.0.1:10040");
}

TEST(SocketSpecTest, RejectsIncompleteSpecs) {
  for (const char* bad :
       {"", "unix:", "unix:relative", "inet:127.0.0.1", "inet::25", "inet:host:0",
        "inet:host:70000", "tcp:h:1", "inet:::1:25", "inet6:[::1]", "inet:h:12x"}) {
    EXPECT_THROW(SocketSpec::parse(bad), std::invalid_argument) << bad;
  }
}

}  // namespace
}  // namespace mxguard::common::net
