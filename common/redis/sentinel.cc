// Implementation of Sentinel (see sentinel.h). Logs only master changes, never per connect.
#include "common/redis/sentinel.h"

#include <stdexcept>

#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/redis/errors.h"

namespace mxguard::common::redis {
namespace {

metrics::Gauge& master_gauge(const std::string& name, const std::string& address) {
  return metrics::Registry::global().gauge(
      "mxguard_redis_sentinel_master",
      "1 for the Redis master the sentinels named last, 0 for earlier ones",
      {{"master", name}, {"address", address}});
}

}  // namespace

std::string Sentinel::Address::text() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

Sentinel::Sentinel(const Url& url, const ClientOptions& options) : url_(url), options_(options) {
  if (url_.transport != Url::Transport::kSentinel || url_.sentinels.empty()) {
    throw std::invalid_argument("Sentinel needs a sentinel:// url");
  }
  if (options_.report_state) {
    metrics::Registry::global()
        .counter("mxguard_redis_failovers_total",
                 "Redis master address changes the sentinels reported",
                 {{"master", url_.master_name}})
        .inc(0);
  }
}

Sentinel::Address Sentinel::ask_sentinels() {
  std::size_t first = 0;
  {
    std::lock_guard lock(mutex_);
    first = preferred_;
  }
  std::string errors;
  for (std::size_t i = 0; i < url_.sentinels.size(); ++i) {
    std::size_t index = (first + i) % url_.sentinels.size();
    const Url::Endpoint& endpoint = url_.sentinels[index];
    Url sentinel;
    sentinel.host = endpoint.host;
    sentinel.port = endpoint.port;
    sentinel.user = url_.sentinel_user;
    sentinel.password = url_.sentinel_password;
    try {
      Connection connection(sentinel, options_);
      Reply reply = connection.command({"SENTINEL", "get-master-addr-by-name", url_.master_name});
      if (reply.is_nil()) {
        errors += "; " + sentinel.redacted() + " does not know master '" + url_.master_name + "'";
        continue;
      }
      const auto& pair = reply.as_array();
      if (pair.size() != 2) {
        detail::throw_protocol("SENTINEL get-master-addr-by-name returned " +
                               std::to_string(pair.size()) + " elements");
      }
      Address address{pair[0].as_string(), std::stoi(pair[1].as_string())};
      if (address.port < 1 || address.port > 65535 || address.host.empty()) {
        detail::throw_protocol("sentinel named an invalid master address " + address.text());
      }
      std::lock_guard lock(mutex_);
      preferred_ = index;
      return address;
    } catch (const ReplyError&) {
      throw;  // a refusal (wrong sentinel password) is a configuration error: say so at once
    } catch (const std::exception& e) {
      errors += "; " + sentinel.redacted() + ": " + e.what();
    }
  }
  detail::throw_io("no sentinel named a master for '" + url_.master_name + "'" + errors);
}

std::unique_ptr<Connection> Sentinel::connect_master() {
  Address address = ask_sentinels();
  auto connection =
      std::make_unique<Connection>(url_.with_master(address.host, address.port), options_);
  // Between a failover and the sentinels' update, or after a demotion, the named node may be a
  // replica: never send it a write.
  Reply role = connection->command({"ROLE"});
  const auto& fields = role.as_array();
  std::string kind = fields.empty() ? "" : fields.front().as_string();
  if (kind != "master") {
    detail::throw_io("redis " + address.text() + " named master of '" + url_.master_name +
                     "' reports role '" + kind + "' (failover in progress?)");
  }
  seen_master(address);
  return connection;
}

void Sentinel::seen_master(const Address& address) {
  std::string text = address.text();
  std::lock_guard lock(mutex_);
  if (text == master_) {
    return;
  }
  if (!options_.report_state) {
    if (!master_.empty()) ++failovers_;
  } else if (master_.empty()) {
    log::info("redis sentinel: master '" + url_.master_name + "' is at " + text);
  } else {
    ++failovers_;
    master_gauge(url_.master_name, master_).set(0);
    metrics::Registry::global()
        .counter("mxguard_redis_failovers_total",
                 "Redis master address changes the sentinels reported",
                 {{"master", url_.master_name}})
        .inc();
    log::warning("redis sentinel: master '" + url_.master_name + "' moved from " + master_ +
                 " to " + text + " (failover)");
  }
  master_ = text;
  if (options_.report_state) master_gauge(url_.master_name, master_).set(1);
}

std::string Sentinel::master() const {
  std::lock_guard lock(mutex_);
  return master_;
}

std::uint64_t Sentinel::failovers() const {
  std::lock_guard lock(mutex_);
  return failovers_;
}

}  // namespace mxguard::common::redis
