// SPF record syntax (RFC 7208 §4.5, §4.6, §7, §12): record selection, the term parser and
// macro strings, parsed once into values the evaluator walks. Pure functions, no DNS.
// Must never accept what the ABNF rejects: any syntax error anywhere is a permerror.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net/ip.h"

namespace mxguard::common::spf {

// One piece of a macro string: literal text, or %{letter transformers delimiters}.
struct MacroPart {
  bool literal = true;
  std::string text;         // literal text (with %%, %_, %- already decoded)
  char letter = 0;          // s l o d i p h c r t v (lower case)
  bool url_escape = false;  // upper-case letter
  int digits = 0;           // 0: all parts
  bool reverse = false;
  std::string delimiters;  // empty: "."
};

struct MacroString {
  std::vector<MacroPart> parts;
  bool empty() const { return parts.empty(); }
  bool uses(char letter) const;
};

enum class Qualifier { kPass, kFail, kSoftfail, kNeutral };

struct Mechanism {
  enum class Kind { kAll, kInclude, kA, kMx, kPtr, kIp4, kIp6, kExists };
  Kind kind = Kind::kAll;
  Qualifier qualifier = Qualifier::kPass;
  std::optional<MacroString> domain;  // include/exists always; a/mx/ptr when given
  std::optional<net::Cidr> network;   // ip4/ip6
  int cidr4 = 32;
  int cidr6 = 128;
  std::string text;  // the term as written, for logs
  bool queries_dns() const;
};

struct Record {
  std::vector<Mechanism> mechanisms;
  std::optional<MacroString> redirect;
  std::optional<MacroString> exp;
};

// Parses a macro string. In a domain-spec (`domain_spec` true) it must end in a macro or
// "." toplabel, and c, r, t are not allowed; in explanation text spaces are allowed.
// Returns nullopt and sets *problem on a syntax error.
std::optional<MacroString> parse_macro_string(std::string_view text, bool domain_spec,
                                              bool explanation, std::string* problem);

// Parses a whole record (which starts with "v=spf1"). nullopt + *problem on a syntax error.
std::optional<Record> parse_record(std::string_view text, std::string* problem);

// True when `text` is an SPF record by §4.5: "v=spf1" (any case) then a space or the end.
bool is_spf_record(std::string_view text);

// §4.3: a domain check_host can work with: ASCII, multi-label, labels of 1..63 octets, at
// most 253 octets (a trailing dot allowed), ending in a valid top label.
bool valid_domain(std::string_view domain);
// A name that can be queried at all (expanded targets may hold any octets): labels of 1..63
// octets, at most 253 octets.
bool valid_dns_name(std::string_view name);

}  // namespace mxguard::common::spf
