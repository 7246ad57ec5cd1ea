// Fuzzes SPF evaluation end to end (common/spf: record parsing, macro expansion, truncation,
// includes, redirects, explanations, the RFC's limits) with the DNS answers taken from the
// input, through a stub dns::Source that answers from a table at once. Each input is lines:
//   line 1: "IP SENDER HELO"         e.g. "192.0.2.1 user@a.test mail.a.test"
//   others: "NAME TYPE DATA"         TYPE is TXT, A, AAAA, MX ("10 mx.a.test"), PTR, or
//           "NAME ERR servfail|timeout|nxdomain|nodata" for a failure.
// Invariants: every check ends (no hang), the explanation stays within the limit, the counters
// stay within the RFC's limits (plus the one term that crossed them), and nothing crashes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/dns/resolver.h"
#include "common/log/log.h"
#include "common/spf/spf.h"

namespace {

namespace dns = mxguard::common::dns;
namespace spf = mxguard::common::spf;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

// Answers from a table, synchronously; unknown names are NXDOMAIN.
class TableSource : public dns::Source {
 public:
  std::map<std::pair<std::string, std::uint16_t>, dns::Answer> answers;
  std::map<std::string, dns::Status> failures;
  int queries = 0;

  std::optional<dns::Answer> cached(std::string_view name, std::uint16_t type) override {
    ++queries;
    std::string key = lower(name);
    if (auto f = failures.find(key); f != failures.end()) return dns::Answer{f->second, {}, 0};
    if (auto a = answers.find({key, type}); a != answers.end()) return a->second;
    for (const auto& [k, v] : answers) {
      if (k.first == key) return dns::Answer{dns::Status::kNoData, {}, 300};
    }
    return dns::Answer{dns::Status::kNxDomain, {}, 300};
  }
  void resolve_async(std::string name, std::uint16_t type, Callback callback) override {
    callback(*cached(name, type));
  }
};

std::optional<std::uint16_t> type_of(std::string_view t) {
  if (t == "TXT") return dns::kTypeTxt;
  if (t == "A") return dns::kTypeA;
  if (t == "AAAA") return dns::kTypeAaaa;
  if (t == "MX") return dns::kTypeMx;
  if (t == "PTR") return dns::kTypePtr;
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    mxguard::common::log::init("fuzz", mxguard::common::log::Target::kStderr,
                               mxguard::common::log::Level::kFatal);
    return true;
  }();
  (void)quiet;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto next_line = [&input]() {
    auto nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    input.remove_prefix(nl == std::string_view::npos ? input.size() : nl + 1);
    return line;
  };
  auto word = [](std::string_view& line) {
    auto sp = line.find(' ');
    std::string_view w = line.substr(0, sp);
    line.remove_prefix(sp == std::string_view::npos ? line.size() : sp + 1);
    return w;
  };

  std::string_view head = next_line();
  auto ip = mxguard::common::net::IpAddress::parse(std::string(word(head)));
  if (!ip) return 0;
  spf::Request req;
  req.ip = *ip;
  req.sender = std::string(word(head));
  req.helo = std::string(word(head));
  auto at = req.sender.rfind('@');
  req.domain = at == std::string::npos ? req.helo : req.sender.substr(at + 1);
  req.receiver = "mx.fuzz.test";

  TableSource source;
  while (!input.empty()) {
    std::string_view line = next_line();
    std::string name = lower(word(line));
    std::string_view type = word(line);
    if (type == "ERR") {
      dns::Status st = line == "timeout"    ? dns::Status::kTimeout
                       : line == "nodata"   ? dns::Status::kNoData
                       : line == "nxdomain" ? dns::Status::kNxDomain
                                            : dns::Status::kServFail;
      source.failures[name] = st;
      continue;
    }
    auto t = type_of(type);
    if (!t) continue;
    auto& a = source.answers[{name, *t}];
    a.status = dns::Status::kOk;
    a.ttl = 300;
    a.records.emplace_back(line.substr(0, dns::kMaxTxtBytes));
  }

  spf::Limits limits;
  spf::Evaluator evaluator(source, limits, "%{i} is not one of %{d}'s designated mail servers.");
  spf::Outcome out = evaluator.check_host(req);
  if (out.explanation.size() > limits.max_explanation) std::abort();
  if (out.result != spf::Result::kFail && !out.explanation.empty()) std::abort();
  if (out.dns_terms > limits.max_dns_terms + 1) std::abort();
  if (out.void_lookups > limits.max_void_lookups + 1) std::abort();
  // Terms, MX and PTR names are bounded: 10 terms x (1 + 10 names) lookups, plus the record
  // fetches, %{p} and the explanation.
  if (source.queries > 400) std::abort();
  return 0;
}
