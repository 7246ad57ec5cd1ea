// DNS wire-format decoding and query-name building (see wire.h).
#include "common/dns/wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <stdexcept>

namespace mxguard::common::dns {
namespace {

constexpr std::size_t kMaxLabel = 63;
constexpr std::size_t kMaxName = 255;
constexpr char kHex[] = "0123456789abcdef";

void append_label_byte(std::string& out, std::uint8_t c) {
  if (c == '.' || c == '\\') {
    out += '\\';
    out += static_cast<char>(c);
  } else if (c > 0x20 && c < 0x7f) {
    out += static_cast<char>(c);
  } else {
    out += '\\';
    out += static_cast<char>('0' + c / 100);
    out += static_cast<char>('0' + c / 10 % 10);
    out += static_cast<char>('0' + c % 10);
  }
}

std::optional<std::string> ntop(int family, Bytes rdata, std::size_t size) {
  if (rdata.size() != size) {
    return std::nullopt;
  }
  std::array<char, INET6_ADDRSTRLEN> buf{};
  if (::inet_ntop(family, rdata.data(), buf.data(), buf.size()) == nullptr) {
    return std::nullopt;
  }
  return std::string(buf.data());
}

}  // namespace

std::string type_name(std::uint16_t rrtype) {
  switch (rrtype) {
    case kTypeA:
      return "A";
    case kTypeNs:
      return "NS";
    case kTypeCname:
      return "CNAME";
    case kTypeSoa:
      return "SOA";
    case kTypePtr:
      return "PTR";
    case kTypeMx:
      return "MX";
    case kTypeTxt:
      return "TXT";
    case kTypeAaaa:
      return "AAAA";
    case kTypeSrv:
      return "SRV";
    default:
      return "TYPE" + std::to_string(rrtype);
  }
}

std::optional<std::string> read_name(Bytes data, std::size_t& pos) {
  std::string out;
  std::size_t p = pos;
  std::size_t wire_length = 0;
  while (true) {
    if (p >= data.size()) {
      return std::nullopt;
    }
    std::size_t len = data[p++];
    wire_length += len + 1;
    if (wire_length > kMaxName) {
      return std::nullopt;
    }
    if (len == 0) {
      break;
    }
    if (len > kMaxLabel) {
      return std::nullopt;  // also rejects compression pointers (0xC0)
    }
    if (data.size() - p < len) {
      return std::nullopt;
    }
    if (!out.empty()) {
      out += '.';
    }
    for (std::size_t i = 0; i < len; ++i) {
      append_label_byte(out, data[p + i]);
    }
    p += len;
  }
  pos = p;
  if (out.empty()) {
    out = ".";
  }
  return out;
}

std::optional<std::string> parse_a(Bytes rdata) { return ntop(AF_INET, rdata, 4); }
std::optional<std::string> parse_aaaa(Bytes rdata) { return ntop(AF_INET6, rdata, 16); }

std::optional<std::string> parse_name_rdata(Bytes rdata) {
  std::size_t pos = 0;
  auto name = read_name(rdata, pos);
  if (!name || pos != rdata.size()) {
    return std::nullopt;
  }
  return name;
}

std::optional<MxRecord> parse_mx(Bytes rdata) {
  if (rdata.size() < 3) {
    return std::nullopt;
  }
  MxRecord mx;
  mx.preference = static_cast<std::uint16_t>(rdata[0] << 8 | rdata[1]);
  auto exchange = parse_name_rdata(rdata.subspan(2));
  if (!exchange) {
    return std::nullopt;
  }
  mx.exchange = std::move(*exchange);
  return mx;
}

std::optional<std::string> parse_txt(Bytes rdata) {
  // An empty rdata is malformed: a TXT record holds at least one (possibly empty) string.
  if (rdata.empty()) {
    return std::nullopt;
  }
  std::string out;
  std::size_t p = 0;
  while (p < rdata.size()) {
    std::size_t len = rdata[p++];
    if (rdata.size() - p < len) {
      return std::nullopt;
    }
    out.append(reinterpret_cast<const char*>(rdata.data() + p), len);
    p += len;
  }
  return out;
}

std::optional<std::string> rdata_to_text(std::uint16_t rrtype, Bytes rdata) {
  switch (rrtype) {
    case kTypeA:
      return parse_a(rdata);
    case kTypeAaaa:
      return parse_aaaa(rdata);
    case kTypeTxt:
      return parse_txt(rdata);
    case kTypePtr:
    case kTypeNs:
    case kTypeCname:
      return parse_name_rdata(rdata);
    case kTypeMx: {
      auto mx = parse_mx(rdata);
      if (!mx) {
        return std::nullopt;
      }
      return std::to_string(mx->preference) + " " + mx->exchange;
    }
    default: {
      std::string out = "\\# " + std::to_string(rdata.size());
      if (!rdata.empty()) {
        out += ' ';
      }
      for (std::uint8_t b : rdata) {
        out += kHex[b >> 4];
        out += kHex[b & 0xf];
      }
      return out;
    }
  }
}

std::string ptr_name(std::string_view ip) {
  std::string text(ip);
  std::array<std::uint8_t, 16> addr{};
  std::string out;
  if (::inet_pton(AF_INET, text.c_str(), addr.data()) == 1) {
    for (int i = 3; i >= 0; --i) {
      out += std::to_string(addr[i]) + ".";
    }
    return out + "in-addr.arpa";
  }
  if (::inet_pton(AF_INET6, text.c_str(), addr.data()) == 1) {
    for (int i = 15; i >= 0; --i) {
      out += kHex[addr[i] & 0xf];
      out += '.';
      out += kHex[addr[i] >> 4];
      out += '.';
    }
    return out + "ip6.arpa";
  }
  throw std::invalid_argument("not an IP address: \"" + text + "\"");
}

}  // namespace mxguard::common::dns
