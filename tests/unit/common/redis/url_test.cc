// Unit tests for common/redis/url.cc: every accepted form, and clear errors for the rest.
#include "common/redis/url.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace mxguard::common::redis {
namespace {

std::string error_of(const std::string& text) {
  try {
    Url::parse(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(UrlTest, TcpDefaults) {
  Url url = Url::parse("redis://localhost");
  EXPECT_EQ(url.transport, Url::Transport::kTcp);
  EXPECT_EQ(url.host, "localhost");
  EXPECT_EQ(url.port, 6379);
  EXPECT_EQ(url.db, 0);
  EXPECT_TRUE(url.user.empty());
  EXPECT_TRUE(url.password.empty());
  EXPECT_EQ(Url::parse("redis://h/").db, 0);
}

TEST(UrlTest, TcpFull) {
  Url url = Url::parse("redis://alice:s3cret@10.0.0.5:6380/7");
  EXPECT_EQ(url.host, "10.0.0.5");
  EXPECT_EQ(url.port, 6380);
  EXPECT_EQ(url.db, 7);
  EXPECT_EQ(url.user, "alice");
  EXPECT_EQ(url.password, "s3cret");
  EXPECT_EQ(url.redacted(), "redis://alice:***@10.0.0.5:6380/7");
}

TEST(UrlTest, PasswordOnlyAndPercentEscapes) {
  Url url = Url::parse("redis://:p%40ss%3Aw%2Fd@redis.example:7000");
  EXPECT_TRUE(url.user.empty());
  EXPECT_EQ(url.password, "p@ss:w/d");
  EXPECT_EQ(url.port, 7000);
  EXPECT_EQ(url.redacted(), "redis://:***@redis.example:7000/0");
}

TEST(UrlTest, Ipv6Host) {
  Url url = Url::parse("redis://[::1]:6390/2");
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 6390);
  EXPECT_EQ(url.redacted(), "redis://[::1]:6390/2");
  EXPECT_EQ(Url::parse("redis://[::1]").port, 6379);
}

TEST(UrlTest, UnixSocket) {
  Url url = Url::parse("unix:///run/redis/redis.sock?db=3&password=pw&user=bob");
  EXPECT_EQ(url.transport, Url::Transport::kUnix);
  EXPECT_EQ(url.path, "/run/redis/redis.sock");
  EXPECT_EQ(url.db, 3);
  EXPECT_EQ(url.password, "pw");
  EXPECT_EQ(url.user, "bob");
  EXPECT_EQ(url.redacted(), "unix:///run/redis/redis.sock?db=3&user=bob&password=***");
  Url plain = Url::parse("unix:///tmp/r.sock");
  EXPECT_EQ(plain.db, 0);
  EXPECT_TRUE(plain.password.empty());
}

TEST(UrlTest, InvalidUrlsThrowWithReason) {
  EXPECT_NE(error_of("http://localhost").find("expected redis://"), std::string::npos);
  EXPECT_NE(error_of("rediss://h").find("TLS"), std::string::npos);
  EXPECT_NE(error_of("redis://").find("missing host"), std::string::npos);
  EXPECT_NE(error_of("redis://h:0").find("port"), std::string::npos);
  EXPECT_NE(error_of("redis://h:65536").find("port"), std::string::npos);
  EXPECT_NE(error_of("redis://h:63x79").find("port"), std::string::npos);
  EXPECT_NE(error_of("redis://h:").find("empty port"), std::string::npos);
  EXPECT_NE(error_of("redis://h/-1").find("db"), std::string::npos);
  EXPECT_NE(error_of("redis://h/one").find("db"), std::string::npos);
  EXPECT_NE(error_of("redis://h?db=1").find("query"), std::string::npos);
  EXPECT_NE(error_of("redis://user@h").find("user without password"), std::string::npos);
  EXPECT_NE(error_of("redis://:p%4@h").find("percent"), std::string::npos);
  EXPECT_NE(error_of("redis://[::1:6379").find("ipv6"), std::string::npos);
  EXPECT_NE(error_of("unix://relative.sock").find("absolute"), std::string::npos);
  EXPECT_NE(error_of("unix:///s.sock?timeout=1").find("unknown parameter"), std::string::npos);
  EXPECT_NE(error_of("unix:///s.sock?db").find("'='"), std::string::npos);
  EXPECT_NE(error_of("unix:///s.sock?db=x").find("db"), std::string::npos);
}

TEST(UrlTest, ErrorsNeverShowThePassword) {
  std::string message = error_of("redis://u:topsecret@h:99999");
  EXPECT_NE(message.find("port"), std::string::npos);
  EXPECT_EQ(message.find("topsecret"), std::string::npos) << message;
  message = error_of("sentinel://h1,h2:0/m?sentinel-password=topsecret&x=1");
  EXPECT_NE(message.find("port"), std::string::npos);
  EXPECT_EQ(message.find("topsecret"), std::string::npos) << message;
  message = error_of("unix:///s.sock?password=topsecret&timeout=1");
  EXPECT_EQ(message.find("topsecret"), std::string::npos) << message;
}

TEST(UrlTest, Sentinel) {
  Url url = Url::parse(
      "sentinel://app:pw@10.0.0.1,10.0.0.2:26380,[fd00::3]/mymaster/2"
      "?sentinel-password=sp&sentinel-user=watch");
  EXPECT_EQ(url.transport, Url::Transport::kSentinel);
  ASSERT_EQ(url.sentinels.size(), 3u);
  EXPECT_EQ(url.sentinels[0], (Url::Endpoint{"10.0.0.1", 26379}));
  EXPECT_EQ(url.sentinels[1], (Url::Endpoint{"10.0.0.2", 26380}));
  EXPECT_EQ(url.sentinels[2], (Url::Endpoint{"fd00::3", 26379}));
  EXPECT_EQ(url.master_name, "mymaster");
  EXPECT_EQ(url.db, 2);
  EXPECT_EQ(url.user, "app");
  EXPECT_EQ(url.password, "pw");
  EXPECT_EQ(url.sentinel_user, "watch");
  EXPECT_EQ(url.sentinel_password, "sp");
  EXPECT_EQ(url.redacted(),
            "sentinel://app:***@10.0.0.1:26379,10.0.0.2:26380,[fd00::3]:26379/mymaster/2"
            "?sentinel-password=***");

  // What the sentinels' answer turns it into: the master, with the URL's credentials and db.
  Url master = url.with_master("10.0.0.9", 6380);
  EXPECT_EQ(master.transport, Url::Transport::kTcp);
  EXPECT_EQ(master.redacted(), "redis://app:***@10.0.0.9:6380/2");
  EXPECT_TRUE(master.sentinel_password.empty());

  Url minimal = Url::parse("sentinel://s1/m");
  EXPECT_EQ(minimal.sentinels, (std::vector<Url::Endpoint>{{"s1", 26379}}));
  EXPECT_EQ(minimal.db, 0);
  EXPECT_TRUE(minimal.password.empty());
}

TEST(UrlTest, InvalidSentinelUrlsThrowWithReason) {
  EXPECT_NE(error_of("sentinel://s1").find("master name"), std::string::npos);
  EXPECT_NE(error_of("sentinel://s1/").find("master name"), std::string::npos);
  EXPECT_NE(error_of("sentinel://s1,/m").find("missing host"), std::string::npos);
  EXPECT_NE(error_of("sentinel://s1:x/m").find("port"), std::string::npos);
  EXPECT_NE(error_of("sentinel://s1/m/x").find("db"), std::string::npos);
  EXPECT_NE(error_of("sentinel://s1/m?db=1").find("unknown parameter"), std::string::npos);
  EXPECT_NE(error_of("sentinel://s1/m?sentinel-user=u").find("without"), std::string::npos);
  EXPECT_NE(error_of("sentinel://s1/m#x").find("fragment"), std::string::npos);
  std::string many = "sentinel://";
  for (int i = 0; i < 17; ++i) many += (i ? ",h" : "h") + std::to_string(i);
  EXPECT_NE(error_of(many + "/m").find("16"), std::string::npos);
}

}  // namespace
}  // namespace mxguard::common::redis
