// The RFC 7208 and RFC 4408 SPF test suites (tests/data/conformance/spf/) through common/spf:
// each scenario's zone is served by a real DNS server on loopback (spf_suite_server.py, with
// pyspf's zone semantics) and every case runs through the resolver and the evaluator.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/dns/resolver.h"
#include "common/spf/spf.h"
#include "tests/fixtures/process.h"

namespace mxguard::common::spf {
namespace {

const std::string kSuiteDir = std::string(MXGUARD_SOURCE_DIR) + "/tests/data/conformance/spf/";
const std::string kServer = std::string(MXGUARD_SOURCE_DIR) + "/tests/fixtures/spf_suite_server.py";

struct SuiteResult {
  int passed = 0;
  int total = 0;
  std::vector<std::string> failures;
};

// Cases whose expected result depends on checking type-99 SPF records (RFC 4408 only) are
// listed with the reason; everything else must pass.
SuiteResult run_suite(const std::string& file, const std::set<std::string>& not_applicable) {
  SuiteResult out;
  std::string listing;
  if (testing::run_command({"/usr/bin/python3", kServer, "--suite", kSuiteDir + file, "--list"},
                           &listing) != 0) {
    ADD_FAILURE() << listing;
    return out;
  }
  auto cases = nlohmann::json::parse(listing);
  int current = -1;
  std::unique_ptr<testing::TempDir> dir;
  std::unique_ptr<testing::Process> server;
  std::unique_ptr<dns::Resolver> resolver;
  for (const auto& c : cases) {
    int scenario = c["scenario"];
    std::string name = c["name"];
    if (not_applicable.count(name)) continue;
    if (scenario != current) {
      resolver.reset();
      server.reset();
      dir = std::make_unique<testing::TempDir>();
      auto port_file = *dir / "port";
      server = std::make_unique<testing::Process>(
          std::vector<std::string>{"/usr/bin/python3", kServer, "--suite", kSuiteDir + file,
                                   "--scenario", std::to_string(scenario), "--port-file",
                                   port_file.string()},
          *dir / "server.log");
      // Parsing the suite's YAML takes a while on a loaded machine: wait up to 60 s.
      for (int i = 0; i < 3000 && !std::filesystem::exists(port_file) && server->running(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (!std::filesystem::exists(port_file)) {
        ADD_FAILURE() << "suite DNS server did not start:\n" << server->log();
        return out;
      }
      dns::ResolverOptions ro;
      ro.servers = {"127.0.0.1@" + testing::read_file(port_file)};
      ro.timeout = std::chrono::seconds(10);  // a loaded CI machine, not a slow zone
      resolver = std::make_unique<dns::Resolver>(ro);
      current = scenario;
    }
    Evaluator evaluator(*resolver, Limits{}, "DEFAULT");
    Request req;
    auto ip = net::IpAddress::parse(c["host"].get<std::string>());
    if (!ip) {
      out.failures.push_back(name + ": bad host in suite");
      continue;
    }
    req.ip = *ip;
    req.helo = c["helo"];
    std::string mailfrom = c["mailfrom"];
    if (mailfrom.empty()) {
      req.sender = "postmaster@" + req.helo;
      req.domain = req.helo;
    } else if (mailfrom.find('@') == std::string::npos) {
      req.sender = "postmaster@" + mailfrom;
      req.domain = mailfrom;
    } else {
      req.sender = mailfrom;
      req.domain = mailfrom.substr(mailfrom.rfind('@') + 1);
    }
    req.receiver = "receiver.example";
    Outcome o = evaluator.check_host(req);
    ++out.total;
    std::string got(result_name(o.result));
    bool ok = false;
    for (const auto& r : c["result"]) ok = ok || r.get<std::string>() == got;
    std::string why;
    if (!ok) why = "result " + got + ", expected " + c["result"].dump();
    if (ok && c["explanation"].is_string() &&
        o.explanation != c["explanation"].get<std::string>()) {
      ok = false;
      why = "explanation '" + o.explanation + "', expected '" +
            c["explanation"].get<std::string>() + "'";
    }
    if (ok) {
      ++out.passed;
    } else {
      out.failures.push_back(c["description"].get<std::string>() + " / " + name + ": " + why +
                             (o.problem.empty() ? "" : " (" + o.problem + ")"));
    }
  }
  return out;
}

TEST(SpfConformanceTest, Rfc7208Suite) {
  ASSERT_TRUE(std::filesystem::exists(kSuiteDir + "rfc7208-tests.yml")) << "no suite";
  auto r = run_suite("rfc7208-tests.yml", {});
  for (const auto& f : r.failures) ADD_FAILURE() << f;
  std::cout << "RFC 7208 suite: " << r.passed << " of " << r.total << " cases pass\n";
  EXPECT_EQ(r.total, 203);
}

TEST(SpfConformanceTest, Rfc4408Suite) {
  ASSERT_TRUE(std::filesystem::exists(kSuiteDir + "rfc4408-tests.yml")) << "no suite";
  auto r = run_suite("rfc4408-tests.yml", {});
  for (const auto& f : r.failures) ADD_FAILURE() << f;
  std::cout << "RFC 4408 suite: " << r.passed << " of " << r.total << " cases pass\n";
}

}  // namespace
}  // namespace mxguard::common::spf
