// Tests the parts of common/dns/resolver.cc that need no DNS server: status names, MX sorting,
// option validation at construction and shutdown without queries. Answers from a real server
// are in tests/integration/common/dns/resolver_test.cc.
#include "common/dns/resolver.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mxguard::common::dns {
namespace {

using ::testing::ElementsAre;

TEST(StatusTest, NamesAreMetricLabels) {
  EXPECT_EQ(status_name(Status::kOk), "ok");
  EXPECT_EQ(status_name(Status::kNxDomain), "nxdomain");
  EXPECT_EQ(status_name(Status::kNoData), "nodata");
  EXPECT_EQ(status_name(Status::kServFail), "servfail");
  EXPECT_EQ(status_name(Status::kTimeout), "timeout");
  EXPECT_EQ(status_name(Status::kError), "error");
}

TEST(ToMxTest, SortsByPreferenceStably) {
  Answer answer{Status::kOk, {"20 b.example", "10 z.example", "20 a.example", "0 ."}, 60};
  auto mx = to_mx(answer);
  EXPECT_EQ(mx.status, Status::kOk);
  EXPECT_EQ(mx.ttl, 60);
  EXPECT_THAT(mx.records, ElementsAre(MxRecord{0, "."}, MxRecord{10, "z.example"},
                                      MxRecord{20, "b.example"}, MxRecord{20, "a.example"}));
  EXPECT_TRUE(to_mx(Answer{Status::kNxDomain, {}, 0}).records.empty());
}

TEST(ResolverTest, BadOptionsThrowInvalidArgument) {
  ResolverOptions options;
  options.servers = {"127.0.0.1@99999"};
  EXPECT_THROW(Resolver{options}, std::invalid_argument);
  options.servers = {"127.0.0.1"};
  options.timeout = std::chrono::milliseconds(-1);
  EXPECT_THROW(Resolver{options}, std::invalid_argument);
}

TEST(ResolverTest, StartsAndStopsWithoutQueries) {
  ResolverOptions options;
  options.servers = {"127.0.0.1@9"};
  for (int i = 0; i < 20; ++i) Resolver r(options);
  Resolver system_resolver{ResolverOptions{}};  // reads /etc/resolv.conf, sends nothing
}

}  // namespace
}  // namespace mxguard::common::dns
