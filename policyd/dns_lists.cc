// Implementation of DNS block and allow lists (see dns_lists.h).
#include "policyd/dns_lists.h"

#include <charconv>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "common/dns/wire.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/util/strings.h"

namespace mxguard::policyd {
namespace {

// The longest zone that still leaves room for an IPv6 query name (32 nibbles and their dots)
// within a 253-character domain name.
constexpr std::size_t kMaxZone = 253 - 64;

std::invalid_argument bad(std::string_view text, const std::string& why) {
  return std::invalid_argument("DNS list site '" + std::string(text) + "': " + why);
}

void check_zone(std::string_view site, std::string_view zone) {
  if (zone.empty()) throw bad(site, "no zone before '='");
  if (zone.size() > kMaxZone) throw bad(site, "zone longer than 189 characters");
  for (auto label : common::util::split(zone, '.')) {
    if (label.empty() || label.size() > 63) throw bad(site, "empty or over-long label in the zone");
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      if (!ok) throw bad(site, "zone has a character other than letters, digits, '-' and '_'");
    }
  }
  if (zone.find('.') == std::string_view::npos) throw bad(site, "a zone has at least two labels");
}

unsigned parse_number(std::string_view site, std::string_view s) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v > 255) {
    throw bad(site, "'" + std::string(s) + "' is not a number from 0 to 255");
  }
  return v;
}

// One octet of a filter: "2", or "[2;4;6..9]".
std::bitset<256> parse_octet(std::string_view site, std::string_view o) {
  std::bitset<256> out;
  if (o.empty()) throw bad(site, "empty octet in the filter");
  if (o.front() != '[') {
    out.set(parse_number(site, o));
    return out;
  }
  if (o.size() < 3 || o.back() != ']') throw bad(site, "'" + std::string(o) + "' lacks its ']'");
  for (auto item : common::util::split(o.substr(1, o.size() - 2), ';')) {
    auto dots = item.find("..");
    if (dots == std::string_view::npos) {
      out.set(parse_number(site, item));
      continue;
    }
    unsigned lo = parse_number(site, item.substr(0, dots));
    unsigned hi = parse_number(site, item.substr(dots + 2));
    if (lo > hi) throw bad(site, "range '" + std::string(item) + "' runs backwards");
    for (unsigned v = lo; v <= hi; ++v) out.set(v);
  }
  return out;
}

std::vector<std::string_view> split_octets(std::string_view site, std::string_view filter) {
  // Dots inside [..] belong to ranges, not to the address.
  std::vector<std::string_view> out;
  std::size_t start = 0;
  int depth = 0;
  for (std::size_t i = 0; i < filter.size(); ++i) {
    char c = filter[i];
    if (c == '[') {
      if (++depth > 1) throw bad(site, "nested '[' in the filter");
    } else if (c == ']') {
      if (--depth < 0) throw bad(site, "']' without '[' in the filter");
    } else if (c == '.' && depth == 0) {
      out.push_back(filter.substr(start, i - start));
      start = i + 1;
    }
  }
  if (depth != 0) throw bad(site, "'[' without ']' in the filter");
  out.push_back(filter.substr(start));
  return out;
}

// Cached per label set: bumped once per list and request (the registry's own lookup takes a
// lock and renders the labels each time).
common::metrics::Counter& lookups(const std::string& list, const std::string& zone,
                                  const std::string& result) {
  static std::mutex mutex;
  static std::map<std::string, common::metrics::Counter*> cache;
  std::lock_guard lock(mutex);
  auto& slot = cache[list + '\0' + zone + '\0' + result];
  if (slot == nullptr) {
    slot = &common::metrics::Registry::global().counter(
        "mxguard_policyd_dns_list_lookups_total",
        "DNSBL/DNSWL lookups for selective greylisting by list kind, zone and result",
        {{"list", list}, {"zone", zone}, {"result", result}});
  }
  return *slot;
}

common::metrics::Counter& errors(const std::string& list, const std::string& zone,
                                 const std::string& status) {
  return common::metrics::Registry::global().counter(
      "mxguard_policyd_dns_list_errors_total",
      "DNSBL/DNSWL lookups that failed and counted as not listed (fail open)",
      {{"list", list}, {"zone", zone}, {"status", status}});
}

}  // namespace

DnsListSite DnsListSite::parse(std::string_view text) {
  DnsListSite s;
  s.text_ = std::string(text);
  if (text.find('*') != std::string_view::npos) {
    throw bad(text, "weights (*N) are not supported: any listing counts, nothing is scored");
  }
  auto eq = text.find('=');
  std::string zone = common::util::lower(text.substr(0, eq));
  if (!zone.empty() && zone.back() == '.') zone.pop_back();
  check_zone(text, zone);
  s.zone_ = std::move(zone);
  if (eq == std::string_view::npos) return s;
  auto parts = split_octets(text, text.substr(eq + 1));
  if (parts.size() != 4) throw bad(text, "the filter after '=' needs four octets");
  for (std::size_t i = 0; i < 4; ++i) s.octets_[i] = parse_octet(text, parts[i]);
  // Only 127.0.0.0/8 is ever a listing (RFC 5782 §2.1); a filter reaching outside it would
  // turn a parked or hijacked list domain into one that lists every client.
  if (s.octets_[0] != std::bitset<256>().set(127)) {
    throw bad(text, "the filter's first octet must be 127 (only 127.0.0.0/8 is a listing)");
  }
  s.filtered_ = true;
  return s;
}

