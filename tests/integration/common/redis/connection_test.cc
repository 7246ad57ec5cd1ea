// Integration tests for common/redis/connection.cc against a private redis-server: commands,
// binary safety, pipelines, error replies, scripts, AUTH, unix sockets and timeouts.
#include "common/redis/connection.h"

#include <gtest/gtest.h>

#include <chrono>

#include "common/redis/errors.h"
#include "tests/fixtures/redis_server.h"

namespace mxguard::common::redis {
namespace {

using std::chrono::milliseconds;
using testing::RedisServer;

Connection connect(const std::string& url, milliseconds command_timeout = milliseconds(2000)) {
  ClientOptions options;
  options.url = url;
  options.command_timeout = command_timeout;
  return Connection(Url::parse(url), options);
}

class ConnectionTest : public ::testing::Test {
 protected:
  RedisServer server_;
};

TEST_F(ConnectionTest, SetGetDel) {
  Connection c = connect(server_.url());
  EXPECT_EQ(c.command({"PING"}).as_string(), "PONG");
  EXPECT_TRUE(c.command({"SET", "k", "v", "EX", "60"}).is_status());
  EXPECT_EQ(c.command({"GET", "k"}).as_optional_string(), "v");
  EXPECT_EQ(c.command({"DEL", "k"}).as_integer(), 1);
  EXPECT_EQ(c.command({"GET", "k"}).as_optional_string(), std::nullopt);
}

TEST_F(ConnectionTest, BinarySafeKeysAndValues) {
  Connection c = connect(server_.url());
  std::string key("bin\0key", 7);
  std::string value("\0\r\n\xff x\0", 8);
  c.command({"SET", key, value});
  EXPECT_EQ(c.command({"GET", key}).as_string(), value);
  EXPECT_EQ(c.command({"STRLEN", key}).as_integer(), 8);
  EXPECT_EQ(c.command({"EXISTS", "bin"}).as_integer(), 0);  // the key was not cut at the NUL
}

TEST_F(ConnectionTest, Pipeline) {
  Connection c = connect(server_.url());
  auto replies = c.pipeline({{"SET", "p", "1"},
                             {"INCR", "p"},
                             {"INCRBY", "p", "10"},
                             {"GET", "p"},
                             {"GET", "missing"},
                             {"LRANGE", "none", "0", "-1"}});
  ASSERT_EQ(replies.size(), 6u);
  EXPECT_EQ(replies[0].as_string(), "OK");
  EXPECT_EQ(replies[1].as_integer(), 2);
  EXPECT_EQ(replies[2].as_integer(), 12);
  EXPECT_EQ(replies[3].as_string(), "12");
  EXPECT_TRUE(replies[4].is_nil());
  EXPECT_TRUE(replies[5].as_array().empty());
}

TEST_F(ConnectionTest, ReplyErrorKeepsMessageAndConnection) {
  Connection c = connect(server_.url());
  c.command({"SET", "s", "x"});
  try {
    c.command({"LPUSH", "s", "y"});
    FAIL() << "no exception";
  } catch (const ReplyError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("WRONGTYPE", 0), 0u) << e.what();
  }
  EXPECT_FALSE(c.broken());
  EXPECT_EQ(c.command({"GET", "s"}).as_string(), "x");
}

TEST_F(ConnectionTest, PipelineWithErrorReadsEveryReply) {
  Connection c = connect(server_.url());
  c.command({"SET", "s", "x"});
  EXPECT_THROW(c.pipeline({{"INCR", "n"}, {"LPUSH", "s", "y"}, {"INCR", "n"}}), ReplyError);
  EXPECT_FALSE(c.broken());
  // All three commands ran and no reply was left behind to answer this one.
  EXPECT_EQ(c.command({"INCR", "n"}).as_integer(), 3);
}

TEST_F(ConnectionTest, EvalReloadsScriptAfterFlush) {
  Connection c = connect(server_.url());
  Script script("incr_by", "return redis.call('INCRBY', KEYS[1], ARGV[1])");
  EXPECT_EQ(c.eval(script, {"{a}:n"}, {"5"}).as_integer(), 5);  // first use: NOSCRIPT, load
  EXPECT_EQ(c.command({"SCRIPT", "EXISTS", script.sha1()}).as_array()[0].as_integer(), 1);
  EXPECT_EQ(c.eval(script, {"{a}:n"}, {"2"}).as_integer(), 7);
  c.command({"SCRIPT", "FLUSH"});
  EXPECT_EQ(c.eval(script, {"{a}:n"}, {"3"}).as_integer(), 10);
  Script failing("fails", "return redis.error_reply('ERR custom failure')");
  EXPECT_THROW(c.eval(failing, {}, {}), ReplyError);
}

TEST_F(ConnectionTest, UnixSocket) {
  Connection c = connect(server_.unix_url());
  c.command({"SET", "u", "1"});
  EXPECT_EQ(connect(server_.url()).command({"GET", "u"}).as_string(), "1");
}

TEST_F(ConnectionTest, SelectsDatabase) {
  std::string db3 = "redis://127.0.0.1:" + std::to_string(server_.port()) + "/3";
  connect(db3).command({"SET", "d", "3"});
  EXPECT_TRUE(connect(server_.url()).command({"GET", "d"}).is_nil());
  EXPECT_EQ(connect(db3).command({"GET", "d"}).as_string(), "3");
  std::string unix_db3 = "unix://" + server_.socket_path() + "?db=3";
  EXPECT_EQ(connect(unix_db3).command({"GET", "d"}).as_string(), "3");
}

TEST_F(ConnectionTest, CommandTimeoutThrowsAndBreaksConnection) {
  Connection c = connect(server_.url(), milliseconds(200));
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(c.command({"DEBUG", "SLEEP", "1"}), TimeoutError);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, milliseconds(900));
  EXPECT_GE(took, milliseconds(150));
  EXPECT_EQ(c.health(), Connection::Health::kTimedOut);
  // The late reply must never be read as the answer to another command.
  EXPECT_THROW(c.command({"PING"}), IoError);
}

