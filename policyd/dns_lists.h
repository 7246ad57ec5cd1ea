// DNS block and allow lists (DNSBL/DNSWL, RFC 5782) for selective greylisting: the site syntax
// `zone[=filter]` (Postfix's postscreen_dnsbl_sites without weights), the query name for a
// client address (reversed IPv4 octets, reversed IPv6 nibbles), what counts as a listing, and
// the asynchronous lookup of several lists at once on the shared resolver.
// A listing only ever selects or skips greylisting: this file must never make a list able to
// reject mail, never count an answer outside 127.0.0.0/8 as a listing, and never turn a DNS
// failure into a listing (a list that fails counts as "not listed", logged and counted).
#pragma once

#include <array>
#include <bitset>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>  // before Boost.Asio: see common/util/asio.h
#include <vector>

#include "common/dns/resolver.h"
#include "common/net/ip.h"
#include "common/util/asio.h"

namespace mxguard::policyd {

// One configured list. Text forms (no spaces; several sites are comma/space separated):
//   zen.example                       any answer in 127.0.0.0/8 but 127.255.255.0/24
//   zen.example=127.0.0.2             exactly that answer
//   zen.example=127.0.0.[2..11]       each octet: a number or [a;b;c..d] (Postfix's syntax)
//   list.dnswl.example=127.0.[0..255].[1..3]
class DnsListSite {
 public:
  DnsListSite() = default;
  // Throws std::invalid_argument saying what is wrong (the config parser adds file:line).
  static DnsListSite parse(std::string_view text);

  const std::string& zone() const { return zone_; }  // lower case, no trailing dot
  const std::string& text() const { return text_; }  // as configured, for --dump-config
  // Whether one A record of this list's answer is a listing: IPv4, inside 127.0.0.0/8, and
  // accepted by the filter (without one: anything but the 127.255.255.0/24 error codes).
  bool accepts(const common::net::IpAddress& answer) const;
  // The name to query for a client: "2.0.0.127.zen.example", or 32 reversed nibbles.
  std::string query_name(const common::net::IpAddress& client) const;

  bool operator==(const DnsListSite& o) const { return text_ == o.text_; }

 private:
  std::string zone_;
  std::string text_;
  bool filtered_ = false;
  std::array<std::bitset<256>, 4> octets_{};  // accepted values per octet (filtered_ only)
};

// For the config Binder (found by argument-dependent lookup).
void parse_value(std::string_view text, DnsListSite& out);
std::string format_value(const DnsListSite& v);

enum class ListStatus { kListed, kNotListed, kError };

// What one answer means for one list. NXDOMAIN and NODATA are "not listed"; an answer whose
// records are all outside the filter (or not addresses) is "not listed" too; SERVFAIL,
// timeouts and other failures are kError, which callers treat as not listed (fail open).
ListStatus list_status(const DnsListSite& site, const common::dns::Answer& answer);

// The first listing site of each kind, for the greylisting decision.
struct ListHits {
  std::optional<std::string> dnsbl;  // zone of the first DNSBL (in configured order) listing
  std::optional<std::string> dnswl;
};

// Looks the client up in every site of both lists at once (answers still fresh in the
// resolver's own cache are used without a query). `done` runs exactly once, always on a
// thread of `pool` and never inside this call, whether answers came from the cache, the
// network or not at all (Postfix's psc_dnsbl_request rule: one path, not two).
// A failed lookup is logged as a warning with `queue_id` and counted, then ignored.
void lookup_lists(common::dns::Source& dns, boost::asio::thread_pool& pool,
                  const common::net::IpAddress& client, const std::vector<DnsListSite>& dnsbl,
                  const std::vector<DnsListSite>& dnswl, std::string queue_id,
                  std::function<void(ListHits)> done);

}  // namespace mxguard::policyd