bool DnsListSite::accepts(const common::net::IpAddress& answer) const {
  if (!answer.is_v4()) return false;
  const auto& b = answer.bytes();
  if (b[0] != 127) return false;
  if (!filtered_) return !(b[1] == 255 && b[2] == 255);  // 127.255.255.x: the list's error codes
  for (std::size_t i = 0; i < 4; ++i) {
    if (!octets_[i].test(b[i])) return false;
  }
  return true;
}

std::string DnsListSite::query_name(const common::net::IpAddress& client) const {
  std::string rev = client.reverse_name();  // "...in-addr.arpa" or "...ip6.arpa"
  rev.erase(rev.size() - (client.is_v4() ? std::string_view("in-addr.arpa").size()
                                         : std::string_view("ip6.arpa").size()));
  return rev + zone_;
}

void parse_value(std::string_view text, DnsListSite& out) { out = DnsListSite::parse(text); }
std::string format_value(const DnsListSite& v) { return v.text(); }

ListStatus list_status(const DnsListSite& site, const common::dns::Answer& answer) {
  using common::dns::Status;
  switch (answer.status) {
    case Status::kOk:
      for (const auto& r : answer.records) {
        auto ip = common::net::IpAddress::parse(r);
        if (ip && site.accepts(*ip)) return ListStatus::kListed;
      }
      return ListStatus::kNotListed;
    case Status::kNxDomain:
    case Status::kNoData:
      return ListStatus::kNotListed;
    case Status::kServFail:
    case Status::kTimeout:
    case Status::kError:
      return ListStatus::kError;
  }
  return ListStatus::kError;
}

void lookup_lists(common::dns::Source& dns, boost::asio::thread_pool& pool,
                  const common::net::IpAddress& client, const std::vector<DnsListSite>& dnsbl,
                  const std::vector<DnsListSite>& dnswl, std::string queue_id,
                  std::function<void(ListHits)> done) {
  struct Site {
    const char* kind;  // "dnsbl" | "dnswl"
    std::string zone;
    std::string name;
    DnsListSite site;
    ListStatus status = ListStatus::kError;
  };
  struct State {
    std::mutex mutex;
    std::vector<Site> sites;
    std::size_t pending = 0;
    std::string queue_id;
    std::function<void(ListHits)> done;
    boost::asio::thread_pool* pool = nullptr;
  };
  auto st = std::make_shared<State>();
  for (const auto& s : dnsbl) st->sites.push_back({"dnsbl", s.zone(), s.query_name(client), s});
  for (const auto& s : dnswl) st->sites.push_back({"dnswl", s.zone(), s.query_name(client), s});
  st->pending = st->sites.size();
  st->queue_id = queue_id.empty() ? "NOQUEUE" : std::move(queue_id);
  st->done = std::move(done);
  st->pool = &pool;

  auto finish = [](const std::shared_ptr<State>& st) {
    ListHits hits;
    for (const auto& s : st->sites) {
      if (s.status != ListStatus::kListed) continue;
      auto& slot = std::string_view(s.kind) == "dnsbl" ? hits.dnsbl : hits.dnswl;
      if (!slot) slot = s.zone;
    }
    boost::asio::post(*st->pool, [st, hits = std::move(hits)]() mutable { st->done(hits); });
  };
  auto record = [finish](const std::shared_ptr<State>& st, std::size_t i,
                         const common::dns::Answer& answer) {
    Site& s = st->sites[i];
    ListStatus status = list_status(s.site, answer);
    lookups(s.kind, s.zone,
            status == ListStatus::kListed      ? "listed"
            : status == ListStatus::kNotListed ? "not-listed"
                                               : "error")
        .inc();
    if (status == ListStatus::kError) {
      std::string why(common::dns::status_name(answer.status));
      errors(s.kind, s.zone, why).inc();
      common::log::warning(st->queue_id + ": " + s.kind + " " + s.zone + ": lookup of " + s.name +
                           " failed (" + why + "): counted as not listed");
    }
    bool last = false;
    {
      std::lock_guard lock(st->mutex);
      s.status = status;
      last = --st->pending == 0;
    }
    if (last) finish(st);
  };
  if (st->sites.empty()) return finish(st);
  for (std::size_t i = 0; i < st->sites.size(); ++i) {
    const std::string& name = st->sites[i].name;
    if (auto hit = dns.cached(name, common::dns::kTypeA)) {
      record(st, i, *hit);
      continue;
    }
    dns.resolve_async(name, common::dns::kTypeA,
                      [st, i, record](common::dns::Answer a) { record(st, i, a); });
  }
}

}  // namespace mxguard::policyd
