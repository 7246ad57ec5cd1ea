// mxguard-demo: the one-command demo stack. Starts, on loopback only and in a private temp
// directory, a Redis, mxguard-policyd and a private Postfix on 127.0.0.1:2525 wired to it,
// sends real mail with swaks, and prints what happened to each message. Never touches the
// system's Postfix or Redis; stops exactly what it started unless --keep is given.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "tests/fixtures/policy_client.h"
#include "tests/fixtures/postfix.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/redis_server.h"

namespace {

using namespace std::chrono_literals;
namespace t = mxguard::testing;

struct Outcome {
  std::string scenario;
  std::string expected;
  std::string got;
  bool ok;
};

std::string describe(const t::SwaksResult& r) {
  if (r.exit_code == 0) return "accepted (" + std::to_string(r.data_code) + ")";
  if (r.rcpt_code != 0 && r.rcpt_code != 250) {
    return (r.rcpt_code / 100 == 4 ? "deferred at RCPT (" : "rejected at RCPT (") +
           std::to_string(r.rcpt_code) + ")";
  }
  if (r.data_code != 0) {
    return (r.data_code / 100 == 4 ? "deferred after DATA (" : "rejected after DATA (") +
           std::to_string(r.data_code) + ")";
  }
  return "failed (swaks exit " + std::to_string(r.exit_code) + ")";
}

int run(bool keep) {
  const std::string build = MXGUARD_BINARY_DIR;
  std::cout << "mxguard demo: starting Redis, mxguard-policyd and Postfix on loopback…\n";
  t::RedisServer redis;
  t::TempDir dir;
  if (keep) dir.keep();
  int policy_port = t::free_tcp_port();
  t::write_file(dir / "policyd.conf",
                "listen = inet:127.0.0.1:" + std::to_string(policy_port) + "\n" +
                    "redis-url = " + redis.url() + "\n"
                    "trusted-networks = 127.0.0.1/32, ::1\n"
                    "greylist-delay = 5s\n"
                    "greylist-whitelist-clients = /dev/null\n"
                    "greylist-whitelist-recipients = /dev/null\n"
                    "greylist-hostname = mx.mxguard.test\n");
  t::Process policyd({build + "/policyd/mxguard-policyd", "--foreground", "--log-target",
                      "stderr", "-c", (dir / "policyd.conf").string()},
                     dir / "mxguard-policyd.log");
  if (!t::wait_for_tcp("127.0.0.1", policy_port, 10s)) {
    std::cerr << "mxguard-policyd did not start:\n" << policyd.log();
    return 1;
  }
  t::PostfixInstance::Options po;
  po.listen_addresses = {"127.0.0.1", "127.0.0.2"};
  po.smtp_port = 2525;
  po.policy_service = "inet:127.0.0.1:" + std::to_string(policy_port);
  t::PostfixInstance postfix(po);
  if (keep) postfix.keep_directory();

  std::vector<Outcome> outcomes;
  auto record = [&](const std::string& scenario, const std::string& expected,
                    const t::SwaksResult& r, bool ok) {
    outcomes.push_back({scenario, expected, describe(r), ok});
  };

  t::SwaksOptions local;
  local.from = "alice@mxguard.test";
  local.to = {"bob@example.net"};
  local.headers = {"Subject: local submission"};
  auto r1 = postfix.send(local);
  record("local submission from 127.0.0.1", "accepted (trusted, not greylisted)", r1,
         r1.exit_code == 0);

  t::SwaksOptions inbound;
  inbound.local_interface = "127.0.0.2";
  inbound.from = "news@sender.example";
  inbound.to = {"carol@mxguard.test"};
  inbound.headers = {"Subject: inbound from a new sender"};
  auto r2 = postfix.send(inbound);
  record("inbound, new sender, from 127.0.0.2", "deferred at RCPT (450)", r2,
         r2.rcpt_code == 450);

  std::cout << "waiting 6 s for the greylist delay (5 s)…\n";
  std::this_thread::sleep_for(6s);
  auto r3 = postfix.send(inbound);
  record("the same sender retrying after the delay", "accepted with X-Greylist", r3,
         r3.exit_code == 0);

  bool delivered = postfix.wait_for_delivery(2, 20s);
  std::string greylist_header;
  std::string shown;
  for (const auto& m : postfix.delivered()) {
    if (auto h = m.first_header("X-Greylist")) {
      greylist_header = *h;
      shown = m.headers();
    }
  }
  if (!outcomes.empty()) outcomes.back().ok = outcomes.back().ok && !greylist_header.empty();

  std::printf("\n%-42s %-38s %-28s %s\n", "scenario", "expected", "got", "");
  bool all_ok = delivered;
  for (const auto& o : outcomes) {
    std::printf("%-42s %-38s %-28s %s\n", o.scenario.c_str(), o.expected.c_str(),
                o.got.c_str(), o.ok ? "OK" : "DIFFERENT");
    all_ok = all_ok && o.ok;
  }
  std::cout << "\nHeaders of the delivered, greylisted-then-accepted message:\n"
            << (shown.empty() ? "(none delivered)\n" : shown + "\n");
  std::cout << "\nLogs: " << (dir / "mxguard-policyd.log").string() << " (mxguard-policyd), "
            << postfix.directory().string() << "/maillog (Postfix)"
            << (keep ? "" : " — removed on exit; use --keep to keep them") << "\n";

  if (keep) {
    std::cout << "\nThe stack keeps running (--keep). Send mail with e.g.\n"
              << "  swaks --server 127.0.0.1 --port 2525 --local-interface 127.0.0.2 "
                 "--from you@sender.example --to user@mxguard.test\n"
              << "Delivered messages land in " << postfix.directory().string()
              << "/sink. Press Ctrl-C to stop everything.\n";
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    int sig = 0;
    sigwait(&set, &sig);
  }
  std::cout << (all_ok ? "\nmxguard demo: every outcome as expected\n"
                       : "\nmxguard demo: SOME OUTCOMES DIFFER from the expected ones\n");
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--keep") {
      keep = true;
    } else {
      std::cerr << "usage: mxguard-demo [--keep]\n";
      return 64;
    }
  }
  try {
    return run(keep);
  } catch (const std::exception& ex) {
    std::cerr << "mxguard demo failed: " << ex.what() << "\n";
    return 1;
  }
}
