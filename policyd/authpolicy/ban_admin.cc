// Implementation of `mxguard-authpolicy ban` (see ban_admin.h).
#include "policyd/authpolicy/ban_admin.h"

#include <iostream>

#include "common/daemon/daemon.h"
#include "common/log/log.h"
#include "common/redis/errors.h"
#include "common/redis/pool.h"
#include "policyd/authpolicy/policy.h"

namespace mxguard::policyd::authpolicy {

void BanOptions::bind(common::config::Binder& b) {
  authpolicy.bind(b);
  b.add("duration", duration, "ban add: how long the block lasts (0 = block-time)");
}

void BanOptions::validate() const { authpolicy.validate(); }

std::string ban_usage() {
  return "commands:\n"
         "  list                        blocked addresses, networks and logins\n"
         "  add ip|net|login VALUE      block (for --duration, default block-time)\n"
         "  del ip|net|login VALUE      lift a block (counters stay)\n"
         "  flush                       lift every block\n";
}

std::string ban_subject(const std::string& kind, const std::string& value, const Options& o) {
  if (kind == "ip") {
    auto ip = common::net::IpAddress::parse(value);
    if (!ip) throw std::invalid_argument("'" + value + "' is not an IP address");
    return ip_key(*ip);
  }
  if (kind == "net") {
    auto cidr = common::net::Cidr::try_parse(value);
    if (!cidr) throw std::invalid_argument("'" + value + "' is not a network");
    // The daemon's network key: the configured prefix of the network's first address.
    auto first =
        common::net::IpAddress::parse(cidr->to_string().substr(0, cidr->to_string().find('/')));
    return net_key(*first, o.ipv4_prefix, o.ipv6_prefix);
  }
  if (kind == "login") return login_key(value);
  throw std::invalid_argument("kind must be ip, net or login");
}

int run_ban_command(const BanOptions& o, const std::vector<std::string>& args, std::ostream& out,
                    std::ostream& err, common::ratelimit::Clock clock) {
  if (args.empty()) {
    err << "usage: mxguard-authpolicy ban COMMAND\n" << ban_usage();
    return kBanUsage;
  }
  try {
    common::redis::Pool pool(o.authpolicy.redis);
    common::ratelimit::Limiter limiter(pool, std::move(clock));
    const std::string& cmd = args[0];
    if (cmd == "list" && args.size() == 1) {
      for (const auto& [subject, left] : limiter.blocked("ap:")) {
        // "ap:ip:1.2.3.4" → "ip 1.2.3.4"
        std::string rest = subject.substr(3);
        auto colon = rest.find(':');
        out << rest.substr(0, colon) << " " << rest.substr(colon + 1) << " "
            << (left.count() + 999) / 1000 << "s\n";
      }
      return kBanOk;
    }
    if (cmd == "flush" && args.size() == 1) {
      auto list = limiter.blocked("ap:");
      for (const auto& entry : list) limiter.unblock(entry.first);
      out << "lifted " << list.size() << " block(s)\n";
      return kBanOk;
    }
    if ((cmd == "add" || cmd == "del") && args.size() == 3) {
      std::string subject = ban_subject(args[1], args[2], o.authpolicy);
      if (cmd == "add") {
        auto d = o.duration.value.count() > 0 ? o.duration.value : o.authpolicy.block_time.value;
        limiter.block(subject, d);
        out << "blocked " << args[1] << " " << args[2] << " for " << d.count() / 1000 << "s\n";
        return kBanOk;
      }
      for (const auto& entry : limiter.blocked(subject)) {
        if (entry.first == subject) {
          limiter.unblock(subject);
          out << "unblocked " << args[1] << " " << args[2] << "\n";
          return kBanOk;
        }
      }
      err << args[1] << " " << args[2] << " is not blocked\n";
      return kBanNotFound;
    }
    err << "usage: mxguard-authpolicy ban COMMAND\n" << ban_usage();
    return kBanUsage;
  } catch (const std::invalid_argument& ex) {
    err << "mxguard-authpolicy ban: " << ex.what() << "\n";
    return kBanUsage;
  } catch (const common::redis::Error& ex) {
    err << "mxguard-authpolicy ban: Redis unavailable: " << ex.what() << "\n";
    return kBanUnavailable;
  }
}

int ban_main(int argc, const char* const* argv) {
  const common::config::ProgramInfo info{
      "mxguard-authpolicy ban", "see and change mxguard-authpolicy's blocks",
      "/etc/mxguard/authpolicy.conf", "list | add KIND VALUE | del KIND VALUE | flush"};
  BanOptions opts;
  common::config::Request req;
  if (int rc = common::daemon::parse_options(info, opts, argc, argv, &req); rc >= 0) {
    if (rc == 0 && req.action == common::config::Request::Action::kHelp) {
      std::cout << "\n" << ban_usage();
    }
    return rc;
  }
  common::log::init("mxguard-authpolicy", common::log::Target::kStderr, common::log::Level::kError);
  return run_ban_command(opts, req.positional, std::cout, std::cerr);
}

}  // namespace mxguard::policyd::authpolicy
