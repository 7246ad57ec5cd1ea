// mxguard-dnscheck's options: the only place their defaults live (docs/mxguard-dnscheck.md is
// checked against --dump-config). What we expect of the DNS comes from here and from
// mxguard-dkim's own configuration file, never from a second list of keys.
#pragma once

#include <string>
#include <vector>

#include "common/config/config.h"
#include "common/dns/options.h"
#include "milters/dkim/options.h"

namespace mxguard::milter::dnscheck {

struct Options {
  // mxguard-dkim's configuration (drop-ins included): the signing domains and every selector
  // we sign with, with its private key. Empty: no DKIM checks, domains from the command line.
  std::string dkim_config = dkim::kDefaultConfigFile;
  // Our outgoing addresses: SPF must pass for each. Empty: the record is checked for syntax
  // and limits only.
  std::vector<std::string> sending_ip;
  // Hosts that must be MX hosts of every checked domain. Empty: any MX with an address will do.
  std::vector<std::string> mx;
  // The rua= address a suggested DMARC record names. Empty: postmaster@DOMAIN.
  std::string dmarc_rua;
  // For a subdomain without its own _dmarc record: the organizational domain's record applies.
  std::string public_suffix_list = "/usr/share/publicsuffix/public_suffix_list.dafsa";
  bool json = false;
  common::dns::ResolverOptions dns;

  void bind(common::config::Binder& b);
  void validate() const;  // throws config::OptionError naming the option
};

}  // namespace mxguard::milter::dnscheck
