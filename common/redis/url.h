// Where and how to reach Redis: the parsed form of --redis-url.
//   redis://[[user]:password@]host[:port][/db]   (port 6379, db 0 by default; IPv6 in [brackets])
//   unix:///path/to.sock[?db=N][&password=P][&user=U]
// Must never accept a URL it does not fully understand: a typo in the config fails the start-up
// with std::invalid_argument instead of silently talking to the wrong database.
#pragma once

#include <string>
#include <string_view>

namespace mxguard::common::redis {

struct Url {
  enum class Transport { kTcp, kUnix };

  Transport transport = Transport::kTcp;
  std::string host = "127.0.0.1";  // kTcp only
  int port = 6379;                 // kTcp only
  std::string path;                // kUnix only: absolute socket path
  int db = 0;
  std::string user;  // ACL user; empty means AUTH with the password only
  std::string password;

  // Throws std::invalid_argument("invalid redis url '...': reason") on anything unexpected.
  static Url parse(std::string_view text);

  // The URL with the password replaced by "***", for logs and error messages.
  std::string redacted() const;
};

}  // namespace mxguard::common::redis