TEST_F(ConnectionTest, ConnectionRefusedIsIoError) {
  int port = server_.port();
  server_.stop();
  try {
    connect("redis://127.0.0.1:" + std::to_string(port));
    FAIL() << "no exception";
  } catch (const TimeoutError& e) {
    FAIL() << "refused is not a timeout: " << e.what();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
  }
}

TEST_F(ConnectionTest, ServerDeathIsIoError) {
  Connection c = connect(server_.url());
  c.command({"PING"});
  server_.kill();
  EXPECT_THROW(c.command({"PING"}), IoError);
  EXPECT_EQ(c.health(), Connection::Health::kLost);
}

TEST(ConnectionAuthTest, Password) {
  RedisServer server(RedisServer::Options{.requirepass = "pa:ss@word"});
  std::string base = "127.0.0.1:" + std::to_string(server.port());
  EXPECT_EQ(connect("redis://:pa%3Ass%40word@" + base).command({"PING"}).as_string(), "PONG");
  EXPECT_EQ(connect("unix://" + server.socket_path() + "?password=pa%3Ass%40word")
                .command({"PING"})
                .as_string(),
            "PONG");
  EXPECT_THROW(connect("redis://:wrong@" + base), ReplyError);
  // Without a password the connect works, but commands are refused.
  EXPECT_THROW(connect("redis://" + base).command({"GET", "x"}), ReplyError);
}

TEST(ConnectionAuthTest, AclUser) {
  RedisServer server(RedisServer::Options{.acl_user = "mxg", .acl_password = "s3cret"});
  std::string base = "127.0.0.1:" + std::to_string(server.port());
  Connection c = connect("redis://mxg:s3cret@" + base + "/1");
  EXPECT_EQ(c.command({"ACL", "WHOAMI"}).as_string(), "mxg");
  try {
    connect("redis://mxg:nope@" + base);
    FAIL() << "no exception";
  } catch (const ReplyError& e) {
    EXPECT_NE(std::string(e.what()).find("WRONGPASS"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mxguard::common::redis
