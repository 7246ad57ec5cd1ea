// DNS wire-format decoding for the rdata libunbound hands us, and the names we build for queries
// (PTR). Pure functions, no I/O, so they can be unit-tested and fuzzed.
// Must never read outside the given bytes or trust a length field: rdata comes off the network,
// so malformed input yields std::nullopt, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace mxguard::common::dns {

// The RR types we have typed accessors for (RFC 1035, RFC 3596).
inline constexpr std::uint16_t kTypeA = 1;
inline constexpr std::uint16_t kTypeNs = 2;
inline constexpr std::uint16_t kTypeCname = 5;
inline constexpr std::uint16_t kTypeSoa = 6;
inline constexpr std::uint16_t kTypePtr = 12;
inline constexpr std::uint16_t kTypeMx = 15;
inline constexpr std::uint16_t kTypeTxt = 16;
inline constexpr std::uint16_t kTypeAaaa = 28;
inline constexpr std::uint16_t kTypeSrv = 33;

// TXT records longer than this (all strings concatenated) are skipped by the resolver.
inline constexpr std::size_t kMaxTxtBytes = 8192;

using Bytes = std::span<const std::uint8_t>;

// "A", "MX", … or "TYPE<n>" (RFC 3597) for the rest.
std::string type_name(std::uint16_t rrtype);

// Reads one uncompressed wire-format name starting at data[pos] and advances pos past it.
// Presentation form without the trailing dot ("mx.example.com"; the root is "."); '.', '\\'
// and bytes outside printable ASCII inside a label are escaped as \DDD or \. so that the text
// cannot be mistaken for another name. nullopt if truncated, a label is over 63 bytes, the name
// is over 255 bytes, or a compression pointer appears (unbound gives us uncompressed rdata).
std::optional<std::string> read_name(Bytes data, std::size_t& pos);

// Whole-rdata parsers: the rdata must be exactly one well-formed record of that type.
std::optional<std::string> parse_a(Bytes rdata);           // "192.0.2.1"
std::optional<std::string> parse_aaaa(Bytes rdata);        // "2001:db8::1"
std::optional<std::string> parse_name_rdata(Bytes rdata);  // PTR, NS, CNAME
struct MxRecord {
  std::uint16_t preference = 0;
  std::string exchange;  // presentation form, no trailing dot; "." is a null MX (RFC 7505)
  bool operator==(const MxRecord&) const = default;
};
std::optional<MxRecord> parse_mx(Bytes rdata);
// TXT: the character-strings concatenated with no separator (RFC 7208 §3.3), bytes kept as-is.
std::optional<std::string> parse_txt(Bytes rdata);

// The text form of one rdata for Answer::records: the parsers above for their types, "PREF NAME"
// for MX, and RFC 3597 "\# LEN HEX" for every other type.
std::optional<std::string> rdata_to_text(std::uint16_t rrtype, Bytes rdata);

// The reverse-lookup name of an IPv4 or IPv6 address: "4.3.2.1.in-addr.arpa",
// "b.a.9.8. … .ip6.arpa". Throws std::invalid_argument if ip is not an address.
std::string ptr_name(std::string_view ip);

}  // namespace mxguard::common::dns
