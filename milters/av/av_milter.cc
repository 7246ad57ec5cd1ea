// The mxguard-av milter (see av_milter.h). The only file of the daemon that includes
// libmilter's headers (for the SMFIF_/SMFIP_ flags it negotiates).
#include "milters/av/av_milter.h"

#include <libmilter/mfapi.h>
#include <strings.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <utility>

#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/util/host.h"
#include "common/util/strings.h"
#include "common/version.h"

namespace mxguard::milter::av {
namespace {

using common::milter::Context;
using common::milter::Status;
using Clock = std::chrono::steady_clock;

constexpr const char* kScannedName = "X-Virus-Scanned";
constexpr const char* kStatusName = "X-Virus-Status";

using mxguard::common::util::iequals;

common::metrics::Counter& messages(std::string_view verdict) {
  return common::metrics::Registry::global().counter(
      "mxguard_av_messages_total", "Messages by scan verdict", {{"verdict", std::string(verdict)}});
}
common::metrics::Counter& actions(std::string_view action) {
  return common::metrics::Registry::global().counter(
      "mxguard_av_actions_total", "Messages by action taken", {{"action", std::string(action)}});
}
common::metrics::Counter& errors(std::string_view kind) {
  return common::metrics::Registry::global().counter(
      "mxguard_av_clamd_errors_total", "Scans that failed, by kind", {{"kind", std::string(kind)}});
}
common::metrics::Counter& forged_removed() {
  return common::metrics::Registry::global().counter(
      "mxguard_av_incoming_headers_removed_total",
      "Incoming X-Virus-Scanned/X-Virus-Status headers replaced by ours");
}
common::metrics::Histogram& scan_seconds() {
  return common::metrics::Registry::global().histogram(
      "mxguard_av_scan_seconds", "Time from connecting to clamd to its verdict",
      common::metrics::latency_buckets());
}

class AvSession : public common::milter::Session {
 public:
  explicit AvSession(AvService& service) : service_(service) {}

  Status on_connect(Context&, const common::milter::ConnectInfo& info) override {
    client_ = info.address;
    return Status::kContinue;
  }

  Status on_mail_from(Context& c, const std::vector<std::string>& args) override {
    reset();
    config_ = service_.config();
    const Options& o = config_->options;
    auto auth = c.macro("{auth_authen}");
    if (o.skip_authenticated && auth && !auth->empty()) {
      skip_ = "authenticated";
    } else if (!client_.empty() && config_->skip_networks.contains(client_)) {
      skip_ = "network";
    } else if (!args.empty() && allow_listed(args[0], o.allow_senders)) {
      skip_ = "allow-list";
    }
    return Status::kContinue;
  }

  Status on_rcpt(Context&, const std::vector<std::string>& args) override {
    if (config_ && !args.empty() && !allow_listed(args[0], config_->options.allow_recipients)) {
      all_rcpts_allowed_ = false;
    }
    ++rcpts_;
    return Status::kContinue;
  }

  Status on_header(Context&, std::string_view name, std::string_view value) override {
    if (!config_) return Status::kContinue;
    if (iequals(name, kScannedName)) ++incoming_scanned_;
    if (iequals(name, kStatusName)) ++incoming_status_;
    std::string line;
    line.reserve(name.size() + value.size() + 4);
    line.append(name).append(": ").append(value).append("\r\n");
    stream(line);
    return Status::kContinue;
  }

  // No EOH callback (one round trip less per message): the blank line that ends the header
  // goes out with the first body chunk, or at end of message.
  Status on_body(Context&, std::string_view chunk) override {
    if (!config_) return Status::kContinue;
    end_header();
    stream(chunk);
    return Status::kContinue;
  }

