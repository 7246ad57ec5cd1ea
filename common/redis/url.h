// Where and how to reach Redis: the parsed form of --redis-url.
//   redis://[[user]:password@]host[:port][/db]   (port 6379, db 0 by default; IPv6 in [brackets])
//   unix:///path/to.sock[?db=N][&password=P][&user=U]
//   sentinel://[[user]:password@]host[:port][,host[:port]…]/master-name[/db]
//              [?sentinel-password=P][&sentinel-user=U]
//     (Redis Sentinel, port 26379 by default: the sentinels are asked for the master's address;
//     user/password/db are the master's, sentinel-user/-password the sentinels' own)
// Must never accept a URL it does not fully understand: a typo in the config fails the start-up
// with std::invalid_argument instead of silently talking to the wrong database.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mxguard::common::redis {

struct Url {
  enum class Transport { kTcp, kUnix, kSentinel };

  struct Endpoint {
    std::string host;
    int port = 26379;
    bool operator==(const Endpoint&) const = default;
  };

  Transport transport = Transport::kTcp;
  std::string host = "127.0.0.1";  // kTcp only (kSentinel: the master, once discovered)
  int port = 6379;                 // kTcp only (kSentinel: the master, once discovered)
  std::string path;                // kUnix only: absolute socket path
  int db = 0;
  std::string user;  // ACL user; empty means AUTH with the password only
  std::string password;
  // kSentinel only: where to ask, for which master, and the sentinels' own credentials.
  std::vector<Endpoint> sentinels;
  std::string master_name;
  std::string sentinel_user;
  std::string sentinel_password;

  // The master at host:port, reached as this URL says (credentials, db): what a sentinel URL
  // resolves to. For kTcp and kUnix, the URL itself.
  Url with_master(std::string master_host, int master_port) const;

  // Throws std::invalid_argument("invalid redis url '...': reason") on anything unexpected.
  static Url parse(std::string_view text);

  // The URL with the password replaced by "***", for logs and error messages.
  std::string redacted() const;
};

}  // namespace mxguard::common::redis
