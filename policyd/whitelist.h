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

class ClientWhitelist {
 public:
  // Appends the entries of one file; throws std::runtime_error("file:line: …") on a bad line.
  // A missing file ending in ".local" is skipped, as postgrey does.
  void load(const std::string& path);
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
  void load(const std::string& path);
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
