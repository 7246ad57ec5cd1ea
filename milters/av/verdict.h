// What mxguard-av does with a message once it knows the scan outcome: the --on-* action, the
// SMTP reply, and the X-Virus-Status text; plus the allow-list matching that decides whether
// to scan at all. Pure functions without libmilter. Must never map an error or an unknown
// outcome to "clean", and never put a byte from clamd into a reply or header unescaped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mxguard::milter::av {

enum class InfectedAction { kReject, kDiscard, kQuarantine, kAccept };
enum class ErrorAction { kTempfail, kAccept };
enum class OversizeAction { kAccept, kTempfail, kReject };
// Each throws std::invalid_argument naming the accepted values.
InfectedAction parse_infected_action(std::string_view text);
ErrorAction parse_error_action(std::string_view text);
OversizeAction parse_oversize_action(std::string_view text);

struct ScanOutcome {
  enum class Kind { kClean, kInfected, kError, kOversize, kSkipped };
  Kind kind = Kind::kError;
  std::string virus;   // kInfected
  std::string reason;  // kError: error kind; kSkipped: authenticated|network|allow-list
};
std::string_view outcome_name(ScanOutcome::Kind k);  // "clean", "infected", …

struct Policy {
  InfectedAction on_infected = InfectedAction::kReject;
  ErrorAction on_error = ErrorAction::kTempfail;
  OversizeAction on_oversize = OversizeAction::kAccept;
  std::string reject_text = "Virus found: %v";
};

struct Decision {
  enum class Action { kAccept, kReject, kTempfail, kDiscard, kQuarantine };
  Action action = Action::kTempfail;
  std::string rcode, xcode, text;  // for kReject/kTempfail
  bool add_status_header = false;  // the message goes on: tell downstream what we found
};
std::string_view action_name(Decision::Action a);

Decision decide(const ScanOutcome& outcome, const Policy& policy);

// X-Virus-Status value: "clean", "infected (NAME)", "unscanned (REASON)".
std::string status_header(const ScanOutcome& outcome);
// X-Virus-Scanned value: "mxguard-av VERSION on HOST".
std::string scanned_header(std::string_view version, std::string_view host);
// Replaces every %v with the (sanitized) virus name, %% with %.
std::string expand_reply_text(std::string_view text, std::string_view virus);
// Printable ASCII only (anything else becomes '?'), at most 200 characters.
std::string sanitize_name(std::string_view name);

// Allow-list entries: "user@example.org" (that address), "example.org" (its domain),
// ".example.org" (the domain and its subdomains). Case-insensitive.
bool valid_allow_entry(std::string_view entry);
// `address` as in MAIL FROM/RCPT TO, with or without angle brackets.
bool allow_listed(std::string_view address, const std::vector<std::string>& entries);

}  // namespace mxguard::milter::av
