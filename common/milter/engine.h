// Our own milter engine (MilterOptions::Engine::kMxguard): the protocol of wire.h served on
// Boost.Asio, as common/policy/server.cc serves the policy protocol. Where libmilter starts a
// thread per connection and polls and reads twice per command, this engine keeps every
// connection on one io_context run by a fixed pool of threads (engine_threads), reads whatever
// the MTA has sent in one call and answers all of it in one write. A callback runs on a pool
// thread and may block (DNS, clamd): at most engine_threads callbacks run at once, the other
// connections wait for a free thread. Timeouts: a connection waiting longer than
// timeout_seconds for the MTA's next command, or for the MTA to take a reply, is closed (the
// session's abort and close callbacks run), as libmilter's smfi_settimeout does. stop() closes
// the listener, gives open connections drain time to end with QUIT, then closes the rest.
// Must never run two callbacks of one connection at once, and never block a thread on a peer
// without a deadline.
#pragma once

#include <memory>

#include "common/milter/milter.h"

namespace mxguard::common::milter {

class Engine {
 public:
  Engine(MilterOptions options, const Milter::Factory& factory);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void open();   // binds the listener (unix or inet, Postfix syntax); throws naming it
  void serve();  // runs the threads; returns after stop() once the connections are gone
  void stop();   // thread-safe
  bool listens_on_tcp() const;
  int tcp_port() const;  // the bound port of an inet listener (tests listen on port 0)

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace mxguard::common::milter
