#include "common/net/ip.h"

#include <gtest/gtest.h>

namespace mxguard::common::net {
namespace {

TEST(IpTest, ParsesBothFamiliesAndUnmapsV4MappedAddresses) {
  auto v4 = IpAddress::parse("192.0.2.10");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->is_v4());
  auto v6 = IpAddress::parse("2001:DB8::1");
  ASSERT_TRUE(v6);
  EXPECT_FALSE(v6->is_v4());
  EXPECT_EQ(v6->to_string(), "2001:db8::1");
  auto mapped = IpAddress::parse("::ffff:192.0.2.10");
  ASSERT_TRUE(mapped);
  EXPECT_TRUE(mapped->is_v4());
  EXPECT_EQ(*mapped, *v4);
}

TEST(IpTest, RejectsNonLiterals) {
  for (const char* bad : {"", "example.com", "1.2.3", "1.2.3.4.5", "256.1.1.1", "[::1]",
                          "fe80::1%eth0", "1.2.3.4 ", "::g"}) {
    EXPECT_FALSE(IpAddress::parse(bad)) << bad;
  }
}

TEST(IpTest, TruncatesToNetworks) {
  EXPECT_EQ(IpAddress::parse("198.51.100.77")->truncated(24).to_string(), "198.51.100.0");
  EXPECT_EQ(IpAddress::parse("198.51.100.77")->truncated(20).to_string(), "198.51.96.0");
  EXPECT_EQ(IpAddress::parse("2001:db8:1:2:3:4:5:6")->truncated(64).to_string(), "2001:db8:1:2::");
  EXPECT_EQ(IpAddress::parse("10.1.2.3")->truncated(0).to_string(), "0.0.0.0");
  EXPECT_EQ(IpAddress::parse("10.1.2.3")->truncated(32).to_string(), "10.1.2.3");
}

TEST(IpTest, ReverseNames) {
  EXPECT_EQ(IpAddress::parse("192.0.2.1")->reverse_name(), "1.2.0.192.in-addr.arpa");
  EXPECT_EQ(IpAddress::parse("2001:db8::1")->reverse_name(),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
}

TEST(CidrTest, MatchesNetworks) {
  auto net = Cidr::parse("10.0.0.0/8");
  EXPECT_TRUE(net.contains(*IpAddress::parse("10.255.0.1")));
  EXPECT_FALSE(net.contains(*IpAddress::parse("11.0.0.1")));
  EXPECT_FALSE(net.contains(*IpAddress::parse("::a00:1")));
  auto v6 = Cidr::parse("2001:db8::/32");
  EXPECT_TRUE(v6.contains(*IpAddress::parse("2001:db8:ffff::1")));
  EXPECT_FALSE(v6.contains(*IpAddress::parse("2001:db9::1")));
  EXPECT_TRUE(Cidr::parse("0.0.0.0/0").contains(*IpAddress::parse("203.0.113.9")));
  EXPECT_TRUE(Cidr::parse("::/0").contains(*IpAddress::parse("::1")));
  EXPECT_EQ(Cidr::parse("10.1.2.3/8").to_string(), "10.0.0.0/8");
  EXPECT_EQ(Cidr::parse("192.0.2.5").prefix(), 32);
  EXPECT_TRUE(Cidr::parse("::ffff:10.0.0.0/104").contains(*IpAddress::parse("10.9.9.9")));
}

TEST(CidrTest, RejectsBadNetworks) {
  for (const char* bad : {"10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/8x",
                          "2001:db8::/129", "host/24", "/24"}) {
    EXPECT_THROW(Cidr::parse(bad), std::invalid_argument) << bad;
  }
}

TEST(NetworkListTest, TrustedNetworksDefault) {
  NetworkList list({"127.0.0.0/8", "::1"});
  EXPECT_TRUE(list.contains("127.0.0.2"));
  EXPECT_TRUE(list.contains("::1"));
  EXPECT_TRUE(list.contains("::ffff:127.0.0.1"));
  EXPECT_FALSE(list.contains("192.0.2.1"));
  EXPECT_FALSE(list.contains("not-an-ip"));
  EXPECT_THROW(NetworkList({"127.0.0.0/8", "bogus"}), std::invalid_argument);
}

}  // namespace
}  // namespace mxguard::common::net
