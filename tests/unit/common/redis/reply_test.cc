// Unit tests for common/redis/reply.cc: the redisReply -> Reply conversion, fed with raw RESP
// through hiredis's own reader, and the typed accessors.
#include "common/redis/reply.h"

#include <gtest/gtest.h>

#include "common/metrics/metrics.h"
#include "common/redis/errors.h"

namespace mxguard::common::redis {
namespace {

Reply one(std::string_view resp) {
  auto replies = parse_resp(resp);
  EXPECT_EQ(replies.size(), 1u);
  return replies.empty() ? Reply() : replies.front();
}

TEST(ReplyTest, Scalars) {
  EXPECT_EQ(one(":42\r\n").as_integer(), 42);
  EXPECT_EQ(one(":-9223372036854775808\r\n").as_integer(), INT64_MIN);
  Reply status = one("+OK\r\n");
  EXPECT_TRUE(status.is_status());
  EXPECT_EQ(status.as_string(), "OK");
  Reply str = one("$5\r\nhello\r\n");
  EXPECT_TRUE(str.is_string());
  EXPECT_EQ(str.as_string(), "hello");
  EXPECT_EQ(str.as_optional_string(), "hello");
}

TEST(ReplyTest, NilAndEmpty) {
  EXPECT_TRUE(one("$-1\r\n").is_nil());
  EXPECT_TRUE(one("*-1\r\n").is_nil());
  EXPECT_EQ(one("$-1\r\n").as_optional_string(), std::nullopt);
  Reply empty = one("$0\r\n\r\n");
  EXPECT_TRUE(empty.is_string());
  EXPECT_EQ(empty.as_optional_string(), "");
  Reply empty_array = one("*0\r\n");
  EXPECT_TRUE(empty_array.is_array());
  EXPECT_TRUE(empty_array.as_array().empty());
}

TEST(ReplyTest, BinarySafeString) {
  std::string bytes("a\0b\r\nc", 6);
  Reply r = one(std::string("$6\r\n") + bytes + "\r\n");
  EXPECT_EQ(r.as_string(), bytes);
  EXPECT_EQ(r.as_string().size(), 6u);
}

TEST(ReplyTest, NestedArrays) {
  Reply r = one("*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+QUEUED\r\n");
  ASSERT_EQ(r.as_array().size(), 3u);
  EXPECT_EQ(r.as_array()[0], Reply::integer(1));
  EXPECT_EQ(r.as_array()[1], Reply::array({Reply::string("a"), Reply()}));
  EXPECT_EQ(r.as_array()[2], Reply::status("QUEUED"));
}

TEST(ReplyTest, SeveralReplies) {
  auto replies = parse_resp(":1\r\n:2\r\n$-1\r\n");
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[1].as_integer(), 2);
  EXPECT_TRUE(replies[2].is_nil());
}

TEST(ReplyTest, ErrorRepliesThrowWithServerMessage) {
  auto& counter = metrics::Registry::global().counter(
      "mxguard_redis_errors_total", "Redis client errors by kind", {{"kind", "reply"}});
  auto before = counter.value();
  try {
    parse_resp("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    FAIL() << "no exception";
  } catch (const ReplyError& e) {
    EXPECT_STREQ(e.what(), "WRONGTYPE Operation against a key holding the wrong kind of value");
  }
  EXPECT_EQ(counter.value(), before + 1);
  // Nested errors (EXEC results, Lua tables) are errors too.
  EXPECT_THROW(parse_resp("*2\r\n:1\r\n-ERR boom\r\n"), ReplyError);
  // NOSCRIPT is thrown but not counted: eval() handles it.
  EXPECT_THROW(parse_resp("-NOSCRIPT No matching script\r\n"), ReplyError);
  EXPECT_EQ(counter.value(), before + 2);
}

TEST(ReplyTest, MalformedOrIncompleteInputIsProtocolError) {
  EXPECT_THROW(parse_resp("?what\r\n"), ProtocolError);
  EXPECT_THROW(parse_resp(":12x\r\n"), ProtocolError);
  EXPECT_THROW(parse_resp("$5\r\nhel"), ProtocolError);
  EXPECT_THROW(parse_resp("*2\r\n:1\r\n"), ProtocolError);
  EXPECT_TRUE(parse_resp("").empty());
}

TEST(ReplyTest, WrongTypeAccessIsProtocolError) {
  EXPECT_THROW(Reply::integer(1).as_string(), ProtocolError);
  EXPECT_THROW(Reply::string("1").as_integer(), ProtocolError);
  EXPECT_THROW(Reply().as_array(), ProtocolError);
  EXPECT_THROW(Reply::array({}).as_optional_string(), ProtocolError);
  EXPECT_THROW(Reply().as_string(), ProtocolError);
}

TEST(ReplyTest, ErrorHierarchy) {
  // Callers map every I/O problem, timeouts included, with one catch.
  EXPECT_THROW(throw TimeoutError("t"), IoError);
  EXPECT_THROW(throw IoError("i"), Error);
  EXPECT_THROW(throw ProtocolError("p"), Error);
  EXPECT_THROW(throw ReplyError("r"), Error);
  EXPECT_THROW(throw Error("e"), std::runtime_error);
}

}  // namespace
}  // namespace mxguard::common::redis
