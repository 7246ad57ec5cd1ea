// Implementation of socket spec parsing (see socket_spec.h).
#include "common/net/socket_spec.h"

#include <charconv>
#include <stdexcept>

namespace mxguard::common::net {
namespace {

int parse_port(std::string_view text, std::string_view whole) {
  int port = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || port < 1 ||
      port > 65535) {
    throw std::invalid_argument("bad port in '" + std::string(whole) + "'");
  }
  return port;
}

[[noreturn]] void bad(std::string_view text) {
  throw std::invalid_argument("bad socket '" + std::string(text) +
                              "' (use unix:/path, inet:host:port or inet6:[addr]:port)");
}

}  // namespace

SocketSpec SocketSpec::parse(std::string_view text) {
  SocketSpec spec;
  auto colon = text.find(':');
  if (colon == std::string_view::npos) bad(text);
  std::string_view scheme = text.substr(0, colon);
  std::string_view rest = text.substr(colon + 1);
  if (scheme == "unix" || scheme == "local") {
    if (rest.empty() || rest.front() != '/') bad(text);
    spec.kind = Kind::kUnix;
    spec.path = std::string(rest);
    return spec;
  }
  if (scheme != "inet" && scheme != "inet6") bad(text);
  spec.kind = scheme == "inet6" ? Kind::kInet6 : Kind::kInet;
  if (auto at = rest.find('@'); at != std::string_view::npos) {  // libmilter: port@host
    spec.port = parse_port(rest.substr(0, at), text);
    spec.host = std::string(rest.substr(at + 1));
  } else if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      bad(text);
    }
    spec.host = std::string(rest.substr(1, close - 1));
    spec.port = parse_port(rest.substr(close + 2), text);
    spec.kind = Kind::kInet6;
  } else {
    auto last = rest.rfind(':');
    if (last == std::string_view::npos) bad(text);
    spec.host = std::string(rest.substr(0, last));
    spec.port = parse_port(rest.substr(last + 1), text);
    if (spec.host.find(':') != std::string::npos) bad(text);  // IPv6 needs brackets
  }
  if (spec.host.empty()) bad(text);
  return spec;
}

std::string SocketSpec::to_string() const {
  switch (kind) {
    case Kind::kUnix:
      return "unix:" + path;
    case Kind::kInet:
      return "inet:" + host + ":" + std::to_string(port);
    case Kind::kInet6:
      return "inet6:[" + host + "]:" + std::to_string(port);
  }
  return {};
}

std::string SocketSpec::to_libmilter() const {
  switch (kind) {
    case Kind::kUnix:
      return "unix:" + path;
    case Kind::kInet:
      return "inet:" + std::to_string(port) + "@" + host;
    case Kind::kInet6:
      return "inet6:" + std::to_string(port) + "@" + host;
  }
  return {};
}

}  // namespace mxguard::common::net
