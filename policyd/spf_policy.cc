// Implementation of the SPF policy (see spf_policy.h).
#include "policyd/spf_policy.h"

#include "common/authres/authres.h"
#include "common/config/config.h"

namespace mxguard::policyd {
namespace {

using common::spf::Outcome;
using common::spf::Result;

bool one_of(const std::string& v, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (v == a) return true;
  }
  return false;
}

std::string quoted(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\r' || c == '\n') continue;
    out.push_back(c);
  }
  return out + "\"";
}

// Header values are single lines built from network input: no CR/LF ever.
std::string one_line(std::string s) {
  for (auto& c : s) {
    if (c == '\r' || c == '\n' || c == '\t') c = ' ';
  }
  return s;
}

// Text inside the header's (comment): '(', ')' and '\\' become quoted-pairs (RFC 5322
// §3.2.2), so a local part such as "a) client-ip=1.2.3.4; x=(b" cannot close the comment and
// add key=value pairs of the sender's choice; control characters are dropped.
std::string comment_text(const std::string& v) {
  std::string out;
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) continue;
    if (c == '(' || c == ')' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string comment(const Outcome& o, const std::string& raw_who, const std::string& ip) {
  const std::string who = comment_text(raw_who);
  switch (o.result) {
    case Result::kPass:
      return "domain of " + who + " designates " + ip + " as permitted sender";
    case Result::kFail:
      return "domain of " + who + " does not designate " + ip + " as permitted sender";
    case Result::kSoftfail:
      return "domain of transitioning " + who + " does not designate " + ip +
             " as permitted sender";
    case Result::kNeutral:
      return ip + " is neither permitted nor denied by domain of " + who;
    case Result::kNone:
      return "domain of " + who + " does not provide an SPF record";
    case Result::kTemperror:
    case Result::kPermerror:
      return "error in processing during lookup of " + who;
  }
  return "";
}

bool rejects(const std::string& policy, Result r, bool null_sender) {
  if (policy == "fail") return r == Result::kFail;
  if (policy == "softfail") return r == Result::kFail || r == Result::kSoftfail;
  if (policy == "null") return null_sender && r == Result::kFail;
  if (policy == "not-pass") {
    return r != Result::kPass && r != Result::kNone && r != Result::kTemperror;
  }
  return false;  // "no", "no-check"
}

std::string reject_action(const Outcome& o, const std::string& identity) {
  std::string text = o.explanation.empty() ? "not authorized" : o.explanation;
  return one_line("550 5.7.23 Message rejected due to SPF " +
                  std::string(common::spf::result_name(o.result)) +
                  (identity == "helo" ? " of the HELO name" : "") + ": " + text);
}

}  // namespace

void SpfOptions::bind(common::config::Binder& b) {
  b.add("spf-helo-reject", helo_reject,
        "reject on the HELO result: fail, softfail, not-pass, null (fail, null sender only), no, "
        "no-check (pypolicyd-spf HELO_reject)");
  b.add("spf-mail-from-reject", mail_from_reject,
        "reject on the MAIL FROM result: fail, softfail, no, no-check (Mail_From_reject)");
  b.add("spf-permerror-reject", permerror_reject,
        "reject (550 5.7.24) on a permanent SPF error (PermError_reject)");
  b.add("spf-temperror-defer", temperror_defer,
        "defer (451 4.7.24) on a temporary SPF error (TempError_Defer)");
  b.add("spf-skip-addresses", skip_addresses, "client networks never SPF-checked (skip_addresses)");
  b.add("spf-whitelist", whitelist, "client networks whose mail skips SPF (Whitelist)");
  b.add("spf-domain-whitelist", domain_whitelist,
        "clients passing SPF for one of these domains skip SPF checks (Domain_Whitelist)");
  b.add("spf-header", header,
        "headers to add: received-spf, authentication-results, both or none (Header_Type)");
  b.add("spf-hide-receiver", hide_receiver,
        "leave this host's name out of Received-SPF (Hide_Receiver)");
  b.add("spf-timeout", timeout, "time budget for one message's SPF checks, all lookups together");
  b.add("authserv-id", authserv_id,
        "authserv-id of Authentication-Results, and Received-SPF's receiver (empty: host name)");
  b.add("hop-secret-file", hop_secret_file,
        "file with the secret this host's mxguard daemons share to seal the Authentication-Results "
        "headers they write (a missing default file: no seals, and mxguard-dmarc cannot use "
        "mxguard-dkim's results)");
}

