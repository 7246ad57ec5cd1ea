// mxguard-dnscheck: for each of our signing domains (mxguard-dkim's configuration, or the
// domains named on the command line) it looks up the SPF, DKIM (every selector we sign with),
// DMARC and MX records through the suite's resolver, judges them (compare.h) and prints what
// is published, what we expect and the record that fixes it. This file gathers; compare.cc
// decides; report.cc prints.
// Must never change anything anywhere: it reads a configuration and asks DNS, nothing more.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "common/dns/resolver.h"
#include "milters/dkim/keys.h"
#include "milters/dmarc/orgdomain.h"
#include "milters/dnscheck/options.h"
#include "milters/dnscheck/report.h"

namespace mxguard::milter::dnscheck {

// Exit statuses: 0 all good (warnings allowed), 1 a mismatch or a failed lookup, 2 a usage or
// configuration error (nothing was checked).
inline constexpr int kExitOk = 0;
inline constexpr int kExitMismatch = 1;
inline constexpr int kExitUsage = 2;

// One domain and the keys we sign its mail with.
struct Target {
  std::string domain;
  std::vector<dkim::SigningKey> keys;
};

struct Targets {
  std::vector<Target> domains;
  std::vector<std::string> notes;
};

// Reads mxguard-dkim's configuration file as the daemon does (drop-ins included) and loads its
// keys. `path` empty: no keys. Throws std::runtime_error (config::ConfigError, dkim::KeyError)
// naming the file and line.
dkim::KeyStore load_signing_keys(const std::string& path);

// The domains to check: every domain `store` signs for, in its order; with `domains` given,
// exactly those (lower case, trailing dot dropped), each with the keys the store has for it
// (a "%" or wildcard key included: the keys a mail from postmaster@DOMAIN would get).
// Throws std::invalid_argument for a name that is not a domain.
Targets select_targets(const dkim::KeyStore& store, const std::vector<std::string>& domains);

// Every check of one domain: SPF, DKIM per selector, DMARC, MX. `org` may be null (no parent
// DMARC record lookups).
std::vector<Check> check_domain(common::dns::Resolver& resolver, const Target& target,
                                const Options& options, const dmarc::OrgDomains* org);

// The whole command; returns the exit status.
int run(const Options& options, const std::vector<std::string>& domains, std::ostream& out,
        std::ostream& err);

}  // namespace mxguard::milter::dnscheck
