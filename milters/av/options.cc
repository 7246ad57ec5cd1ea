// Binding and validation of mxguard-av's options (see options.h).
#include "milters/av/options.h"

#include "common/config/checks.h"
#include "common/net/ip.h"
#include "common/net/socket_spec.h"
#include "milters/av/verdict.h"

namespace mxguard::milter::av {

void Options::bind(common::config::Binder& b) {
  daemon.bind(b);
  b.add("clamd", clamd, "clamd servers in order of preference: unix:/path or inet:host:port");
  b.add("connect-timeout", connect_timeout, "time to connect to clamd (and to answer zPING)");
  b.add("scan-timeout", scan_timeout,
        "longest wait on clamd: each chunk sent, and the verdict after the end of message");
  b.add("health-interval", health_interval, "every clamd server is sent zPING this often");
  b.add("chunk-size", chunk_size, "INSTREAM chunk size (memory per message stays about this)");
  b.add("max-size", max_size, "larger messages are not scanned (see on-oversize)");
  b.add("on-infected", on_infected, "infected message: reject|discard|quarantine|accept");
  b.add("reject-text", reject_text, "text of the 550 5.7.1 reply for infected mail; %v = virus");
  b.add("on-error", on_error, "clamd down, slow or answering garbage: tempfail|accept");
  b.add("on-oversize", on_oversize, "message larger than max-size: accept|tempfail|reject");
  b.add("add-header", add_header, "add X-Virus-Scanned and X-Virus-Status (replacing incoming)");
  b.add("header-host", header_host, "host named in X-Virus-Scanned (empty: this host's name)");
  b.add("skip-authenticated", skip_authenticated,
        "do not scan mail from SASL-authenticated clients");
  b.add("skip-networks", skip_networks, "do not scan mail from these client networks (CIDR)");
  b.add("allow-senders", allow_senders,
        "do not scan mail from these senders: user@domain, domain, .domain (subdomains)");
  b.add("allow-recipients", allow_recipients,
        "do not scan mail whose recipients are all in this list (same forms)");
  b.add("on-internal-error", on_internal_error, "an internal error: accept|tempfail|reject");
  b.add("milter-timeout", milter_timeout, "I/O timeout towards the MTA");
  engine.bind(b);
}

void Options::validate() const {
  using common::config::OptionError;
  daemon.validate();
  if (clamd.empty()) throw OptionError("clamd", "at least one clamd server");
  for (const auto& c : clamd) {
    try {
      common::net::SocketSpec::parse(c);
    } catch (const std::invalid_argument& ex) {
      throw OptionError("clamd", c + ": " + ex.what());
    }
  }
  common::config::require_networks("skip-networks", skip_networks);
  for (auto [name, list] : {std::pair{"allow-senders", &allow_senders},
                            std::pair{"allow-recipients", &allow_recipients}}) {
    for (const auto& e : *list) {
      if (!valid_allow_entry(e)) throw OptionError(name, "not an address or domain: " + e);
    }
  }
  try {
    parse_infected_action(on_infected);
  } catch (const std::invalid_argument& ex) {
    throw OptionError("on-infected", ex.what());
  }
  common::config::require_parses("on-error", on_error, parse_error_action);
  common::config::require_parses("on-oversize", on_oversize, parse_oversize_action);
  common::config::require_one_of("on-internal-error", on_internal_error,
                                 {"accept", "tempfail", "reject"});
  for (char c : reject_text) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      throw OptionError("reject-text", "printable ASCII on one line only");
    }
  }
  if (reject_text.size() > 400) throw OptionError("reject-text", "at most 400 characters");
  if (chunk_size.bytes < 1024 || chunk_size.bytes > std::uint64_t{16} * 1024 * 1024) {
    throw OptionError("chunk-size", "1k to 16M");
  }
  if (max_size.bytes < chunk_size.bytes) throw OptionError("max-size", "at least chunk-size");
  if (connect_timeout.value.count() < 10 || connect_timeout.value.count() > 60000) {
    throw OptionError("connect-timeout", "10ms to 60s");
  }
  if (scan_timeout.value.count() < 100 || scan_timeout.value.count() > 600000) {
    throw OptionError("scan-timeout", "100ms to 10m");
  }
  if (health_interval.value.count() < 100) throw OptionError("health-interval", "at least 100ms");
  if (milter_timeout.value.count() < 1000) throw OptionError("milter-timeout", "at least 1s");
  engine.validate();
}

}  // namespace mxguard::milter::av
