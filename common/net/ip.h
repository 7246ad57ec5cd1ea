// IPv4/IPv6 addresses and CIDR networks: parsing, matching, truncation to a network (/24, /64).
// An IPv4-mapped IPv6 address (::ffff:1.2.3.4) is treated as the IPv4 address it carries, so a
// client cannot dodge an IPv4 rule by connecting over a dual-stack socket.
// Must never accept a prefix longer than the address or a malformed address.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxguard::common::net {

class IpAddress {
 public:
  enum class Family { kV4, kV6 };

  // Returns nullopt for anything that is not a literal address (no names, no brackets, no
  // zone ids). "::ffff:a.b.c.d" becomes IPv4.
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(std::uint32_t host_order);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kV4; }
  int bits() const { return is_v4() ? 32 : 128; }
  // Network byte order; 4 bytes used for IPv4.
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }

  // The address with every bit after `prefix` cleared (prefix clamped to bits()).
  IpAddress truncated(int prefix) const;
  std::string to_string() const;
  // Reverse-lookup name: "4.3.2.1.in-addr.arpa" or the nibble form under ip6.arpa.
  std::string reverse_name() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  Family family_ = Family::kV4;
  std::array<std::uint8_t, 16> bytes_{};
};

class Cidr {
 public:
  // "10.0.0.0/8", "2001:db8::/32", or a bare address (a host route). Throws
  // std::invalid_argument naming the bad text. Host bits set below the prefix are cleared.
  static Cidr parse(std::string_view text);
  static std::optional<Cidr> try_parse(std::string_view text);
  Cidr(IpAddress network, int prefix);

  bool contains(const IpAddress& addr) const;
  const IpAddress& network() const { return network_; }
  int prefix() const { return prefix_; }
  std::string to_string() const;

 private:
  IpAddress network_;
  int prefix_;
};

// A list of networks, as in --trusted-networks.
class NetworkList {
 public:
  NetworkList() = default;
  // Throws std::invalid_argument on the first bad entry.
  explicit NetworkList(const std::vector<std::string>& entries);
  void add(const Cidr& c) { nets_.push_back(c); }
  bool contains(const IpAddress& addr) const;
  bool contains(std::string_view addr) const;  // false for a non-address
  bool empty() const { return nets_.empty(); }

 private:
  std::vector<Cidr> nets_;
};

}  // namespace mxguard::common::net
