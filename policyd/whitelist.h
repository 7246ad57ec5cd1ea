// Static greylisting whitelists in postgrey's file formats, loaded unchanged (Debian's
// /etc/postgrey/whitelist_clients and whitelist_recipients work as they are):
//   clients:    host name or domain suffix, /regex/ (on client_name), IPv4 address or CIDR,
//               partial IPv4 (a.b.c = /24, a.b = /16), IPv6 address or CIDR
//   recipients: user@domain (also user+ext@domain), user@ (any domain), domain (and its
//               subdomains), /regex/
// Matching is case-insensitive, as in postgrey. Must never throw while matching: a bad line is
// a load-time error (file:line), and a loaded list only answers yes or no.
#pragma once

#include <regex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/net/ip.h"

namespace mxguard::policyd {

// A whitelist file named by an option. The built-in defaults (/etc/mxguard/whitelist_*) may be
// missing: a daemon started from a build tree with a minimal config must run, and postgrey
// only warns about its default files. A file the admin named (config file or command line)
// must exist: a typo there would silently whitelist nothing.
struct WhitelistFile {
  WhitelistFile() = default;
  // Implicit on purpose: a path from a config file, the command line or a test is admin-named.
  WhitelistFile(std::string p) : path(std::move(p)) {}  // NOLINT(google-explicit-constructor)
  WhitelistFile(const char* p) : path(p) {}             // NOLINT(google-explicit-constructor)
  static WhitelistFile built_in(std::string p) {
    WhitelistFile f(std::move(p));
    f.is_default = true;
    return f;
  }
  bool operator==(const WhitelistFile&) const = default;

  std::string path;
  bool is_default = false;
};
// For the Binder (found by argument-dependent lookup): a parsed value is admin-named.
void parse_value(std::string_view text, WhitelistFile& out);
std::string format_value(const WhitelistFile& v);

// How a file that does not exist is treated by load().
enum class WhitelistLoad { kLoaded, kMissingLocal, kMissingDefault };

class ClientWhitelist {
 public:
  // Appends the entries of one file; throws std::runtime_error("file:line: …") on a bad line
  // and "file: cannot read whitelist" on a missing admin-named file. A missing file ending in
  // ".local" is skipped, as postgrey does; a missing built-in default is skipped and reported
  // as kMissingDefault so the caller can warn.
  WhitelistLoad load(const WhitelistFile& file);
  void add_entry(std::string_view entry, const std::string& where);
  bool matches(std::string_view client_name, const common::net::IpAddress& addr) const;
  std::size_t size() const { return domains_.size() + regexes_.size() + networks_.size(); }

 private:
  std::unordered_set<std::string> domains_;  // lower case; matches itself and subdomains
  std::vector<std::regex> regexes_;
  std::vector<common::net::Cidr> networks_;
};

class RecipientWhitelist {
 public:
  WhitelistLoad load(const WhitelistFile& file);  // as ClientWhitelist::load
  void add_entry(std::string_view entry, const std::string& where);
  bool matches(std::string_view recipient) const;
  std::size_t size() const {
    return addresses_.size() + locals_.size() + domains_.size() + regexes_.size();
  }

 private:
  std::unordered_set<std::string> addresses_;  // "user@domain"
  std::unordered_set<std::string> locals_;     // "user"
  std::unordered_set<std::string> domains_;    // "domain"
  std::vector<std::regex> regexes_;
};

// Strips "#" comments and surrounding blanks; empty result means skip the line.
std::string_view clean_whitelist_line(std::string_view line);
std::string to_lower(std::string_view s);

}  // namespace mxguard::policyd