void SpfOptions::validate() const {
  using common::config::OptionError;
  try {
    common::authres::configured_hop_secret(hop_secret_file);
  } catch (const std::runtime_error& ex) {
    throw OptionError("hop-secret-file", ex.what());
  }

  if (!one_of(helo_reject, {"fail", "softfail", "not-pass", "null", "no", "no-check"})) {
    throw OptionError("spf-helo-reject", "expected fail, softfail, not-pass, null, no or no-check");
  }
  if (!one_of(mail_from_reject, {"fail", "softfail", "no", "no-check"})) {
    throw OptionError("spf-mail-from-reject", "expected fail, softfail, no or no-check");
  }
  if (!one_of(header, {"received-spf", "authentication-results", "both", "none"})) {
    throw OptionError("spf-header", "expected received-spf, authentication-results, both or none");
  }
  for (const auto& [name, list] :
       {std::pair{"spf-skip-addresses", &skip_addresses}, std::pair{"spf-whitelist", &whitelist}}) {
    try {
      common::net::NetworkList n(*list);
    } catch (const std::invalid_argument& ex) {
      throw OptionError(name, ex.what());
    }
  }
  if (timeout.value.count() < 100) throw OptionError("spf-timeout", "at least 100ms");
  if (timeout.value > std::chrono::seconds(90)) {
    throw OptionError("spf-timeout", "must stay well under Postfix's 100 s policy timeout");
  }
}

std::string domain_of(const std::string& address) {
  auto at = address.rfind('@');
  return at == std::string::npos ? std::string() : address.substr(at + 1);
}

std::string received_spf(const Outcome& o, const SpfResults& r, const std::string& identity,
                         const std::string& receiver, bool hide_receiver) {
  std::string ip = r.client.to_string();
  std::string who = identity == "helo"
                        ? r.helo_name
                        : (r.sender.empty() ? "postmaster@" + r.helo_name : r.sender);
  std::string value = std::string(common::spf::result_name(o.result)) + " (" +
                      (hide_receiver ? "" : receiver + ": ") + comment(o, who, ip) + ")";
  value += " client-ip=" + ip + ";";
  value += " envelope-from=" + quoted(r.sender) + ";";
  value += " helo=" + quoted(r.helo_name) + ";";
  if (!hide_receiver) value += " receiver=" + receiver + ";";
  value += " identity=" + identity + ";";
  if (!o.mechanism.empty()) value += " mechanism=" + quoted(o.mechanism) + ";";
  if (!o.problem.empty()) value += " problem=" + quoted(o.problem) + ";";
  return one_line(value);
}

SpfVerdict decide(const SpfOptions& o, const SpfResults& r, const std::string& receiver) {
  SpfVerdict v;
  if (!r.whitelisted_by.empty()) {
    v.summary = "whitelisted:" + r.whitelisted_by;
    return v;
  }
  bool null_sender = r.sender.empty();
  if (r.helo) v.summary += "helo=" + std::string(common::spf::result_name(r.helo->result));
  if (r.mail_from) {
    if (!v.summary.empty()) v.summary += " ";
    v.summary += "mailfrom=" + std::string(common::spf::result_name(r.mail_from->result));
  }

  // HELO first, as pypolicyd-spf does; then MAIL FROM (for the null sender, the HELO result
  // stands for MAIL FROM: RFC 7208 §2.4).
  if (r.helo && rejects(o.helo_reject, r.helo->result, null_sender)) {
    v.action = reject_action(*r.helo, "helo");
    return v;
  }
  const Outcome* mf = r.mail_from ? &*r.mail_from : nullptr;
  std::string identity = "mailfrom";
  if (!mf && null_sender && r.helo) {
    mf = &*r.helo;
    identity = "helo";
  }
  if (mf) v.result = mf->result;
  if (mf && identity == "mailfrom" && rejects(o.mail_from_reject, mf->result, false)) {
    v.action = reject_action(*mf, "mailfrom");
    return v;
  }
  for (const Outcome* out : {r.helo ? &*r.helo : nullptr, mf}) {
    if (!out) continue;
    if (out->result == Result::kPermerror && o.permerror_reject) {
      v.action = one_line("550 5.7.24 SPF permanent error: " + out->problem);
      return v;
    }
    if (out->result == Result::kTemperror && o.temperror_defer) {
      v.action = one_line("451 4.7.24 SPF temporary error: " + out->problem);
      return v;
    }
  }
  if (!mf) return v;
  if (mf->result == Result::kPass && identity == "mailfrom") {
    v.passed_domain = domain_of(r.sender);
  }
  if (o.header == "received-spf" || o.header == "both") {
    v.headers.push_back("Received-SPF: " +
                        received_spf(*mf, r, identity, receiver, o.hide_receiver));
  }
  if (o.header == "authentication-results" || o.header == "both") {
    common::authres::Result ar;
    ar.method = "spf";
    ar.result = std::string(common::spf::result_name(mf->result));
    if (identity == "mailfrom") {
      ar.properties.push_back({"smtp", "mailfrom", domain_of(r.sender)});
    } else {
      ar.properties.push_back({"smtp", "helo", r.helo_name});
    }
    common::authres::Builder b(receiver);
    b.add(ar);
    v.headers.push_back("Authentication-Results: " + one_line(b.value(false)));
  }
  return v;
}

}  // namespace mxguard::policyd
