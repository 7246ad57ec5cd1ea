// The filter chain of mxguard-milter (see chain.h).
#include "common/milter/chain.h"

#include <libmilter/mfapi.h>

#include <algorithm>

#include "common/log/log.h"
#include "common/metrics/metrics.h"

namespace mxguard::common::milter {
namespace {

// The steps a filter can decline (SMFIP_NO*); a chain skips one only when every filter does.
constexpr unsigned long kNoSteps = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT |
                                   SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOUNKNOWN |
                                   SMFIP_NODATA;

metrics::Counter& filter_errors(std::string_view filter, const char* stage) {
  return metrics::Registry::global().counter(
      "mxguard_milter_filter_errors_total",
      "Callbacks of a filter in the mxguard-milter chain that failed with an internal error",
      {{"filter", std::string(filter)}, {"stage", stage}});
}

const char* stage_name(int step) {
  static const char* const names[] = {"connect", "helo", "mail", "rcpt",
                                      "header",  "eoh",  "body", "eom"};
  return names[step];
}

}  // namespace

MilterOptions chain_options(MilterOptions base, const std::vector<Filter*>& filters) {
  unsigned long no_steps = kNoSteps;
  base.actions = 0;
  base.protocol = 0;
  for (const Filter* f : filters) {
    const MilterOptions& o = f->milter_options();
    base.actions |= o.actions;
    no_steps &= o.protocol;
    base.protocol |= o.protocol & SMFIP_HDR_LEADSPC;
    base.timeout_seconds = std::max(base.timeout_seconds, o.timeout_seconds);
  }
  base.protocol |= no_steps;
  return base;
}

ChainSession::ChainSession(const std::vector<Filter*>& filters) {
  for (Filter* f : filters) {
    Link l{f, f->new_session(), f->milter_options().protocol};
    l.session->attach(&results_);
    leading_space_ |= (l.protocol & SMFIP_HDR_LEADSPC) != 0;
    links_.push_back(std::move(l));
  }
}

bool ChainSession::wants(const Link& l, Step step) const {
  if (l.done_connection) return false;
  switch (step) {
    case Step::kConnect:
      return (l.protocol & SMFIP_NOCONNECT) == 0;
    case Step::kHelo:
      return (l.protocol & SMFIP_NOHELO) == 0;
    case Step::kMail:
      return (l.protocol & SMFIP_NOMAIL) == 0;
    case Step::kRcpt:
      return !l.done_message && (l.protocol & SMFIP_NORCPT) == 0;
    case Step::kHeader:
      return !l.done_message && (l.protocol & SMFIP_NOHDRS) == 0;
    case Step::kEoh:
      return !l.done_message && (l.protocol & SMFIP_NOEOH) == 0;
    case Step::kBody:
      return !l.done_message && !l.skip_body && (l.protocol & SMFIP_NOBODY) == 0;
    case Step::kEom:
      return !l.done_message;
  }
  return false;
}

// As the daemon's exception barrier does (milter.cc), but with this filter's outcome: a log
// line with the filter's name, a metric, and the reply. An accept outcome lets the message go
// on without this filter (the other filters still run), as the filter's daemon would accept it.
Status ChainSession::failed(Context& c, Link& l, const char* stage, const char* what) {
  const MilterOptions& o = l.filter->milter_options();
  std::string qid;
  try {
    qid = c.queue_id();
  } catch (...) {
    // Reading a macro failed as well; the line still goes out with NOQUEUE.
  }
  filter_errors(o.name, stage).inc();
  log::error(log::format_decision(qid, {{"filter", o.name},
                                        {"stage", stage},
                                        {"action", status_name(o.on_internal_error)},
                                        {"reason", what}}));
  switch (o.on_internal_error) {
    case Status::kTempfail:
      c.set_reply("451", "4.3.0", o.error_text);
      return Status::kTempfail;
    case Status::kReject:
      c.set_reply("550", "5.7.0", o.error_text);
      return Status::kReject;
    case Status::kDiscard:
      return Status::kDiscard;
    default:
      l.done_message = true;
      return Status::kContinue;
  }
}

template <class F>
Status ChainSession::run(Context& c, Step step, F&& fn) {
  const char* stage = stage_name(static_cast<int>(step));
  for (Link& l : links_) {
    if (!wants(l, step)) continue;
    // Header values this filter writes get the space its own negotiation would have had.
    c.set_leading_space(leading_space_ && (l.protocol & SMFIP_HDR_LEADSPC) == 0);
    Status s;
    try {
      s = fn(l);
    } catch (const std::exception& ex) {
      s = failed(c, l, stage, ex.what());
    } catch (...) {
      s = failed(c, l, stage, "unknown exception");
    }
    c.set_leading_space(false);
    switch (s) {
      case Status::kContinue:
        break;
      case Status::kSkip:
        if (step == Step::kBody) l.skip_body = true;
        break;
      case Status::kAccept:
        // Accepting ends this filter's part: of the connection before MAIL FROM, else of the
        // message (then the others still see it).
        if (step == Step::kConnect || step == Step::kHelo) {
          l.done_connection = true;
        } else {
          l.done_message = true;
        }
        break;
      case Status::kReject:
      case Status::kTempfail:
      case Status::kDiscard:
        return s;  // for the recipient at RCPT, else for the message or connection
    }
  }
  return Status::kContinue;
}

void ChainSession::new_message() {
  results_.clear();
  for (Link& l : links_) l.done_message = l.skip_body = false;
}

Status ChainSession::on_connect(Context& c, const ConnectInfo& info) {
  // No client address: a local submission (non_smtpd_milters). Only the filters that sign
  // take part, as in the separate-daemon shape; a scanner or DMARC never holds local mail up.
  if (info.address.empty()) {
    for (Link& l : links_) l.done_connection = !l.filter->wants_non_smtp();
  }
  return run(c, Step::kConnect, [&](Link& l) { return l.session->on_connect(c, info); });
}

Status ChainSession::on_helo(Context& c, std::string_view helo) {
  return run(c, Step::kHelo, [&](Link& l) { return l.session->on_helo(c, helo); });
}

Status ChainSession::on_mail_from(Context& c, const std::vector<std::string>& args) {
  new_message();
  return run(c, Step::kMail, [&](Link& l) { return l.session->on_mail_from(c, args); });
}

Status ChainSession::on_rcpt(Context& c, const std::vector<std::string>& args) {
  return run(c, Step::kRcpt, [&](Link& l) { return l.session->on_rcpt(c, args); });
}

Status ChainSession::on_header(Context& c, std::string_view name, std::string_view value) {
  return run(c, Step::kHeader, [&](Link& l) {
    // The MTA eats one space (not a tab) after the colon for a filter without HDR_LEADSPC.
    std::string_view v = value;
    if (leading_space_ && (l.protocol & SMFIP_HDR_LEADSPC) == 0 && !v.empty() && v.front() == ' ')
      v.remove_prefix(1);
    return l.session->on_header(c, name, v);
  });
}

Status ChainSession::on_eoh(Context& c) {
  return run(c, Step::kEoh, [&](Link& l) { return l.session->on_eoh(c); });
}

Status ChainSession::on_body(Context& c, std::string_view chunk) {
  Status s = run(c, Step::kBody, [&](Link& l) { return l.session->on_body(c, chunk); });
  if (s != Status::kContinue) return s;
  // Nobody left who wants the rest of the body: the MTA may skip it (if it offered SKIP).
  for (const Link& l : links_) {
    if (wants(l, Step::kBody)) return Status::kContinue;
  }
  return Status::kSkip;
}

Status ChainSession::on_eom(Context& c) {
  Status s = run(c, Step::kEom, [&](Link& l) { return l.session->on_eom(c); });
  if (s == Status::kContinue && !results_.authres.empty()) {
    // The filters' results, as one header on top (RFC 8601 §5: the newest first).
    authres::Builder b(results_.authserv_id);
    for (const auto& r : results_.authres) b.add(r);
    c.set_leading_space(leading_space_);
    try {
      c.insert_header(0, "Authentication-Results", b.value(true));
    } catch (...) {
      c.set_leading_space(false);
      throw;  // the daemon's barrier: the chain's own on-internal-error outcome
    }
    c.set_leading_space(false);
  }
  results_.clear();
  return s == Status::kContinue ? Status::kAccept : s;
}

void ChainSession::on_abort(Context& c) {
  for (Link& l : links_) {
    if (l.done_connection) continue;
    try {
      l.session->on_abort(c);
    } catch (const std::exception& ex) {
      filter_errors(l.filter->milter_options().name, "abort").inc();
      log::error(l.filter->milter_options().name + ": abort: " + ex.what());
    }
  }
  new_message();
}

void ChainSession::on_close(Context& c) {
  for (Link& l : links_) {
    try {
      l.session->on_close(c);
    } catch (const std::exception& ex) {
      filter_errors(l.filter->milter_options().name, "close").inc();
      log::error(l.filter->milter_options().name + ": close: " + ex.what());
    }
  }
}

}  // namespace mxguard::common::milter