  Status on_eom(Context& c) override {
    if (!config_) return Status::kAccept;
    std::string qid = c.queue_id();
    ScanOutcome outcome = finish_scan();
    Decision d = decide(outcome, config_->policy);
    if (d.add_status_header && config_->options.add_header) set_headers(c, outcome);
    Status st = Status::kTempfail;
    switch (d.action) {
      case Decision::Action::kAccept:
        st = Status::kAccept;
        break;
      case Decision::Action::kQuarantine:
        c.quarantine("mxguard-av: infected (" + sanitize_name(outcome.virus) + ")");
        st = Status::kAccept;
        break;
      case Decision::Action::kDiscard:
        st = Status::kDiscard;
        break;
      case Decision::Action::kReject:
      case Decision::Action::kTempfail:
        c.set_reply(d.rcode, d.xcode, d.text);
        st = d.action == Decision::Action::kReject ? Status::kReject : Status::kTempfail;
        break;
    }
    messages(outcome_name(outcome.kind)).inc();
    actions(action_name(d.action)).inc();
    log_decision(qid, outcome, d);
    reset();
    return st;
  }

  void on_abort(Context&) override { reset(); }

 private:
  void reset() {
    config_.reset();
    scan_.reset();
    server_.clear();
    skip_.clear();
    error_.clear();
    error_kind_.clear();
    started_ = false;
    body_started_ = false;
    pending_.clear();
    oversize_ = false;
    clamd_limit_ = false;
    all_rcpts_allowed_ = true;
    rcpts_ = 0;
    size_ = 0;
    incoming_scanned_ = incoming_status_ = 0;
    scan_ms_ = 0;
  }

  bool skipped() const {
    return !skip_.empty() ||
           (rcpts_ > 0 && all_rcpts_allowed_ && !config_->options.allow_recipients.empty());
  }

  void end_header() {
    if (body_started_) return;
    body_started_ = true;
    stream("\r\n");
  }

  // Message bytes go to clamd in chunks of at most --chunk-size. The connection is opened only
  // when a full chunk is ready or at end of message, so a small message (most mail) holds no
  // clamd thread while the client is still sending it, and memory stays at about one chunk.
  void stream(std::string_view data) {
    size_ += data.size();
    if (skipped() || oversize_ || !error_.empty()) return;
    if (size_ > config_->options.max_size.bytes) {
      oversize_ = true;
      scan_.reset();  // clamd sees the connection close and forgets the stream
      pending_.clear();
      return;
    }
    if (!scan_ && pending_.size() + data.size() <= config_->options.chunk_size.bytes) {
      pending_.append(data);
      return;
    }
    try {
      if (!scan_) open_scan();
      scan_->write(data);
    } catch (const ClamdError& ex) {
      fail(ex);
    }
  }

  // clamd refused the stream as longer than its StreamMaxLength. The same message would be
  // refused again on every retry until it bounced, so it takes --on-oversize like a message
  // over --max-size; the warning tells the admin which of the two limits to change.
  void clamd_size_limit(const std::string& detail) {
    oversize_ = true;
    clamd_limit_ = true;
    scan_.reset();
    pending_.clear();
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) {
      common::log::warning("clamd " + server_ + " refused a " + std::to_string(size_) +
                           "-byte stream (" + detail +
                           "): its StreamMaxLength is below max-size; such messages take "
                           "on-oversize (logged once)");
    }
  }

  // Connects (with failover) and sends what is pending.
  void open_scan() {
    started_ = true;
    start_ = Clock::now();
    auto s = config_->pool->start_scan();
    scan_ = std::move(s.scan);
    server_ = std::move(s.server);
    scan_->write(pending_);
    pending_.clear();
  }

  void fail(const ClamdError& ex) {
    if (ex.kind() == ClamdError::Kind::kSizeLimit) return clamd_size_limit(ex.what());
    error_ = ex.what();
    error_kind_ = std::string(error_kind_name(ex.kind()));
    if (!server_.empty() && ex.kind() != ClamdError::Kind::kProtocol) {
      config_->pool->report_failure(server_);
    }
    scan_.reset();
  }

