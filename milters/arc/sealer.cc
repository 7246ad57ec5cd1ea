// ARC sealing (see sealer.h).
#include "milters/arc/sealer.h"

#include <array>
#include <map>

#include "common/util/strings.h"

namespace mxguard::milter::arc {
namespace {

// b= folded into lines of 64 characters so a 4096-bit signature stays under 998 octets.
std::string folded_b(const std::string& b64, const std::string& fold) {
  std::string out;
  for (std::size_t i = 0; i < b64.size(); i += 64) {
    if (i) out += fold;
    out += b64.substr(i, 64);
  }
  return out;
}

}  // namespace

const std::vector<std::string>& default_seal_headers() {
  static const std::vector<std::string> h{
      "from",           "to",           "cc",           "subject",
      "date",           "message-id",   "reply-to",     "in-reply-to",
      "references",     "mime-version", "content-type", "content-transfer-encoding",
      "dkim-signature", "list-id"};
  return h;
}

SealOutcome seal(const Message& message, const ChainResult& chain, const SealRequest& req) {
  SealOutcome out;
  if (chain.newest_cv_fail) {
    out.skipped = "chain already failed (cv=fail)";
    return out;
  }
  if (chain.result == Cv::kFail && chain.key_temp_error) {
    out.skipped = "key lookup failed temporarily";
    return out;
  }
  if (message.overflow()) {
    out.skipped = "header limits exceeded";
    return out;
  }
  int instance = chain.instances + 1;
  if (instance > kMaxInstances) {
    out.skipped = "already " + std::to_string(kMaxInstances) + " ARC sets";
    return out;
  }
  auto alg = req.key ? algorithm_of(req.key) : std::nullopt;
  if (!alg) {
    out.skipped = "no usable key";
    return out;
  }
  auto bh = message.body_hash(Canon::kRelaxed);
  if (!bh) {
    out.skipped = "body not hashed";
    return out;
  }
  Cv cv = chain.result;
  const std::string& fold = req.fold;
  std::string i = std::to_string(instance);
  std::string t = req.timestamp > 0 ? " t=" + std::to_string(req.timestamp) + ";" : "";
  std::string dse = " d=" + req.domain + "; s=" + req.selector + ";";
  std::string a = " a=" + std::string(algorithm_name(*alg)) + ";";

  // The AAR: this hop's results under our authserv-id.
  std::string aar = " i=" + i + "; " + req.authserv_id + ";" +
                    (req.results.empty() ? " none" : fold + req.results);

  // The AMS over the named fields present (each instance, bottom up), relaxed/relaxed.
  std::map<std::string, int> counts;
  for (const auto& f : message.fields()) ++counts[f.lname];
  bool from = false;
  std::vector<std::string> names;
  for (const auto& n : req.headers) {
    std::string ln = common::util::lower(n);
    if (ln == "arc-seal") continue;  // never signed by an AMS
    auto it = counts.find(ln);
    if (it == counts.end() || it->second == 0) continue;
    // At most kMaxSignedHeaders names in all, the limit validators (ours) hold h= to; a
    // message with hundreds of copies of a field gets its bottom-most ones signed.
    for (int k = 0; k < it->second && names.size() < kMaxSignedHeaders; ++k) {
      names.push_back(ln);
      from |= ln == "from";
    }
    it->second = 0;  // a name listed twice is signed once per instance, not twice
  }
  if (!from) {
    out.skipped = "no From header field";
    return out;
  }
  std::string h;
  for (const auto& n : names) h += (h.empty() ? "" : ":") + n;
  std::string ams = " i=" + i + ";" + a + " c=relaxed/relaxed;" + dse + t + fold + "h=" + h + ";" +
                    fold + "bh=" + base64_encode(*bh) + ";" + fold + "b=";
  {
    Sha256 hash;
    std::map<std::string, std::size_t> used;
    const auto& fields = message.fields();
    for (const auto& n : names) {
      std::size_t& skip = used[n];
      std::size_t seen = 0;
      for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
        if (it->lname == n && seen++ == skip) {
          hash.update(canon_header(Canon::kRelaxed, it->name, it->value));
          break;
        }
      }
      ++skip;
    }
    std::string self = canon_header(Canon::kRelaxed, "ARC-Message-Signature", ams);
    self.resize(self.size() - 2);
    hash.update(self);
    ams += folded_b(base64_encode(sign_digest(req.key, *alg, hash.digest())), fold);
  }

  // The AS over every set, ours last (a failed chain: ours only), relaxed.
  std::string as =
      " i=" + i + ";" + a + " cv=" + std::string(cv_name(cv)) + ";" + dse + t + fold + "b=";
  {
    Sha256 hash;
    if (cv != Cv::kFail) {
      // Sets 1..N in order AAR, AMS, AS, from the fields as received (each parsed once).
      std::vector<std::array<const Message::Field*, 3>> sets(instance, {nullptr, nullptr, nullptr});
      for (const auto& f : message.fields()) {
        auto k = arc_header_kind(f.name);
        if (!k) continue;
        int fi = *k == HeaderKind::kSeal               ? parse_seal(f.value).instance
                 : *k == HeaderKind::kMessageSignature ? parse_message_signature(f.value).instance
                                                       : parse_auth_results(f.value).instance;
        std::size_t slot = *k == HeaderKind::kAuthResults        ? 0
                           : *k == HeaderKind::kMessageSignature ? 1
                                                                 : 2;
        if (fi >= 1 && fi < instance && !sets[fi][slot]) sets[fi][slot] = &f;
      }
      for (int j = 1; j < instance; ++j) {
        for (const auto* f : sets[j]) {
          if (f) hash.update(canon_header(Canon::kRelaxed, f->name, f->value));
        }
      }
    }
    hash.update(canon_header(Canon::kRelaxed, "ARC-Authentication-Results", aar));
    hash.update(canon_header(Canon::kRelaxed, "ARC-Message-Signature", ams));
    std::string self = canon_header(Canon::kRelaxed, "ARC-Seal", as);
    self.resize(self.size() - 2);
    hash.update(self);
    as += folded_b(base64_encode(sign_digest(req.key, *alg, hash.digest())), fold);
  }
  out.set = SealedSet{instance, std::move(as), std::move(ams), std::move(aar)};
  return out;
}

}  // namespace mxguard::milter::arc
