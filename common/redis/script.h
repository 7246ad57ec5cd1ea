// A server-side Lua script known by name and SHA1, for read-modify-write decisions that several
// MX hosts must agree on (DESIGN.md §6). The SHA1 is computed locally so that EVALSHA can be
// tried first without a round trip; Connection::eval loads the source on NOSCRIPT.
// Must never be built from untrusted input: the source runs inside Redis.
#pragma once

#include <string>
#include <string_view>

namespace mxguard::common::redis {

class Script {
 public:
  Script(std::string name, std::string source);

  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }  // 40 lower-case hex digits, as Redis uses

 private:
  std::string name_;
  std::string source_;
  std::string sha1_;
};

// Lower-case hex SHA1 of data (OpenSSL).
std::string sha1_hex(std::string_view data);

}  // namespace mxguard::common::redis
