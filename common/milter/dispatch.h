// What both milter engines do with one connection once a command is decoded (libmilter's
// callbacks in milter.cc, our own engine in wire.cc): the negotiation of actions and steps, one
// Session per connection, the exception barrier that turns any std::exception into the
// configured failure reply with a log line and a metric, and the steps negotiated as unanswered
// (SMFIP_NR_*), whose failure or non-continue answer is kept for the next answered step.
// Must never let an exception out, and never turn a failure into an accept unless the
// configuration says so.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/milter/milter.h"

namespace mxguard::common::milter {

// The outcome of option negotiation with the MTA (SMFIC_OPTNEG).
struct Negotiation {
  bool ok = false;             // false: the MTA does not offer an action the filter needs
  unsigned long actions = 0;   // SMFIF_* we tell the MTA
  unsigned long protocol = 0;  // SMFIP_* we tell the MTA (a subset of what it offered)
  bool skip_offered = false;   // the MTA understands SMFIR_SKIP
  // The steps whose callbacks answer nothing. May hold a step the MTA did not offer to leave
  // unanswered (libmilter does the same): the engine then sends a plain continue for it.
  unsigned long no_reply = 0;
};

// What we ask of an MTA offering `mta_actions` and `mta_protocol`: the filter's actions, the
// steps it declines, SKIP, and on unix sockets (not TCP: see milter.cc) the unanswered steps.
Negotiation negotiate(const MilterOptions& o, bool tcp, unsigned long mta_actions,
                      unsigned long mta_protocol);

// One connection's session and the state of its unanswered steps. Each step returns the
// answer for the MTA, or nothing for a step negotiated as unanswered. Not thread-safe: an
// engine calls it for one connection at a time.
class Dispatcher {
 public:
  using Factory = std::function<std::unique_ptr<Session>()>;
  Dispatcher(const MilterOptions& options, const Factory& factory)
      : options_(options), factory_(factory) {}

  void negotiated(const Negotiation& n) {
    skip_offered_ = n.skip_offered;
    no_reply_ = n.no_reply;
  }
  unsigned long no_reply() const { return no_reply_; }
  bool has_session() const { return session_ != nullptr; }

  std::optional<Status> connect(Context& c, const ConnectInfo& info);  // starts a session
  std::optional<Status> helo(Context& c, std::string_view helo);
  std::optional<Status> mail(Context& c, const std::vector<std::string>& args);
  Status rcpt(Context& c, const std::vector<std::string>& args);
  std::optional<Status> header(Context& c, std::string_view name, std::string_view value);
  std::optional<Status> eoh(Context& c);
  std::optional<Status> body(Context& c, std::string_view chunk);
  Status eom(Context& c);
  void abort(Context& c);  // the current message is over (RSET, lost client)
  void close(Context& c);  // ends the session

 private:
  Status fail(Context& c, const char* stage, const char* what);
  Status answer(Status s) const;  // SKIP only where the MTA offered it
  template <class F>
  Status guarded(Context& c, const char* stage, F&& fn);
  template <class F>
  std::optional<Status> step(Context& c, unsigned long nr_flag, const char* stage,
                             bool connection_level, F&& fn);
  void clear_deferred();
  void clear_message_deferred() {
    if (!deferred_connection_) clear_deferred();
  }
  void defer_error(const char* stage, std::string what, bool connection_level);

  const MilterOptions& options_;
  const Factory& factory_;
  std::unique_ptr<Session> session_;
  bool skip_offered_ = false;
  unsigned long no_reply_ = 0;
  // What an unanswered callback could not say, for the next answered step.
  std::optional<Status> deferred_;
  std::string deferred_error_;
  const char* deferred_stage_ = "";
  bool deferred_connection_ = false;  // said at connect or HELO: survives MAIL FROM and abort
};

}  // namespace mxguard::common::milter
