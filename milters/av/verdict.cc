// Scan outcome → action, reply and header texts; allow-list matching (see verdict.h).
#include "milters/av/verdict.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "common/util/strings.h"

namespace mxguard::milter::av {
namespace {

using mxguard::common::util::lower;

}  // namespace

InfectedAction parse_infected_action(std::string_view text) {
  if (text == "reject") return InfectedAction::kReject;
  if (text == "discard") return InfectedAction::kDiscard;
  if (text == "quarantine") return InfectedAction::kQuarantine;
  if (text == "accept") return InfectedAction::kAccept;
  throw std::invalid_argument("expected reject, discard, quarantine or accept");
}

ErrorAction parse_error_action(std::string_view text) {
  if (text == "tempfail") return ErrorAction::kTempfail;
  if (text == "accept") return ErrorAction::kAccept;
  throw std::invalid_argument("expected tempfail or accept");
}

OversizeAction parse_oversize_action(std::string_view text) {
  if (text == "accept") return OversizeAction::kAccept;
  if (text == "tempfail") return OversizeAction::kTempfail;
  if (text == "reject") return OversizeAction::kReject;
  throw std::invalid_argument("expected accept, tempfail or reject");
}

std::string_view outcome_name(ScanOutcome::Kind k) {
  switch (k) {
    case ScanOutcome::Kind::kClean:
      return "clean";
    case ScanOutcome::Kind::kInfected:
      return "infected";
    case ScanOutcome::Kind::kError:
      return "error";
    case ScanOutcome::Kind::kOversize:
      return "oversize";
    case ScanOutcome::Kind::kSkipped:
      return "skipped";
  }
  return "error";
}

std::string_view action_name(Decision::Action a) {
  switch (a) {
    case Decision::Action::kAccept:
      return "accept";
    case Decision::Action::kReject:
      return "reject";
    case Decision::Action::kTempfail:
      return "tempfail";
    case Decision::Action::kDiscard:
      return "discard";
    case Decision::Action::kQuarantine:
      return "quarantine";
  }
  return "tempfail";
}

std::string sanitize_name(std::string_view name) {
  std::string out;
  for (unsigned char c : name.substr(0, 200)) {
    out += (c > 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  return out.empty() ? "unknown" : out;
}

std::string expand_reply_text(std::string_view text, std::string_view virus) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 1 < text.size() && text[i + 1] == 'v') {
      out += sanitize_name(virus);
      ++i;
    } else if (text[i] == '%' && i + 1 < text.size() && text[i + 1] == '%') {
      out += '%';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

Decision decide(const ScanOutcome& outcome, const Policy& policy) {
  Decision d;
  using A = Decision::Action;
  auto tempfail = [&d](const std::string& text) {
    d.action = A::kTempfail;
    d.rcode = "451";
    d.xcode = "4.3.0";
    d.text = text;
  };
  switch (outcome.kind) {
    case ScanOutcome::Kind::kClean:
    case ScanOutcome::Kind::kSkipped:
      d.action = A::kAccept;
      d.add_status_header = true;
      return d;
    case ScanOutcome::Kind::kInfected:
      switch (policy.on_infected) {
        case InfectedAction::kReject:
          d.action = A::kReject;
          d.rcode = "550";
          d.xcode = "5.7.1";
          d.text = expand_reply_text(policy.reject_text, outcome.virus);
          return d;
        case InfectedAction::kDiscard:
          d.action = A::kDiscard;
          return d;
        case InfectedAction::kQuarantine:
          d.action = A::kQuarantine;
          d.add_status_header = true;
          return d;
        case InfectedAction::kAccept:
          d.action = A::kAccept;
          d.add_status_header = true;
          return d;
      }
      break;
    case ScanOutcome::Kind::kOversize:
      switch (policy.on_oversize) {
        case OversizeAction::kAccept:
          d.action = A::kAccept;
          d.add_status_header = true;
          return d;
        case OversizeAction::kTempfail:
          tempfail("Message too large to scan for viruses, try again later");
          return d;
        case OversizeAction::kReject:
          d.action = A::kReject;
          d.rcode = "552";
          d.xcode = "5.3.4";
          d.text = "Message too large to scan for viruses";
          return d;
      }
      break;
    case ScanOutcome::Kind::kError:
      if (policy.on_error == ErrorAction::kAccept) {
        d.action = A::kAccept;
        d.add_status_header = true;
        return d;
      }
      break;
  }
  tempfail("Virus scanner unavailable, try again later");
  return d;
}

std::string status_header(const ScanOutcome& outcome) {
  switch (outcome.kind) {
    case ScanOutcome::Kind::kClean:
      return "clean";
    case ScanOutcome::Kind::kInfected:
      return "infected (" + sanitize_name(outcome.virus) + ")";
    case ScanOutcome::Kind::kOversize:
      return "unscanned (oversize)";
    case ScanOutcome::Kind::kSkipped:
      return "unscanned (" + sanitize_name(outcome.reason.empty() ? "skipped" : outcome.reason) +
             ")";
    case ScanOutcome::Kind::kError:
      break;
  }
  return "unscanned (error)";
}

std::string scanned_header(std::string_view version, std::string_view host) {
  return "mxguard-av " + std::string(version) + " on " + sanitize_name(host);
}

bool valid_allow_entry(std::string_view e) {
  if (e.empty() || e.size() > 320) return false;
  for (unsigned char c : e) {
    if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>') return false;
  }
  auto at = e.rfind('@');
  if (at != std::string_view::npos) return at > 0 && at + 1 < e.size();
  std::string_view d = e.front() == '.' ? e.substr(1) : e;
  return !d.empty() && d.find('.') != std::string_view::npos;
}

bool allow_listed(std::string_view address, const std::vector<std::string>& entries) {
  if (!address.empty() && address.front() == '<') address.remove_prefix(1);
  if (!address.empty() && address.back() == '>') address.remove_suffix(1);
  if (address.empty()) return false;  // the null sender is never allow-listed
  std::string addr = lower(address);
  auto at = addr.rfind('@');
  std::string domain = at == std::string::npos ? "" : addr.substr(at + 1);
  for (const auto& raw : entries) {
    std::string e = lower(raw);
    if (e.find('@') != std::string::npos) {
      if (e == addr) return true;
    } else if (e.front() == '.') {
      if (domain == e.substr(1) || (domain.size() > e.size() &&
                                    domain.compare(domain.size() - e.size(), e.size(), e) == 0)) {
        return true;
      }
    } else if (domain == e) {
      return true;
    }
  }
  return false;
}

}  // namespace mxguard::milter::av
