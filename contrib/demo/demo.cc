// mxguard-demo: the one-command demo. Starts the whole suite behind a private Postfix on
// 127.0.0.1:2525 (tests/fixtures/stack.h: DNS for the demo zones, Redis, clamd with a tiny
// test signature database, mxguard-policyd, mxguard-dkim, mxguard-dmarc, mxguard-av in that
// order; with --combined one mxguard-milter runs those three filters behind one socket), sends
// real mail with swaks, and prints what happened to each message against what should have
// happened. Exits non-zero if any outcome differs. Never touches the system's Postfix, Redis or
// clamd; stops exactly what it started unless --keep is given.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/fixtures/stack.h"

namespace {

using namespace std::chrono_literals;
namespace t = mxguard::testing;

// Ctrl-C, kill or a closed terminal must not leave the stack running: every peer runs in its
// own process group, so the terminal's signal reaches none of them. One thread takes the
// signals; the demo stops at its next step, where the fixtures' destructors stop exactly what
// they started and remove their directories.
std::atomic<int> g_signal{0};

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

void check_interrupted() {
  if (g_signal.load() != 0) throw Interrupted();
}

void sleep_unless_interrupted(std::chrono::milliseconds d) {
  for (auto end = std::chrono::steady_clock::now() + d; std::chrono::steady_clock::now() < end;) {
    check_interrupted();
    std::this_thread::sleep_for(100ms);
  }
}

void watch_signals(sigset_t set) {
  int sig = 0;
  while (sigwait(&set, &sig) == 0) {
    if (g_signal.exchange(sig) == 0) {
      std::fprintf(stderr, "\nmxguard demo: signal %d, stopping the stack…\n", sig);
    } else {
      std::fprintf(stderr, "mxguard demo: already stopping\n");
    }
  }
}

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

std::optional<t::DeliveredMessage> delivered_with(t::PostfixInstance& pf,
                                                  const std::string& needle) {
  for (int i = 0; i < 100; ++i) {
    for (auto& m : pf.delivered()) {
      if (m.raw.find(needle) != std::string::npos) return m;
    }
    std::this_thread::sleep_for(100ms);
  }
  return std::nullopt;
}

std::string crlf_message(const std::vector<std::string>& headers, const std::string& body) {
  std::string m;
  for (const auto& h : headers) m += h + "\r\n";
  return m + "\r\n" + body;
}

int run(bool keep, bool combined) {
  std::cout << "mxguard demo: starting DNS, Redis, clamd, mxguard-policyd, "
            << (combined ? "mxguard-milter (filters dkim, dmarc, av)"
                         : "mxguard-dkim, mxguard-dmarc, mxguard-av")
            << " and Postfix on loopback (127.0.0.1:2525)…\n";
  t::StackOptions so;
  so.smtp_port = 2525;
  so.keep = keep;
  so.combined = combined;
  // For the selective-greylisting scenario: a sender whose SPF authorises 127.0.0.3, and a
  // DNSBL (bl.test) on which 127.0.0.3 is listed.
  so.extra_zone =
      "listed IN TXT \"v=spf1 ip4:127.0.0.3 -all\"\n"
      "3.0.0.127.bl IN A 127.0.0.2\n";
  t::Stack stack(so);
  t::PostfixInstance& pf = stack.postfix();
  const bool av = stack.clamd() != nullptr;

  std::vector<Outcome> outcomes;
  auto record = [&](const std::string& scenario, const std::string& expected,
                    const std::string& got, bool ok) {
    outcomes.push_back({scenario, expected, got, ok});
    check_interrupted();
  };
  check_interrupted();

  // 1. Local submission: signed by mxguard-dkim, checked by an independent verifier.
  t::SwaksOptions local;
  local.from = "alice@mxguard.test";
  local.to = {"bob@example.net"};
  local.headers = {"From: Alice <alice@mxguard.test>", "Subject: demo: local submission"};
  local.body = "Hello from our own user.";
  auto r = pf.send(local);
  std::string got = describe(r);
  bool ok = r.exit_code == 0;
  if (auto d = delivered_with(pf, "demo: local submission")) {
    auto [rc, out] = stack.verify_dkim(d->raw);
    got += rc == 0 ? ", DKIM-signed, python3-dkim: pass" : ", python3-dkim: FAIL";
    ok = ok && rc == 0 && !d->header("DKIM-Signature").empty();
  } else {
    ok = false;
  }
  record("local submission (127.0.0.1)", "accepted, DKIM-signed, verifies", got, ok);

  // 2./3. A new partner: greylisted, then accepted with SPF, DKIM and DMARC in one header.
  t::SwaksOptions in;
  in.local_interface = "127.0.0.2";
  in.from = "news@partner.test";
  in.to = {"carol@mxguard.test"};
  in.data = stack.sign_as_partner(
      crlf_message({"From: Partner News <news@partner.test>", "To: carol@mxguard.test",
                    "Subject: demo: partner newsletter", "Date: Sun, 22 Nov 2026 10:00:00 +0000",
                    "Message-ID: <demo-1@partner.test>"},
                   "Signed by the partner's key, sent from its SPF-authorised address.\r\n"));
  r = pf.send(in);
  record("inbound, new sender (127.0.0.2)", "deferred at RCPT (450), greylisted", describe(r),
         r.rcpt_code == 450);
  std::cout << "waiting " << so.greylist_delay.count() + 1 << " s for the greylist delay…\n";
  sleep_unless_interrupted(so.greylist_delay + 1s);
  r = pf.send(in);
  got = describe(r);
  ok = r.exit_code == 0;
  std::string shown;
  if (auto d = delivered_with(pf, "demo: partner newsletter")) {
    auto ar = d->header("Authentication-Results");
    bool all = ar.size() == 1 && ar[0].find("dkim=pass") != std::string::npos &&
               ar[0].find("spf=pass") != std::string::npos &&
               ar[0].find("dmarc=pass") != std::string::npos;
    got += all ? ", spf+dkim+dmarc=pass in one A-R" : ", A-R incomplete";
    ok = ok && all && d->first_header("X-Greylist").has_value();
    shown = d->headers();
  } else {
    ok = false;
  }
  record("the partner retrying after the delay", "accepted, SPF/DKIM/DMARC pass", got, ok);

  // 4. SPF fail: the partner's address from a host it did not authorise.
  t::SwaksOptions spoof = in;
  spoof.local_interface = "127.0.0.3";
  spoof.data = crlf_message({"From: news@partner.test", "Subject: demo: spf fail"}, "Hi.\r\n");
  r = pf.send(spoof);
  record("partner's address from 127.0.0.3", "rejected at RCPT (550), SPF fail", describe(r),
         r.rcpt_code == 550);

  // 5. DMARC: a p=reject domain's From on mail that neither SPF nor DKIM ties to it.
  t::SwaksOptions forged = in;
  forged.data = crlf_message({"From: CEO <ceo@bank.test>", "To: carol@mxguard.test",
                              "Subject: demo: urgent wire transfer"},
                             "Please pay the attached invoice today.\r\n");
  r = pf.send(forged);
  record("From: ceo@bank.test (p=reject), forged", "rejected after DATA (550), DMARC", describe(r),
         r.data_code == 550);

  if (av) {
    // 6. EICAR as a base64 MIME attachment.
    t::SwaksOptions virus = in;
    virus.data.clear();
    virus.headers = {"From: Partner News <news@partner.test>", "Subject: demo: eicar"};
    virus.body = "See attachment.";
    t::write_file(stack.directory() / "eicar.com", t::eicar());
    virus.extra_args = {"--attach-type", "application/octet-stream",
                        "--attach-name", "eicar.com",
                        "--attach",      "@" + (stack.directory() / "eicar.com").string()};
    r = pf.send(virus);
    record("EICAR attachment from the partner", "rejected after DATA (550), virus", describe(r),
           r.data_code == 550);
    // 7. A clean message.
    t::SwaksOptions clean = in;
    clean.data.clear();
    clean.headers = {"From: Partner News <news@partner.test>", "Subject: demo: clean"};
    clean.body = "Nothing to see here.";
    r = pf.send(clean);
    got = describe(r);
    ok = r.exit_code == 0;
    if (auto d = delivered_with(pf, "demo: clean")) {
      auto status = d->first_header("X-Virus-Status");
      ok = ok && status && status->find("clean") != std::string::npos;
      got += status ? ", X-Virus-Status: " + *status : ", no X-Virus-Status";
    } else {
      ok = false;
    }
    record("clean message from the partner", "accepted, X-Virus-Status: clean", got, ok);
  }

  // 8./9. Selective greylisting, a separate scenario: everything above ran with
  // greylist-mode = all (postgrey's behaviour, the default). mxguard-policyd is reloaded with
  // greylist-mode = suspicious and a DNSBL: an SPF-pass sender that no list names is not
  // greylisted, a listed host is, even with its own SPF pass.
  std::cout << "reloading mxguard-policyd with greylist-mode = suspicious and a DNSBL…\n";
  {
    std::ofstream conf(stack.config_path("policyd"), std::ios::app);
    conf << "greylist-mode = suspicious\ngreylist-dnsbl-sites = bl.test=127.0.0.[2..11]\n";
  }
  auto reloads = [&] {
    std::string log = stack.log("policyd");
    std::size_t n = 0;
    for (auto p = log.find("reload: done"); p != std::string::npos;
         p = log.find("reload: done", p + 1))
      ++n;
    return n;
  };
  std::size_t before = reloads();
  stack.reload("policyd");
  for (int i = 0; i < 100 && reloads() == before; ++i) sleep_unless_interrupted(100ms);
  auto policyd_log_has = [&](const std::string& needle) {
    return stack.log("policyd").find(needle) != std::string::npos;
  };
  t::SwaksOptions selective = in;
  selective.to = {"dave@mxguard.test"};  // a new triplet: greylisted in mode all
  selective.data = stack.sign_as_partner(
      crlf_message({"From: Partner News <news@partner.test>", "To: dave@mxguard.test",
                    "Subject: demo: selective, spf pass", "Date: Sun, 22 Nov 2026 10:05:00 +0000",
                    "Message-ID: <demo-2@partner.test>"},
                   "A new recipient: in suspicious mode an SPF pass that no DNSBL lists is not "
                   "greylisted.\r\n"));
  r = pf.send(selective);
  got = describe(r);
  ok = r.exit_code == 0 && r.rcpt_code != 450;
  if (auto d = delivered_with(pf, "demo: selective, spf pass")) {
    ok = ok && !d->first_header("X-Greylist").has_value();
  } else {
    ok = false;
  }
  ok = ok && policyd_log_has("greylist=skipped reason=not-suspicious");
  got += ok ? ", greylist=skipped reason=not-suspicious" : "";
  record("suspicious mode: partner, new recipient", "accepted at once, SPF pass", got, ok);
  t::SwaksOptions listed;
  listed.local_interface = "127.0.0.3";
  listed.from = "sales@listed.test";
  listed.to = {"carol@mxguard.test"};
  listed.headers = {"From: Sales <sales@listed.test>", "Subject: demo: selective, dnsbl"};
  listed.body = "Sent from a host on the DNSBL, with an SPF pass.";
  r = pf.send(listed);
  got = describe(r);
  ok = r.rcpt_code == 450 && policyd_log_has("greylist=applied reason=dnsbl:bl.test");
  got += ok ? ", greylist=applied reason=dnsbl:bl.test" : "";
  record("suspicious mode: 127.0.0.3 on bl.test", "deferred at RCPT (450), DNSBL", got, ok);

  std::printf("\n%-40s %-36s %s\n", "scenario", "expected", "got");
  bool all_ok = true;
  for (const auto& o : outcomes) {
    std::printf("%-40s %-36s %s  [%s]\n", o.scenario.c_str(), o.expected.c_str(), o.got.c_str(),
                o.ok ? "OK" : "DIFFERENT");
    all_ok = all_ok && o.ok;
  }
  std::cout << "\nHeaders of the delivered partner newsletter:\n"
            << (shown.empty() ? "(none delivered)\n" : shown + "\n");
  // A run with a differing outcome keeps its logs: they are what explains it.
  if (!all_ok) stack.keep_directories();
  std::string logs;
  for (const auto& d : stack.daemons())
    logs += (logs.empty() ? "" : ", ") + ("mxguard-" + d + ".log");
  std::cout << "\nLogs in " << stack.directory().string() << ": " << logs
            << "; Postfix: " << pf.directory().string() << "/maillog"
            << (keep || !all_ok ? " (kept)" : " — removed on exit; use --keep to keep them")
            << "\n";
  if (keep) {
    std::cout << "\nThe stack keeps running (--keep). Send mail with e.g.\n"
              << "  swaks --server 127.0.0.1 --port 2525 --local-interface 127.0.0.2 "
                 "--from news@partner.test --to carol@mxguard.test\n"
              << "Delivered messages land in " << pf.directory().string()
              << "/sink. Press Ctrl-C to stop everything.\n";
    while (g_signal.load() == 0) std::this_thread::sleep_for(100ms);
  }
  std::cout << (all_ok ? "\nmxguard demo: every outcome as expected\n"
                       : "\nmxguard demo: SOME OUTCOMES DIFFER from the expected ones\n");
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage =
      "usage: mxguard-demo [--keep] [--combined]\n"
      "  --keep      leave the stack running (Ctrl-C stops it)\n"
      "  --combined  one mxguard-milter (filters dkim, dmarc, av) instead of the\n"
      "              three milter daemons; the same scenarios, the same outcomes\n";
  bool keep = false;
  bool combined = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--keep") {
      keep = true;
    } else if (a == "--combined") {
      combined = true;
    } else if (a == "-h" || a == "--help") {
      std::cout << usage;
      return 0;
    } else {
      std::cerr << usage;
      return 64;
    }
  }
  // Blocked before any thread starts, so every thread inherits it and only the watcher takes
  // them (the fixtures' children reset their mask).
  // A shell starts background jobs with SIGINT ignored, and an ignored signal never reaches
  // sigwait: take INT and TERM back. HUP stays ignored under nohup.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  struct sigaction hup {};
  if (sigaction(SIGHUP, nullptr, &hup) == 0 && hup.sa_handler != SIG_IGN) sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread(watch_signals, set).detach();
  try {
    return run(keep, combined);
  } catch (const Interrupted&) {
    std::cerr << "mxguard demo: interrupted; everything it started is stopped\n";
    return 130;
  } catch (const std::exception& ex) {
    std::cerr << "mxguard demo failed: " << ex.what() << "\n";
    return 1;
  }
}
