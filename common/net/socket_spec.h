// Listener and peer addresses in Postfix syntax: "unix:/path", "inet:host:port",
// "inet:[v6addr]:port", "inet6:[v6addr]:port" (libmilter's "inet:port@host" is accepted too).
// Must never accept a spec without an explicit port or path.
#pragma once

#include <string>
#include <string_view>

namespace mxguard::common::net {

struct SocketSpec {
  enum class Kind { kUnix, kInet, kInet6 };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix
  std::string host;  // kInet/kInet6: literal address or name
  int port = 0;

  // Throws std::invalid_argument with a message naming the accepted forms.
  static SocketSpec parse(std::string_view text);
  std::string to_string() const;     // Postfix form
  std::string to_libmilter() const;  // "unix:/path" or "inet:port@host"
};

}  // namespace mxguard::common::net