  ScanOutcome finish_scan() {
    ScanOutcome o;
    if (skipped()) {
      o.kind = ScanOutcome::Kind::kSkipped;
      o.reason = skip_.empty() ? "allow-list" : skip_;
      return o;
    }
    end_header();  // a message without a body
    if (oversize_) {
      o.kind = ScanOutcome::Kind::kOversize;
      o.reason = clamd_limit_ ? "clamd-limit" : "max-size";
      return o;
    }
    if (error_.empty() && !scan_) {
      try {
        open_scan();
      } catch (const ClamdError& ex) {
        fail(ex);
      }
    }
    if (error_.empty() && scan_) {
      try {
        ClamdReply r = scan_->finish();
        scan_ms_ = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
        scan_seconds().observe(scan_ms_ / 1000.0);
        if (r.kind == ClamdReply::Kind::kClean) {
          o.kind = ScanOutcome::Kind::kClean;
        } else if (r.kind == ClamdReply::Kind::kInfected) {
          o.kind = ScanOutcome::Kind::kInfected;
          o.virus = r.virus;
        } else if (r.kind == ClamdReply::Kind::kSizeLimit) {
          clamd_size_limit(r.detail);
        } else {
          error_ = "clamd: " + r.detail;
          error_kind_ = "clamd";
        }
      } catch (const ClamdError& ex) {
        fail(ex);
      }
      scan_.reset();
    }
    if (oversize_) {  // clamd's own limit, found at the end of the stream
      o.kind = ScanOutcome::Kind::kOversize;
      o.reason = "clamd-limit";
      return o;
    }
    if (error_.empty() && o.kind != ScanOutcome::Kind::kClean &&
        o.kind != ScanOutcome::Kind::kInfected) {
      error_ = "no scan";
      error_kind_ = "internal";
    }
    if (!error_.empty()) {
      o.kind = ScanOutcome::Kind::kError;
      o.reason = error_kind_;
      errors(error_kind_).inc();
    }
    return o;
  }

  // Replaces every incoming X-Virus-* header with ours (deleting from the last instance so the
  // indexes stay valid), then puts ours on top.
  void set_headers(Context& c, const ScanOutcome& outcome) {
    // At most kMaxHeaderDeletions of each (a deletion is a round trip with the MTA); ours go
    // on top, where readers look first, and the rest of a flood stays below them.
    const int cap = common::milter::kMaxHeaderDeletions;
    if (incoming_scanned_ > cap || incoming_status_ > cap) {
      common::log::warning("av: " + std::to_string(incoming_scanned_ + incoming_status_) +
                           " incoming X-Virus-* headers; replacing the first " +
                           std::to_string(cap) + " of each");
    }
    for (int i = std::min(incoming_scanned_, cap); i >= 1; --i) c.delete_header(kScannedName, i);
    for (int i = std::min(incoming_status_, cap); i >= 1; --i) c.delete_header(kStatusName, i);
    if (incoming_scanned_ + incoming_status_ > 0) {
      forged_removed().inc(static_cast<std::uint64_t>(incoming_scanned_) +
                           static_cast<std::uint64_t>(incoming_status_));
    }
    c.insert_header(0, kStatusName, status_header(outcome));
    c.insert_header(0, kScannedName, config_->scanned_header);
  }

  void log_decision(const std::string& qid, const ScanOutcome& o, const Decision& d) {
    char ms[32];
    std::snprintf(ms, sizeof ms, "%.1fms", scan_ms_);
    std::string size = std::to_string(size_);
    std::string removed = std::to_string(incoming_scanned_ + incoming_status_);
    std::string virus = o.kind == ScanOutcome::Kind::kInfected ? sanitize_name(o.virus) : "";
    std::string reason =
        o.kind == ScanOutcome::Kind::kError                                               ? error_
        : o.kind == ScanOutcome::Kind::kSkipped || o.kind == ScanOutcome::Kind::kOversize ? o.reason
                                                                                          : "";
    std::string line =
        common::log::format_decision(qid, {{"verdict", outcome_name(o.kind)},
                                           {"action", action_name(d.action)},
                                           {"virus", virus.empty() ? "-" : virus},
                                           {"clamd", server_.empty() ? "-" : server_},
                                           {"scan_time", scan_ms_ > 0 ? ms : "-"},
                                           {"size", size},
                                           {"client", client_.empty() ? "local" : client_},
                                           {"reason", reason.empty() ? "-" : reason},
                                           {"incoming_headers_removed", removed}});
    common::log::write(o.kind == ScanOutcome::Kind::kError ? common::log::Level::kError
                                                           : common::log::Level::kInfo,
                       line);
  }

