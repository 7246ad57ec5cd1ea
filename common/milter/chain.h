// An ordered chain of filters behind one milter connection (mxguard-milter): one session per
// SMTP connection that runs each filter's own session in turn, so Postfix opens one milter
// connection per SMTP session instead of one per filter. Each step goes only to the filters
// that asked for it (a filter's SMFIP_NO* flags; the body to none that does not want it); a
// filter's accept ends its part of the message (or of the connection, at connect and HELO);
// its reject, tempfail or discard ends the step for all. A filter's exception takes that
// filter's own on-internal-error outcome, as its daemon would, with a log line naming it. A
// connection without a client address (a local submission) goes only to the filters that want
// those (Filter::wants_non_smtp: the signer).
// Results pass between the filters as typed values (MessageResults), and the chain writes
// their one Authentication-Results header at the end of the message.
// Must never let one filter's failure pass a message unchecked by another filter, and never
// call a filter for a step it did not ask for.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/milter/milter.h"

namespace mxguard::common::milter {

// The MTA-facing options of a chain: every filter's actions, the union of the steps they need
// (a step is skipped only when no filter wants it), header values with their leading space when
// any filter wants them so. Name, listen, timeout and the chain's own internal-error outcome
// come from `base`.
MilterOptions chain_options(MilterOptions base, const std::vector<Filter*>& filters);

class ChainSession : public Session {
 public:
  explicit ChainSession(const std::vector<Filter*>& filters);

  Status on_connect(Context& c, const ConnectInfo& info) override;
  Status on_helo(Context& c, std::string_view helo) override;
  Status on_mail_from(Context& c, const std::vector<std::string>& args) override;
  Status on_rcpt(Context& c, const std::vector<std::string>& args) override;
  Status on_header(Context& c, std::string_view name, std::string_view value) override;
  Status on_eoh(Context& c) override;
  Status on_body(Context& c, std::string_view chunk) override;
  Status on_eom(Context& c) override;
  void on_abort(Context& c) override;
  void on_close(Context& c) override;

 private:
  struct Link {
    Filter* filter;
    std::unique_ptr<Session> session;
    unsigned long protocol;        // the filter's SMFIP_* flags
    bool done_connection = false;  // accepted at connect/HELO: nothing more this connection
    bool done_message = false;     // accepted (or skipped by its failure action) this message
    bool skip_body = false;        // answered kSkip to a body chunk
  };
  enum class Step { kConnect, kHelo, kMail, kRcpt, kHeader, kEoh, kBody, kEom };

  // Runs fn on every link that takes `step`; returns the first non-continue answer that ends
  // the step for all.
  template <class F>
  Status run(Context& c, Step step, F&& fn);
  bool wants(const Link& l, Step step) const;
  Status failed(Context& c, Link& l, const char* stage, const char* what);
  void new_message();

  std::vector<Link> links_;
  MessageResults results_;
  bool leading_space_ = false;  // the chain asked for header values with their leading space
};

}  // namespace mxguard::common::milter
