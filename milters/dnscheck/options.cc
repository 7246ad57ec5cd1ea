// Binding and validation of mxguard-dnscheck's options (see options.h).
#include "milters/dnscheck/options.h"

#include "common/mail/from.h"
#include "common/net/ip.h"
#include "milters/dmarc/record.h"

namespace mxguard::milter::dnscheck {

void Options::bind(common::config::Binder& b) {
  b.add("dkim-config", dkim_config,
        "mxguard-dkim's configuration file: signing domains, selectors and keys (empty: none)");
  b.add("sending-ip", sending_ip, "our outgoing addresses; SPF must pass for each");
  b.add("mx", mx, "hosts that must be MX hosts of every checked domain");
  b.add("dmarc-rua", dmarc_rua,
        "rua= address of a suggested DMARC record (empty: postmaster@DOMAIN)");
  b.add("public-suffix-list", public_suffix_list,
        "Public Suffix List file (.dafsa or .dat), for the DMARC record of a parent domain");
  b.add("json", json, "print the report as JSON");
  common::dns::bind_options(b, dns);
}

void Options::validate() const {
  using common::config::OptionError;
  common::dns::validate_options(dns);
  for (const auto& ip : sending_ip) {
    if (!common::net::IpAddress::parse(ip)) {
      throw OptionError("sending-ip", "'" + ip + "' is not an IPv4 or IPv6 address");
    }
  }
  for (const auto& host : mx) {
    if (!common::mail::valid_domain(common::mail::normalize_domain(host)))
      throw OptionError("mx", "'" + host + "' is not a host name");
  }
  if (!dmarc_rua.empty() && !dmarc::parse_report_address(dmarc_rua)) {
    throw OptionError("dmarc-rua", "'" + dmarc_rua + "' is not a plain local@domain address");
  }
}

}  // namespace mxguard::milter::dnscheck
