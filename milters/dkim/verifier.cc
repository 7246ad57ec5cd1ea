// Verification on libopendkim (see verifier.h).
#include "milters/dkim/verifier.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "milters/dkim/opendkim_c.h"

namespace mxguard::milter::dkim {
namespace {

u_char* bytes(std::string_view s) { return reinterpret_cast<u_char*>(const_cast<char*>(s.data())); }

Verifier* verifier_of(DKIM* dkim) { return static_cast<Verifier*>(dkim_get_user_context(dkim)); }

extern "C" DKIM_CBSTAT key_lookup_cb(DKIM* dkim, DKIM_SIGINFO* sig, u_char* buf, size_t buflen) {
  Verifier* v = verifier_of(dkim);
  if (v == nullptr) return DKIM_CBSTAT_ERROR;
  const u_char* sel = dkim_sig_getselector(sig);
  const u_char* dom = dkim_sig_getdomain(sig);
  if (sel == nullptr || dom == nullptr) return DKIM_CBSTAT_NOTFOUND;
  std::string name = std::string(reinterpret_cast<const char*>(sel)) + "._domainkey." +
                     reinterpret_cast<const char*>(dom);
  return v->on_key_lookup(name, buf, buflen);
}

extern "C" DKIM_CBSTAT prescreen_cb(DKIM* dkim, DKIM_SIGINFO** sigs, int nsigs) {
  Verifier* v = verifier_of(dkim);
  if (v != nullptr) v->on_prescreen(sigs, nsigs);
  return DKIM_CBSTAT_CONTINUE;
}

std::string tag(DKIM_SIGINFO* sig, const char* name) {
  u_char* v = dkim_sig_gettagvalue(sig, false, reinterpret_cast<u_char*>(const_cast<char*>(name)));
  if (v == nullptr) return "";
  std::string out;
  for (const u_char* p = v; *p; ++p) {
    if (!std::isspace(*p)) out.push_back(static_cast<char>(*p));
  }
  return out;
}

}  // namespace

namespace detail {
// Called by Library's constructor: routes libopendkim's callbacks to the Verifier of a handle.
void install_verifier_callbacks(DKIM_LIB* lib) {
  dkim_set_key_lookup(lib, key_lookup_cb);
  dkim_set_prescreen(lib, prescreen_cb);
}
}  // namespace detail

Verifier::Verifier(const Library& lib, KeyLookup lookup, VerifyOptions options,
                   const std::string& id)
    : lookup_(std::move(lookup)), options_(options) {
  DKIM_STAT stat = DKIM_STAT_OK;
  handle_.reset(
      dkim_verify(lib.get(), reinterpret_cast<const u_char*>(id.c_str()), nullptr, &stat));
  if (!handle_) throw std::runtime_error("dkim_verify failed: " + status_text(stat));
  dkim_set_user_context(handle_.get(), this);
}

int Verifier::on_key_lookup(const std::string& name, unsigned char* buf, std::size_t buflen) {
  KeyLookupResult r;
  try {
    auto it = lookups_.find(name);
    if (it == lookups_.end()) it = lookups_.emplace(name, lookup_(name)).first;
    r = it->second;
  } catch (const std::exception& ex) {
    r = {KeyLookupResult::Kind::kTempError, "", ex.what()};
    lookups_[name] = r;
  }
  switch (r.kind) {
    case KeyLookupResult::Kind::kFound:
      if (buflen == 0) return DKIM_CBSTAT_ERROR;
      {
        std::size_t n = std::min(r.record.size(), buflen - 1);
        std::memcpy(buf, r.record.data(), n);
        buf[n] = '\0';
      }
      return DKIM_CBSTAT_CONTINUE;
    case KeyLookupResult::Kind::kNotFound:
      return DKIM_CBSTAT_NOTFOUND;
    // TRYAGAIN would abort the whole message inside libopendkim; "not found" lets it go on
    // with the other signatures, and finish() reports this one as temperror from lookups_.
    case KeyLookupResult::Kind::kTempError:
      return DKIM_CBSTAT_NOTFOUND;
  }
  return DKIM_CBSTAT_ERROR;
}

void Verifier::on_prescreen(void* sigs, int nsigs) {
  auto** list = static_cast<DKIM_SIGINFO**>(sigs);
  for (int i = static_cast<int>(options_.max_signatures); i < nsigs; ++i) {
    dkim_sig_ignore(list[i]);
    ++ignored_;
  }
}

std::string Verifier::message_error(int stat) const {
  const char* e = dkim_geterror(handle_.get());
  return (e && *e) ? std::string(e) : status_text(stat);
}

void Verifier::header(std::string_view field) {
  if (done_) return;
  // libopendkim measures parts of a header with C string functions: a NUL inside one makes
  // it read past the buffer (found by fuzz_dkim_verify). libmilter hands values over as C
  // strings anyway, so cutting at the NUL is what the milter path sees too.
  field = field.substr(0, field.find('\0'));
  if (field.empty()) return;  // libopendkim asserts on an empty header
  ++header_count_;
  DKIM_STAT stat = dkim_header(handle_.get(), bytes(field), field.size());
  if (stat != DKIM_STAT_OK) {
    syntax_error_ = message_error(stat);
    done_ = true;
  }
}

void Verifier::end_of_headers() {
  if (done_) return;
  DKIM_STAT stat = dkim_eoh(handle_.get());
  if (stat == DKIM_STAT_NOSIG) {
    done_ = true;
  } else if (stat != DKIM_STAT_OK) {
    // With signatures present, a message libopendkim cannot take (no From, …) is a permerror
    // of every signature; without any, it is simply unsigned.
    DKIM_SIGINFO** sigs = nullptr;
    int n = 0;
    if (dkim_getsiglist(handle_.get(), &sigs, &n) == DKIM_STAT_OK && n > 0) {
      syntax_error_ = message_error(stat);
    }
    done_ = true;
  }
}

void Verifier::body(std::string_view chunk) {
  if (done_ || chunk.empty()) return;
  DKIM_STAT stat = dkim_body(handle_.get(), bytes(chunk), chunk.size());
  if (stat != DKIM_STAT_OK) {
    syntax_error_ = message_error(stat);
    done_ = true;
  }
}

std::vector<SignatureResult> Verifier::finish() {
  std::vector<SignatureResult> out;
  if (!syntax_error_.empty()) {
    SignatureResult r;
    r.result = "permerror";
    r.reason = syntax_error_;
    out.push_back(r);
    return out;
  }
  if (done_) return out;  // no signature
  bool testkey = false;
  DKIM_STAT stat = dkim_eom(handle_.get(), &testkey);
  (void)stat;  // per-signature outcomes are read below
  DKIM_SIGINFO** sigs = nullptr;
  int n = 0;
  if (dkim_getsiglist(handle_.get(), &sigs, &n) != DKIM_STAT_OK) return out;
  for (int i = 0; i < n; ++i) {
    DKIM_SIGINFO* sig = sigs[i];
    unsigned flags = dkim_sig_getflags(sig);
    if (flags & DKIM_SIGFLAG_IGNORE) continue;
    SignatureResult r;
    if (const u_char* d = dkim_sig_getdomain(sig)) r.domain = reinterpret_cast<const char*>(d);
    if (const u_char* s = dkim_sig_getselector(sig)) r.selector = reinterpret_cast<const char*>(s);
    r.algorithm = tag(sig, "a");
    std::string b = tag(sig, "b");
    r.b = b.substr(0, 8);
    u_char ident[512] = {};
    if (dkim_sig_getidentity(handle_.get(), sig, ident, sizeof ident) == DKIM_STAT_OK) {
      r.identity = reinterpret_cast<const char*>(ident);
    }
    unsigned bits = 0;
    if (dkim_sig_getkeysize(sig, &bits) == DKIM_STAT_OK) r.key_bits = bits;
    int err = dkim_sig_geterror(sig);
    std::string name = r.selector + "._domainkey." + r.domain;
    auto lk = lookups_.find(name);
    bool passed = (flags & DKIM_SIGFLAG_PASSED) != 0 && dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH;
    dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
    dkim_sig_getsignalg(sig, &alg);

    if (lk != lookups_.end() && lk->second.kind == KeyLookupResult::Kind::kTempError) {
      r.result = "temperror";
      r.reason = "key lookup failed: " + lk->second.detail;
      r.dns_error = true;
    } else if (lk != lookups_.end() && lk->second.kind == KeyLookupResult::Kind::kNotFound) {
      r.result = "permerror";
      r.reason = "no key record for " + name;
      r.key_not_found = true;
    } else if (alg == DKIM_SIGN_RSASHA1 && !options_.allow_sha1 && err != DKIM_SIGERROR_OK &&
               err != DKIM_SIGERROR_BADSIG) {
      r.result = "permerror";
      r.reason = dkim_sig_geterrorstr(err) ? dkim_sig_geterrorstr(err) : "error";
    } else if (alg == DKIM_SIGN_RSASHA1 && !options_.allow_sha1) {
      r.result = "fail";
      r.reason = "rsa-sha1 not accepted (RFC 8301)";
    } else if (err == DKIM_SIGERROR_KEYTOOSMALL || (passed && alg != DKIM_SIGN_ED25519SHA256 &&
                                                    bits > 0 && bits < options_.minimum_key_bits)) {
      r.result = "fail";
      r.reason = "key too small (" + std::to_string(bits) + " bits)";
    } else if (passed) {
      r.result = "pass";
    } else if (err == DKIM_SIGERROR_BADSIG || err == DKIM_SIGERROR_OK) {
      r.result = "fail";
      r.reason = dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH ? "body hash did not verify"
                                                            : "signature did not verify";
    } else if (err == DKIM_SIGERROR_KEYFAIL) {
      r.result = "temperror";
      r.reason = "key lookup failed";
      r.dns_error = true;
    } else if (err == DKIM_SIGERROR_NOKEY) {
      r.result = "permerror";
      r.reason = "no key record for " + name;
      r.key_not_found = true;
    } else if (err == DKIM_SIGERROR_KEYREVOKED) {
      r.result = "permerror";
      r.reason = "key revoked";
    } else if (err == DKIM_SIGERROR_CORRUPT_BH || err == DKIM_SIGERROR_TOOLARGE_L) {
      r.result = "fail";
      r.reason = dkim_sig_geterrorstr(err);
    } else {
      r.result = "permerror";
      const char* s = dkim_sig_geterrorstr(err);
      r.reason = s ? s : "error " + std::to_string(err);
    }
    out.push_back(std::move(r));
  }
  return out;
}

common::authres::Result SignatureResult::to_authres() const {
  common::authres::Result r;
  r.method = "dkim";
  r.result = result;
  r.reason = reason;
  auto add = [&](const char* name, const std::string& v) {
    if (!v.empty()) r.properties.push_back({"header", name, v});
  };
  add("d", domain);
  add("i", identity);
  add("s", selector);
  add("a", algorithm);
  add("b", b);
  return r;
}

std::string authentication_results(const std::string& authserv_id,
                                   const std::vector<SignatureResult>& results,
                                   const common::authres::Result* arc) {
  common::authres::Builder b(authserv_id);
  if (results.empty()) {
    common::authres::Result none;
    none.method = "dkim";
    none.result = "none";
    b.add(none);
  }
  for (const auto& r : results) b.add(r.to_authres());
  if (arc) b.add(*arc);
  return b.value(true);
}

}  // namespace mxguard::milter::dkim
