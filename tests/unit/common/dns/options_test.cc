// Tests common/dns/options.cc: --dns-servers entries and option validation.
#include "common/dns/options.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace mxguard::common::dns {
namespace {

TEST(ServerSpecTest, Ipv4WithAndWithoutPort) {
  auto plain = parse_server_spec("192.0.2.1");
  EXPECT_EQ(plain.address, "192.0.2.1");
  EXPECT_EQ(plain.port, 53);
  EXPECT_EQ(plain.unbound_form(), "192.0.2.1@53");
  auto ported = parse_server_spec("127.0.0.1@5353");
  EXPECT_EQ(ported.address, "127.0.0.1");
  EXPECT_EQ(ported.port, 5353);
}

TEST(ServerSpecTest, Ipv6WithAndWithoutPort) {
  EXPECT_EQ(parse_server_spec("2001:db8::1").unbound_form(), "2001:db8::1@53");
  auto spec = parse_server_spec("::1@65535");
  EXPECT_EQ(spec.address, "::1");
  EXPECT_EQ(spec.port, 65535);
}

TEST(ServerSpecTest, RejectsBadEntriesWithTheEntryInTheMessage) {
  for (const char* bad : {"", "@53", "192.0.2.1@", "192.0.2.1@0", "192.0.2.1@65536",
                          "192.0.2.1@53x", "192.0.2.1@-1", "192.0.2.1@123456", "ns.example.com",
                          "192.0.2.256", "[::1]@53", "[::1]:53", "192.0.2.1:53", " 192.0.2.1"}) {
    try {
      parse_server_spec(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find('"' + std::string(bad) + '"'), std::string::npos)
          << e.what();
    }
  }
}

TEST(ValidateTest, ChecksEveryServerAndTheTimeout) {
  ResolverOptions options;
  EXPECT_TRUE(validate(options).empty());  // system resolver
  options.servers = {"192.0.2.1", "::1@5353"};
  auto specs = validate(options);
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[1].port, 5353);
  options.servers.push_back("bogus");
  EXPECT_THROW(validate(options), std::invalid_argument);
  options.servers.clear();
  options.timeout = std::chrono::milliseconds(0);
  EXPECT_THROW(validate(options), std::invalid_argument);
}

}  // namespace
}  // namespace mxguard::common::dns
