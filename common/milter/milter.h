// The milter side of mxguard: one Session object per SMTP connection with virtual callbacks, a
// Context for macros and message modifications, and one exception barrier per callback
// (dispatch.h) that turns any std::exception into the configured failure reply plus a log line
// and a metric. Two engines speak the protocol to the MTA: libmilter (milter.cc; it keeps global
// state, so one such Milter per process) and our own (engine.h). Must never let an exception
// cross into an engine, and never turn a failure into an accept unless the daemon's
// configuration says so.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/authres/authres.h"

namespace mxguard::common::metrics {
class Health;
}

namespace mxguard::common::milter {

// Most header deletions (one smfi_chgheader each) a filter makes for one message: a sender
// who adds ten thousand forged headers must not buy ten thousand round trips with the MTA.
inline constexpr int kMaxHeaderDeletions = 32;

// What a callback tells the MTA. kSkip (skip the rest of the body) is sent only if the MTA
// offered it, otherwise it degrades to kContinue.
enum class Status { kContinue, kAccept, kReject, kDiscard, kTempfail, kSkip };

// Parses "accept|tempfail|reject|discard" (configuration values); throws std::invalid_argument.
Status parse_failure_status(std::string_view text);
std::string_view status_name(Status s);

// Access to the MTA during one callback. Only valid inside that callback. Each engine supplies
// the primitives (libmilter's smfi_* calls in milter.cc, our own wire protocol in wire.cc); the
// checks and the error on failure are the same for both.
class Context {
 public:
  virtual ~Context() = default;

  // A macro such as "i" (queue id), "{auth_authen}", "{client_addr}", "{daemon_name}".
  std::optional<std::string> macro(const std::string& name) const;
  // The Postfix queue id, or empty (then log lines say NOQUEUE).
  std::string queue_id() const;

  // SMTP reply for a reject or tempfail: rcode "550", xcode "5.7.1", one-line text.
  void set_reply(const std::string& rcode, const std::string& xcode, const std::string& text);

  // Modifications, allowed at end of message only (libmilter's rule). Throw on failure.
  void add_header(const std::string& name, const std::string& value);
  void insert_header(int index, const std::string& name, const std::string& value);
  // Replaces the index-th (1-based) header of that name; an empty value deletes it.
  void change_header(const std::string& name, int index, const std::string& value);
  void delete_header(const std::string& name, int index) { change_header(name, index, ""); }
  void quarantine(const std::string& reason);
  void progress();  // keeps the MTA from timing out during a long operation

  // In a chain that negotiated SMFIP_HDR_LEADSPC for another filter: header values this
  // filter writes get the space the MTA would otherwise put after the colon.
  void set_leading_space(bool on) { leading_space_ = on; }

 protected:
  // The engine's primitives; false when the MTA-side rules refuse (libmilter's MI_FAILURE).
  virtual const char* symbol(const std::string& name) const = 0;
  virtual bool mta_set_reply(const std::string& rcode, const std::string& xcode,
                             const std::string& text) = 0;
  virtual bool mta_add_header(const std::string& name, const std::string& value) = 0;
  virtual bool mta_insert_header(int index, const std::string& name, const std::string& value) = 0;
  // An empty value deletes the header.
  virtual bool mta_change_header(const std::string& name, int index, const std::string& value) = 0;
  virtual bool mta_quarantine(const std::string& reason) = 0;
  virtual void mta_progress() = 0;

 private:
  std::string spaced(const std::string& value) const;

  bool leading_space_ = false;
};

struct ConnectInfo {
  std::string hostname;  // as the MTA resolved it, "[1.2.3.4]" when unknown
  std::string address;   // literal IP, empty for non-IP (e.g. local submission)
  int port = 0;
};

// What the filters of one mxguard-milter chain hand each other for the current message, as
// typed values in process (common/milter/chain.h): never through headers, so no filter has to
// tell its neighbour's header from a forged one. A filter in its own daemon has none.
struct MessageResults {
  // Authentication-Results entries of this hop, in filter order; the chain writes them as one
  // header at the end of the message.
  std::string authserv_id;  // of the first filter that added an entry
  std::vector<authres::Result> authres;
  bool dkim_verified = false;  // a dkim filter verified this message: its entries are above
  bool forged_authres_removed = false;  // a filter deleted the forged A-R headers already
  void clear() { *this = MessageResults{}; }
};

class Session {
 public:
  virtual ~Session() = default;
  // In a chain: the message's shared results (valid for the session's lifetime).
  void attach(MessageResults* shared) { shared_ = shared; }
  virtual Status on_connect(Context&, const ConnectInfo&) { return Status::kContinue; }
  virtual Status on_helo(Context&, std::string_view /*helo*/) { return Status::kContinue; }
  // args[0] is the address in angle brackets as sent; the rest are ESMTP parameters.
  virtual Status on_mail_from(Context&, const std::vector<std::string>& /*args*/) {
    return Status::kContinue;
  }
  virtual Status on_rcpt(Context&, const std::vector<std::string>& /*args*/) {
    return Status::kContinue;
  }
  virtual Status on_header(Context&, std::string_view /*name*/, std::string_view /*value*/) {
    return Status::kContinue;
  }
  virtual Status on_eoh(Context&) { return Status::kContinue; }
  virtual Status on_body(Context&, std::string_view /*chunk*/) { return Status::kContinue; }
  virtual Status on_eom(Context&) { return Status::kContinue; }
  // The current message was aborted (RSET, lost client); reset per-message state.
  virtual void on_abort(Context&) {}
  virtual void on_close(Context&) {}

