// `mxguard-authpolicy ban list|add|del|flush`: see and change the blocks the daemon keeps in
// Redis (docs/ARCHITECTURE.md, "Redis keys": rl:{ap:…}), with the daemon's own key functions.
// Must never use KEYS (SCAN only), and never touch a key outside the daemon's prefix.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "common/config/config.h"
#include "common/ratelimit/ratelimit.h"
#include "policyd/authpolicy/options.h"

namespace mxguard::policyd::authpolicy {

constexpr int kBanOk = 0;
constexpr int kBanNotFound = 1;
constexpr int kBanUsage = 64;
constexpr int kBanUnavailable = 69;

// The daemon's options (same config file: same Redis and prefix) plus the tool's own.
struct BanOptions {
  Options authpolicy;
  common::config::Duration duration{};  // add --duration; 0 = --block-time

  void bind(common::config::Binder& b);
  void validate() const;
};

std::string ban_usage();

// The subject key for KIND VALUE (ip ADDRESS, net CIDR, login NAME); throws
// std::invalid_argument.
std::string ban_subject(const std::string& kind, const std::string& value, const Options& o);

int run_ban_command(const BanOptions& o, const std::vector<std::string>& args, std::ostream& out,
                    std::ostream& err,
                    common::ratelimit::Clock clock = common::ratelimit::system_clock_ms);

// main() of `mxguard-authpolicy ban …` (argv[0] is "ban").
int ban_main(int argc, const char* const* argv);

}  // namespace mxguard::policyd::authpolicy
