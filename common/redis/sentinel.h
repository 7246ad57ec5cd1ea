// Finds the current master of a Redis Sentinel deployment (a sentinel:// --redis-url): asks
// the sentinels in turn for the master's address (SENTINEL get-master-addr-by-name), connects
// to it and checks with ROLE that it really is a master before any command goes there. Pool
// calls connect_master() for every new connection, so a failover is followed by re-asking as
// soon as the old master's connections break (Sentinel also kills the clients of a demoted
// master, and a READONLY reply breaks a connection, see connection.h).
// Thread-safe. Must never hand out a connection to a replica, nor keep state of its own beyond
// the last master seen (Redis Sentinel is the authority; we never replicate anything).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/redis/connection.h"
#include "common/redis/options.h"
#include "common/redis/url.h"

namespace mxguard::common::redis {

class Sentinel {
 public:
  // url.transport must be kSentinel (std::invalid_argument otherwise).
  Sentinel(const Url& url, const ClientOptions& options);

  // Throws IoError/TimeoutError when no sentinel names a master, or the named one cannot be
  // reached or is not (yet) a master; ReplyError for a refusal (wrong password).
  std::unique_ptr<Connection> connect_master();

  std::string master() const;       // "host:port" of the last master seen, or ""
  std::uint64_t failovers() const;  // master address changes seen since start

 private:
  struct Address {
    std::string host;
    int port = 0;
    std::string text() const;
  };
  Address ask_sentinels();
  void seen_master(const Address& address);

  const Url url_;
  const ClientOptions options_;
  mutable std::mutex mutex_;
  std::size_t preferred_ = 0;  // the sentinel that answered last is asked first
  std::string master_;
  std::uint64_t failovers_ = 0;
};

}  // namespace mxguard::common::redis
