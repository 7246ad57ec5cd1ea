// Unit tests for policyd/authpolicy/server.cc helpers: the API header setting and query parsing.
#include "policyd/authpolicy/server.h"

#include <gtest/gtest.h>

#include "policyd/authpolicy/auth_service.h"

namespace mxguard::policyd::authpolicy {
namespace {

TEST(AuthPolicyServer, SplitsTheApiHeader) {
  EXPECT_EQ(split_header("X-API-Key: s3cret"),
            std::make_pair(std::string("X-API-Key"), std::string("s3cret")));
  EXPECT_EQ(split_header("Authorization: Basic dXNlcjpwdw=="),
            std::make_pair(std::string("Authorization"), std::string("Basic dXNlcjpwdw==")));
  EXPECT_EQ(split_header(""), std::make_pair(std::string(), std::string()));
}

TEST(AuthPolicyServer, ReadsTheCommandFromTheQuery) {
  EXPECT_EQ(query_value("/?command=allow", "command"), "allow");
  EXPECT_EQ(query_value("/policy?x=1&command=report", "command"), "report");
  EXPECT_EQ(query_value("/policy?commands=report", "command"), "");
  EXPECT_EQ(query_value("/", "command"), "");
  EXPECT_EQ(query_value("/?command", "command"), "");
}

TEST(AuthPolicyServer, AnswerJson) {
  EXPECT_EQ(answer_json(-1, "go away"), R"({"msg":"go away","status":-1})");
  EXPECT_EQ(answer_json(0, ""), R"({"msg":"","status":0})");
}

}  // namespace
}  // namespace mxguard::policyd::authpolicy