  AvService& service_;
  std::shared_ptr<const Config> config_;
  std::string client_;
  std::string skip_;
  bool all_rcpts_allowed_ = true;
  int rcpts_ = 0;
  bool started_ = false;
  bool body_started_ = false;
  bool oversize_ = false;
  bool clamd_limit_ = false;  // oversize_ because clamd said so, not --max-size
  std::string pending_;       // bytes before the first full chunk (no connection yet)
  std::unique_ptr<InstreamScan> scan_;
  std::string server_;
  std::string error_, error_kind_;
  std::uint64_t size_ = 0;
  int incoming_scanned_ = 0, incoming_status_ = 0;
  Clock::time_point start_{};
  double scan_ms_ = 0;
};

}  // namespace

std::shared_ptr<Config> make_config(const Options& o) {
  auto c = std::make_shared<Config>();
  c->options = o;
  c->policy.on_infected = parse_infected_action(o.on_infected);
  c->policy.on_error = parse_error_action(o.on_error);
  c->policy.on_oversize = parse_oversize_action(o.on_oversize);
  c->policy.reject_text = o.reject_text;
  c->skip_networks = common::net::NetworkList(o.skip_networks);
  c->scanned_header = scanned_header(
      mxguard::kVersion, o.header_host.empty() ? common::util::host_name() : o.header_host);
  PoolOptions po;
  for (const auto& s : o.clamd) po.servers.push_back(common::net::SocketSpec::parse(s));
  po.connect_timeout = o.connect_timeout.value;
  po.scan_timeout = o.scan_timeout.value;
  po.health_interval = o.health_interval.value;
  po.chunk_size = o.chunk_size.bytes;
  c->pool = std::make_unique<ClamdPool>(std::move(po));
  return c;
}

AvService::AvService(const Options& o) : config_(make_config(o)) {
  auto& mo = milter_options_;
  mo.name = "mxguard-av";
  mo.listen = o.daemon.listen;
  mo.actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE;
  mo.protocol = SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_NOEOH;
  mo.timeout_seconds = static_cast<int>(o.milter_timeout.seconds().count());
  mo.on_internal_error = common::milter::parse_failure_status(o.on_internal_error);
  o.engine.apply(mo);
  engine_ = o.engine;
  milter_ = std::make_unique<common::milter::Milter>(mo, [this] { return new_session(); });
}

AvService::~AvService() = default;

std::unique_ptr<common::milter::Session> AvService::new_session() {
  return std::make_unique<AvSession>(*this);
}

void AvService::start() {
  std::lock_guard lock(mutex_);
  serving_ = true;
  config_->pool->start_health_checks();
}

void AvService::finish() {
  std::lock_guard lock(mutex_);
  serving_ = false;
  config_->pool->stop_health_checks();
}

void AvService::add_health_checks(common::metrics::Health& health) {
  health.add("clamd", [this] {
    std::string down = config()->pool->all_down();
    return down.empty() ? common::metrics::Health::Result::good()
                        : common::metrics::Health::Result::bad(down);
  });
}

void AvService::open() { milter_->open(); }

void AvService::serve() {
  start();
  milter_->serve();
  finish();
}

void AvService::stop() { milter_->stop(); }

void AvService::reload(const Options& fresh) {
  auto c = make_config(fresh);  // throws: the running configuration stays
  std::shared_ptr<Config> old;
  {
    std::lock_guard lock(mutex_);
    if (serving_) c->pool->start_health_checks();
    old = std::exchange(config_, std::move(c));
  }
  // Outside the lock: joining may wait for a ping in flight (≤ --connect-timeout), and new
  // messages must not. Messages still holding the old Config keep its pool until they end.
  old->pool->stop_health_checks();
}

std::shared_ptr<const Config> AvService::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

}  // namespace mxguard::milter::av