 protected:
  MessageResults* shared_ = nullptr;  // nullptr: a daemon of its own (write our own headers)
};

struct MilterOptions {
  std::string name = "mxguard";
  std::string listen;  // Postfix syntax; converted to libmilter's
  // What we may do (SMFIF_*) and which protocol steps we want (SMFIP_* "no"/"leading space").
  unsigned long actions = 0;
  unsigned long protocol = 0;
  int timeout_seconds = 300;  // libmilter's I/O timeout towards the MTA
  int backlog = 64;
  unsigned socket_mode = 0660;
  // Ask the MTA not to wait for our reply (SMFIP_NR_*) to connect, HELO, MAIL FROM, each
  // header, end of headers and body chunks when it offers that: one round trip less each. A
  // callback's failure or non-continue answer there takes effect at the next step that is
  // answered (RCPT, or end of message at the latest); RCPT stays answered (its reject is per
  // recipient). Only on unix sockets: on TCP the MTA's unanswered small writes meet Nagle and
  // our delayed ACK.
  bool no_reply = true;
  // The outcome when a callback throws: tempfail ("451 4.3.0") unless configured otherwise.
  Status on_internal_error = Status::kTempfail;
  std::string error_text = "Temporary internal error, try again later";
  // Which implementation of the milter protocol serves the socket: libmilter (a thread per
  // connection, one per process) or our own (engine.h: Asio, a bounded pool of threads).
  enum class Engine { kLibmilter, kMxguard };
  Engine engine = Engine::kLibmilter;
  unsigned engine_threads = 16;  // kMxguard: callbacks that run at once (each may block)
};

// Parses "libmilter|mxguard"; throws std::invalid_argument.
MilterOptions::Engine parse_engine(std::string_view text);

// A filter as a module: what one job (DKIM, DMARC, AV) needs of the MTA and a session per
// connection, with no socket of its own. Each milter's Service is one: its daemon serves it
// alone on its own socket (Milter), mxguard-milter serves several in one chain (chain.h).
class Filter {
 public:
  virtual ~Filter() = default;
  // Its name, actions (SMFIF_*), protocol steps (SMFIP_*: NO* for steps it does not need,
  // HDR_LEADSPC), timeout and outcome of an internal error.
  virtual const MilterOptions& milter_options() const = 0;
  virtual std::unique_ptr<Session> new_session() = 0;
  // Whether it takes connections without a client address: Postfix's non_smtpd_milters (local
  // submissions through sendmail(1)). In a chain the others sit those out, as mxguard-setup
  // wires only the signer there in the separate-daemon shape.
  virtual bool wants_non_smtp() const { return false; }
  // Threads the filter runs (resolver, health checks): started after privileges are dropped,
  // stopped after the last session ended.
  virtual void start() {}
  virtual void finish() {}
  // Its /healthz checks (common/metrics/health.h): one per dependency it cannot work without.
  // A filter that is also a daemon's service adds the same checks in both shapes.
  virtual void add_health_checks(metrics::Health& health) { (void)health; }
};

class Engine;

class Milter {
 public:
  using Factory = std::function<std::unique_ptr<Session>(void)>;
  Milter(MilterOptions options, Factory factory);
  ~Milter();
  Milter(const Milter&) = delete;
  Milter& operator=(const Milter&) = delete;

  // Creates the socket (as root); with libmilter also registers with it. Throws.
  void open();
  // Serves until stop() (libmilter: also until SIGTERM/SIGINT, which it catches itself).
  void serve();
  void stop();

  const MilterOptions& options() const { return options_; }
  bool listens_on_tcp() const { return tcp_; }
  const Factory& factory() const { return factory_; }

 private:
  MilterOptions options_;
  bool tcp_ = false;  // set by open()
  Factory factory_;
  std::unique_ptr<Engine> engine_;  // Engine::kMxguard
};

}  // namespace mxguard::common::milter
