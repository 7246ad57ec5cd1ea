// Our own speaker of the milter protocol (version 6, as Postfix's milter8.c and libmilter speak
// it), without a socket: a Conversation takes the bytes one MTA connection sent and returns the
// bytes to send back, calling the connection's Dispatcher (dispatch.h) for each command.
// engine.cc moves the bytes; the fuzz target and the unit tests drive a Conversation directly.
// Every packet is bounded (kMaxPacket) and checked before its data is read; a malformed or
// out-of-order command ends the connection with a log line (the MTA then applies its own
// milter_default_action), never a guess. Must never answer a step negotiated as unanswered, and
// never let a modification out except at end of message and within the negotiated actions.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/milter/dispatch.h"

namespace mxguard::common::milter {

// The largest packet (command byte and data) we take: libmilter takes 64 KiB, which is what
// Postfix sends as one body chunk; a bigger macro or header packet from some other MTA still
// fits. Anything larger ends the connection before it is buffered.
inline constexpr std::size_t kMaxPacket = 1024 * 1024;

class Conversation {
 public:
  // Called by Context::progress() in the middle of a callback: must write `out` to the MTA now
  // (it holds everything answered so far, in order) and clear it.
  using Flush = std::function<void(std::string& out)>;

  Conversation(const MilterOptions& options, const Dispatcher::Factory& factory, bool tcp,
               Flush flush);
  ~Conversation();
  Conversation(const Conversation&) = delete;
  Conversation& operator=(const Conversation&) = delete;

  // Answers every complete packet at the front of `in` into output(); returns how many bytes
  // it used (a partial packet stays for the next call). After a QUIT or a protocol error, done()
  // is true and nothing more is read.
  std::size_t feed(std::string_view in);
  std::string& output() { return out_; }
  bool done() const { return done_; }
  const std::string& error() const { return error_; }  // the protocol error, if any
  // How many bytes the packet at the front of `in` needs in all (header included), or 0 if
  // its header is not complete yet.
  static std::size_t packet_size(std::string_view in);
  // The connection ended without QUIT (EOF, timeout, shutdown): a message in progress is
  // aborted and the session closed, as libmilter does.
  void lost();

 private:
  class WireContext;
  friend class WireContext;

  bool command(char cmd, std::string_view data);
  bool protocol_error(std::string what);
  void put(char code, std::string_view data = {});
  void answer(std::optional<Status> s, unsigned long nr_bit, bool per_recipient = false);
  void answered(Status s, bool per_recipient);
  bool optneg(std::string_view data);
  void macros(std::string_view data);
  bool connect(std::string_view data);
  void clear_macros(std::size_t from);
  const char* symbol(const std::string& name) const;
  void end_session();

  const MilterOptions& options_;
  Dispatcher dispatcher_;
  bool tcp_;
  Flush flush_;
  std::string out_;
  std::string error_;
  bool done_ = false;
  bool negotiated_ = false;
  bool in_message_ = false;
  bool at_eom_ = false;  // inside the end-of-message callback: modifications allowed
  unsigned long actions_ = 0;
  unsigned long mta_protocol_ = 0;
  std::string reply_;  // set_reply's "rcode xcode text", until a reject or tempfail takes it
  // Macros by stage, as libmilter keeps them: connect, HELO, MAIL, RCPT, DATA, end of message,
  // end of headers; a command clears the stages after its own.
  std::array<std::vector<std::pair<std::string, std::string>>, 7> macros_;
};

}  // namespace mxguard::common::milter
