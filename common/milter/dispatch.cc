// The per-connection logic both milter engines share (see dispatch.h).
#include "common/milter/dispatch.h"

#include <libmilter/mfapi.h>

#include <stdexcept>

#include "common/log/log.h"
#include "common/metrics/metrics.h"

namespace mxguard::common::milter {
namespace {

// The steps asked to go unanswered (on unix sockets only): every step whose answer can wait
// until a later one without changing what happens to the mail. RCPT is answered (its reject is
// per recipient), end of message of course.
constexpr unsigned long kNoReplySteps =
    SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY;

metrics::Counter& internal_errors(const char* stage) {
  return metrics::Registry::global().counter("mxguard_milter_internal_errors_total",
                                             "Milter callbacks that failed with an internal error",
                                             {{"stage", stage}});
}

}  // namespace

Negotiation negotiate(const MilterOptions& o, bool tcp, unsigned long mta_actions,
                      unsigned long mta_protocol) {
  Negotiation n;
  if ((o.actions & mta_actions) != o.actions) {
    log::error("milter: the MTA does not offer the actions this filter needs");
    return n;
  }
  n.ok = true;
  n.skip_offered = (mta_protocol & SMFIP_SKIP) != 0;
  unsigned long want = o.protocol | SMFIP_SKIP;
  // Not on TCP: without replies between them, the MTA's header writes are small segments
  // that Nagle holds back until our delayed ACK (~40 ms a message; measured with miltertest:
  // 45 instead of 2,300 messages/s). The MTA's socket is not ours to set TCP_NODELAY on.
  if (o.no_reply && !tcp) want |= kNoReplySteps;
  n.actions = o.actions;
  n.protocol = want & mta_protocol;
  n.no_reply = want & kNoReplySteps;
  return n;
}

Status Dispatcher::answer(Status s) const {
  return s == Status::kSkip && !skip_offered_ ? Status::kContinue : s;
}

void Dispatcher::clear_deferred() {
  deferred_.reset();
  deferred_error_.clear();
  deferred_connection_ = false;
}

void Dispatcher::defer_error(const char* stage, std::string what, bool connection_level) {
  deferred_error_ = std::move(what);
  deferred_stage_ = stage;
  deferred_connection_ = connection_level;
}

// The exception barrier's outcome: log, count, set the reply, return the configured status.
Status Dispatcher::fail(Context& c, const char* stage, const char* what) {
  std::string qid;
  try {
    qid = c.queue_id();
  } catch (...) {
    // Reading a macro failed as well; the line still goes out with NOQUEUE.
  }
  internal_errors(stage).inc();
  log::error(log::format_decision(
      qid,
      {{"stage", stage}, {"action", status_name(options_.on_internal_error)}, {"reason", what}}));
  try {
    if (options_.on_internal_error == Status::kTempfail) {
      c.set_reply("451", "4.3.0", options_.error_text);
    } else if (options_.on_internal_error == Status::kReject) {
      c.set_reply("550", "5.7.0", options_.error_text);
    }
  } catch (...) {
    // The plain status still goes out: a 4xx/5xx of the MTA's own wording.
  }
  return options_.on_internal_error;
}

template <class F>
Status Dispatcher::guarded(Context& c, const char* stage, F&& fn) {
  try {
    if (!session_) throw std::logic_error("callback without a session");
    // An unanswered callback (SMFIP_NR_*) that failed or said more than continue answers here.
    if (!deferred_error_.empty()) {
      std::string what = deferred_error_;
      const char* where = deferred_stage_;
      clear_deferred();
      return fail(c, where, what.c_str());
    }
    if (deferred_) {
      Status s = *deferred_;
      clear_deferred();
      return answer(s);
    }
    return answer(fn(*session_));
  } catch (const std::exception& ex) {
    return fail(c, stage, ex.what());
  } catch (...) {
    return fail(c, stage, "unknown exception");
  }
}

// A callback of a step negotiated as unanswered: the MTA expects no reply, so a failure or an
// answer other than continue is remembered for the next answered step (RCPT, end of message
// at the latest), where guarded() gives it. Only the first one counts.
template <class F>
std::optional<Status> Dispatcher::step(Context& c, unsigned long nr_flag, const char* stage,
                                       bool connection_level, F&& fn) {
  if ((no_reply_ & nr_flag) == 0) return guarded(c, stage, std::forward<F>(fn));
  if (deferred_ || !deferred_error_.empty()) return std::nullopt;
  try {
    if (!session_) throw std::logic_error("callback without a session");
    Status s = fn(*session_);
    if (s != Status::kContinue && s != Status::kSkip) deferred_ = s;
  } catch (const std::exception& ex) {
    defer_error(stage, ex.what(), connection_level);
  } catch (...) {
    defer_error(stage, "unknown exception", connection_level);
  }
  if (deferred_) {
    deferred_stage_ = stage;
    deferred_connection_ = connection_level;
  }
  return std::nullopt;
}

std::optional<Status> Dispatcher::connect(Context& c, const ConnectInfo& info) {
  try {
    session_ = factory_();
  } catch (const std::exception& ex) {
    // Unanswered connect: the failure answers at the next answered step, as below.
    if ((no_reply_ & SMFIP_NR_CONN) != 0) {
      defer_error("connect", ex.what(), true);
      return std::nullopt;
    }
    return fail(c, "connect", ex.what());
  }
  return step(c, SMFIP_NR_CONN, "connect", true, [&](Session& s) { return s.on_connect(c, info); });
}

std::optional<Status> Dispatcher::helo(Context& c, std::string_view helo) {
  return step(c, SMFIP_NR_HELO, "helo", true, [&](Session& s) { return s.on_helo(c, helo); });
}

std::optional<Status> Dispatcher::mail(Context& c, const std::vector<std::string>& args) {
  clear_message_deferred();  // a new message
  return step(c, SMFIP_NR_MAIL, "mail", false, [&](Session& s) { return s.on_mail_from(c, args); });
}

Status Dispatcher::rcpt(Context& c, const std::vector<std::string>& args) {
  return guarded(c, "rcpt", [&](Session& s) { return s.on_rcpt(c, args); });
}

std::optional<Status> Dispatcher::header(Context& c, std::string_view name,
                                         std::string_view value) {
  return step(c, SMFIP_NR_HDR, "header", false,
              [&](Session& s) { return s.on_header(c, name, value); });
}

std::optional<Status> Dispatcher::eoh(Context& c) {
  return step(c, SMFIP_NR_EOH, "eoh", false, [&](Session& s) { return s.on_eoh(c); });
}

std::optional<Status> Dispatcher::body(Context& c, std::string_view chunk) {
  // Unanswered body chunks cannot say SKIP: the rest of the body then still comes.
  return step(c, SMFIP_NR_BODY, "body", false, [&](Session& s) { return s.on_body(c, chunk); });
}

Status Dispatcher::eom(Context& c) {
  return guarded(c, "eom", [&](Session& s) { return s.on_eom(c); });
}

void Dispatcher::abort(Context& c) {
  if (!session_) return;
  clear_message_deferred();
  try {
    session_->on_abort(c);
  } catch (const std::exception& ex) {
    internal_errors("abort").inc();
    log::error(std::string("milter: abort callback failed: ") + ex.what());
  }
}

void Dispatcher::close(Context& c) {
  if (session_) {
    try {
      session_->on_close(c);
    } catch (const std::exception& ex) {
      internal_errors("close").inc();
      log::error(std::string("milter: close callback failed: ") + ex.what());
    }
  }
  session_.reset();
  clear_deferred();
}

}  // namespace mxguard::common::milter
