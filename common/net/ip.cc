// Implementation of address and network parsing (see ip.h).
#include "common/net/ip.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <stdexcept>

namespace mxguard::common::net {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  std::string s(text);
  IpAddress a;
  if (s.find(':') == std::string::npos) {
    in_addr v4{};
    if (inet_pton(AF_INET, s.c_str(), &v4) != 1) return std::nullopt;
    a.family_ = Family::kV4;
    std::memcpy(a.bytes_.data(), &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) != 1) return std::nullopt;
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(v6.s6_addr, kMapped, 12) == 0) {
    a.family_ = Family::kV4;
    std::memcpy(a.bytes_.data(), v6.s6_addr + 12, 4);
    return a;
  }
  a.family_ = Family::kV6;
  std::memcpy(a.bytes_.data(), v6.s6_addr, 16);
  return a;
}

IpAddress IpAddress::v4(std::uint32_t host_order) {
  IpAddress a;
  a.family_ = Family::kV4;
  a.bytes_[0] = static_cast<std::uint8_t>(host_order >> 24);
  a.bytes_[1] = static_cast<std::uint8_t>(host_order >> 16);
  a.bytes_[2] = static_cast<std::uint8_t>(host_order >> 8);
  a.bytes_[3] = static_cast<std::uint8_t>(host_order);
  return a;
}

IpAddress IpAddress::truncated(int prefix) const {
  IpAddress out = *this;
  int n = bits() / 8;
  if (prefix < 0) prefix = 0;
  for (int i = 0; i < n; ++i) {
    int keep = prefix - i * 8;
    if (keep >= 8) continue;
    out.bytes_[i] = keep <= 0 ? 0 : static_cast<std::uint8_t>(out.bytes_[i] & (0xff << (8 - keep)));
  }
  return out;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return buf;
}

std::string IpAddress::reverse_name() const {
  std::string out;
  if (is_v4()) {
    for (int i = 3; i >= 0; --i) out += std::to_string(bytes_[i]) + ".";
    return out + "in-addr.arpa";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    out.push_back(kHex[bytes_[i] & 15]);
    out.push_back('.');
    out.push_back(kHex[bytes_[i] >> 4]);
    out.push_back('.');
  }
  return out + "ip6.arpa";
}

Cidr::Cidr(IpAddress network, int prefix) : network_(network.truncated(prefix)), prefix_(prefix) {
  if (prefix < 0 || prefix > network.bits()) throw std::invalid_argument("bad prefix length");
}

std::optional<Cidr> Cidr::try_parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  int prefix = addr->bits();
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || ptr != p.data() + p.size()) return std::nullopt;
    // "::ffff:10.0.0.0/104" is an IPv4 network written in IPv6 form.
    if (addr->is_v4() && text.substr(0, slash).find(':') != std::string_view::npos) prefix -= 96;
    if (prefix < 0 || prefix > addr->bits()) return std::nullopt;
  }
  return Cidr(*addr, prefix);
}

Cidr Cidr::parse(std::string_view text) {
  auto c = try_parse(text);
  if (!c) throw std::invalid_argument("bad address or network '" + std::string(text) + "'");
  return *c;
}

bool Cidr::contains(const IpAddress& addr) const {
  return addr.family() == network_.family() && addr.truncated(prefix_) == network_;
}

std::string Cidr::to_string() const { return network_.to_string() + "/" + std::to_string(prefix_); }

NetworkList::NetworkList(const std::vector<std::string>& entries) {
  for (const auto& e : entries) nets_.push_back(Cidr::parse(e));
}

bool NetworkList::contains(const IpAddress& addr) const {
  for (const auto& n : nets_) {
    if (n.contains(addr)) return true;
  }
  return false;
}

bool NetworkList::contains(std::string_view addr) const {
  auto a = IpAddress::parse(addr);
  return a && contains(*a);
}

}  // namespace mxguard::common::net
