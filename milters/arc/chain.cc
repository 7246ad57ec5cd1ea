// ARC chain validation (see chain.h). The steps follow RFC 8617 §5.2 in its order: collect
// the sets, stop on cv=fail at the top, check the structure, the newest AMS, oldest-pass, then
// every AS from the newest down.
#include "milters/arc/chain.h"

#include <array>

#include "common/util/strings.h"

namespace mxguard::milter::arc {
namespace {

using common::util::lower;

struct Slot {
  const Message::Field* seal_field = nullptr;
  const Message::Field* ams_field = nullptr;
  const Message::Field* aar_field = nullptr;
  std::optional<Seal> seal;
  std::optional<MessageSignature> ams;
  std::optional<AuthResults> aar;
  std::string relaxed_aar, relaxed_ams, relaxed_seal;  // for the AS hashes
};

class Validator {
 public:
  Validator(const Message& m, const KeyFetcher& keys) : m_(m), keys_(keys) {}

  ChainResult run() {
    ChainResult r;
    if (!m_.has_arc()) return r;  // step 1: no sets, none
    if (m_.overflow()) return fail(r, "header limits exceeded");
    if (!collect(r)) return r;
    r.instances = n_;
    for (int i = n_; i >= 1; --i) {
      if (slots_[i].seal)
        r.sealers.push_back({i, slots_[i].seal->domain, slots_[i].seal->selector});
    }
    // Step 2: the chain was marked failed by the last sealer.
    if (slots_[n_].seal && slots_[n_].seal->cv == Cv::kFail) {
      r.newest_cv_fail = true;
      return fail(r, "ARC-Seal[" + std::to_string(n_) + "] has cv=fail");
    }
    // Step 3: structure.
    for (int i = 1; i <= n_; ++i) {
      const Slot& s = slots_[i];
      if (!s.seal || !s.ams || !s.aar) {
        return fail(r, "ARC set " + std::to_string(i) + " is incomplete");
      }
      Cv want = i == 1 ? Cv::kNone : Cv::kPass;
      if (s.seal->cv != want) {
        return fail(
            r, "ARC-Seal[" + std::to_string(i) + "] has cv=" + std::string(cv_name(s.seal->cv)));
      }
    }
    // Step 4: the newest AMS.
    std::string why;
    if (!verify_ams(n_, &why))
      return fail(r, "ARC-Message-Signature[" + std::to_string(n_) + "]: " + why);
    // Step 5: oldest-pass.
    r.oldest_pass = 0;
    for (int i = n_ - 1; i >= 1; --i) {
      std::string ignored;
      if (!verify_ams(i, &ignored)) {
        r.oldest_pass = i + 1;
        break;
      }
    }
    // Step 6: every AS, newest first.
    for (int i = n_; i >= 1; --i) {
      if (!verify_seal(i, &why)) return fail(r, "ARC-Seal[" + std::to_string(i) + "]: " + why);
    }
    r.result = Cv::kPass;  // step 7
    return r;
  }

 private:
  ChainResult& fail(ChainResult& r, std::string reason) {
    r.result = Cv::kFail;
    r.oldest_pass = 0;
    r.reason = std::move(reason);
    r.key_temp_error = temp_error_;
    return r;
  }

  // Parses every ARC header field into its slot; false (r failed) on any bad or duplicate one.
  bool collect(ChainResult& r) {
    if (m_.arc_fields() > 3 * static_cast<std::size_t>(kMaxInstances)) {
      fail(r, "more than " + std::to_string(kMaxInstances) + " ARC sets");
      return false;
    }
    for (const auto& f : m_.fields()) {
      auto kind = arc_header_kind(f.name);
      if (!kind) continue;
      std::string error;
      int instance = 0;
      switch (*kind) {
        case HeaderKind::kSeal: {
          auto p = parse_seal(f.value);
          instance = p.instance;
          error = p.error;
          if (p.value) {
            if (slots_[instance].seal) error = "duplicate ARC-Seal";
            slots_[instance].seal = std::move(p.value);
            slots_[instance].seal_field = &f;
          }
          if (!error.empty()) error = "ARC-Seal: " + error;
          break;
        }
        case HeaderKind::kMessageSignature: {
          auto p = parse_message_signature(f.value);
          instance = p.instance;
          error = p.error;
          if (p.value) {
            if (slots_[instance].ams) error = "duplicate ARC-Message-Signature";
            slots_[instance].ams = std::move(p.value);
            slots_[instance].ams_field = &f;
          }
          if (!error.empty()) error = "ARC-Message-Signature: " + error;
          break;
        }
        case HeaderKind::kAuthResults: {
          auto p = parse_auth_results(f.value);
          instance = p.instance;
          error = p.error;
          if (p.value) {
            if (slots_[instance].aar) error = "duplicate ARC-Authentication-Results";
            slots_[instance].aar = std::move(p.value);
            slots_[instance].aar_field = &f;
          }
          if (!error.empty()) error = "ARC-Authentication-Results: " + error;
          break;
        }
      }
      if (instance > n_) n_ = instance;
      if (!error.empty()) {
        r.instances = n_;
        fail(r, instance ? error + " (i=" + std::to_string(instance) + ")" : error);
        return false;
      }
    }
    if (n_ == 0) {
      fail(r, "no usable ARC header field");
      return false;
    }
    for (int i = 1; i <= n_; ++i) {
      Slot& s = slots_[i];
      if (s.aar_field)
        s.relaxed_aar = canon_header(Canon::kRelaxed, s.aar_field->name, s.aar_field->value);
      if (s.ams_field)
        s.relaxed_ams = canon_header(Canon::kRelaxed, s.ams_field->name, s.ams_field->value);
      if (s.seal_field)
        s.relaxed_seal = canon_header(Canon::kRelaxed, s.seal_field->name, s.seal_field->value);
    }
    return true;
  }

  // The key for d=/s= and an algorithm, fetched and decoded once per message; owned here.
  EVP_PKEY* key(const std::string& domain, const std::string& selector, Algorithm a,
                std::string* why) {
    auto name = selector + "._domainkey." + domain;
    std::string decoded_name = name + "/" + std::string(algorithm_name(a));
    if (auto d = decoded_.find(decoded_name); d != decoded_.end()) return d->second.get();
    auto it = answers_.find(name);
    if (it == answers_.end()) {
      if (answers_.size() >= m_.limits().max_key_lookups) {
        *why = "more than " + std::to_string(m_.limits().max_key_lookups) + " keys to look up";
        return nullptr;
      }
      KeyAnswer answer;
      if (lookup_time_ >= m_.limits().key_lookup_budget) {
        answer.status = KeyAnswer::Status::kTempError;
        answer.detail = "key lookup time budget spent";
      } else {
        auto start = std::chrono::steady_clock::now();
        try {
          answer = keys_(domain, selector);
        } catch (const std::exception& ex) {
          answer.status = KeyAnswer::Status::kTempError;
          answer.detail = ex.what();
        }
        lookup_time_ += std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - start);
      }
      it = answers_.emplace(name, std::move(answer)).first;
    }
    if (it->second.status == KeyAnswer::Status::kTempError) temp_error_ = true;
    PkeyPtr k = public_key_for(it->second, a, m_.limits().minimum_rsa_bits, why);
    if (!k) return nullptr;
    return decoded_.emplace(decoded_name, std::move(k)).first->second.get();
  }

  bool verify_ams(int i, std::string* why) {
    const Slot& s = slots_[i];
    const MessageSignature& ams = *s.ams;
    auto bh = m_.body_hash(ams.body_canon);
    if (!bh) {
      *why = "body not hashed";
      return false;
    }
    if (*bh != ams.body_hash) {
      *why = "body hash mismatch";
      return false;
    }
    Sha256 h;
    // RFC 6376 §5.4.2: each name takes the next instance of that field from the bottom up.
    std::map<std::string, std::size_t> used;
    const auto& fields = m_.fields();
    for (const auto& name : ams.headers) {
      std::size_t& skip = used[name];
      std::size_t seen = 0;
      for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
        if (it->lname != name) continue;
        if (seen++ == skip) {
          h.update(canon_header(ams.header_canon, it->name, it->value));
          break;
        }
      }
      ++skip;
    }
    std::string self =
        canon_header(ams.header_canon, s.ams_field->name, strip_b_value(s.ams_field->value));
    self.resize(self.size() - 2);  // the signature header is hashed without its CRLF
    h.update(self);
    EVP_PKEY* k = key(ams.domain, ams.selector, ams.algorithm, why);
    if (!k) return false;
    if (!verify_digest(k, ams.algorithm, h.digest(), ams.signature)) {
      *why = "signature did not verify";
      return false;
    }
    return true;
  }

  // RFC 8617 §5.1.1: relaxed, sets 1..i in the order AAR, AMS, AS; AS(i) without b= value.
  bool verify_seal(int i, std::string* why) {
    Sha256 h;
    for (int j = 1; j <= i; ++j) {
      const Slot& s = slots_[j];
      h.update(s.relaxed_aar);
      h.update(s.relaxed_ams);
      if (j < i) h.update(s.relaxed_seal);
    }
    const Slot& s = slots_[i];
    std::string self =
        canon_header(Canon::kRelaxed, s.seal_field->name, strip_b_value(s.seal_field->value));
    self.resize(self.size() - 2);
    h.update(self);
    EVP_PKEY* k = key(s.seal->domain, s.seal->selector, s.seal->algorithm, why);
    if (!k) return false;
    if (!verify_digest(k, s.seal->algorithm, h.digest(), s.seal->signature)) {
      *why = "signature did not verify";
      return false;
    }
    return true;
  }

  const Message& m_;
  const KeyFetcher& keys_;
  std::array<Slot, kMaxInstances + 1> slots_{};
  int n_ = 0;
  std::map<std::string, KeyAnswer> answers_;
  std::map<std::string, PkeyPtr> decoded_;
  std::chrono::milliseconds lookup_time_{0};
  bool temp_error_ = false;
};

}  // namespace

void Message::header(std::string_view name, std::string_view value) {
  bool arc = arc_header_kind(name).has_value();
  if (arc) {
    ++arc_fields_;
    arc_bytes_ += name.size() + value.size();
  }
  bytes_ += name.size() + value.size();
  if (fields_.size() >= limits_.max_headers || bytes_ > limits_.max_header_bytes ||
      arc_bytes_ > limits_.max_arc_bytes) {
    overflow_ = true;
    return;  // counted, not kept: memory stays bounded
  }
  fields_.push_back({std::string(name), lower(name), std::string(value)});
}

void Message::end_of_headers(bool will_seal) {
  if (!has_arc() && !will_seal) return;
  // Both, whatever the AMSs say: two SHA-256 passes are cheaper than a second look at them.
  simple_ = std::make_unique<BodyHasher>(Canon::kSimple);
  relaxed_ = std::make_unique<BodyHasher>(Canon::kRelaxed);
}

void Message::body(std::string_view chunk) {
  if (simple_) simple_->update(chunk);
  if (relaxed_) relaxed_->update(chunk);
}

void Message::end_of_body() {
  if (simple_ && !simple_hash_) simple_hash_ = simple_->finish();
  if (relaxed_ && !relaxed_hash_) relaxed_hash_ = relaxed_->finish();
}

std::optional<std::string> Message::body_hash(Canon c) const {
  return c == Canon::kSimple ? simple_hash_ : relaxed_hash_;
}

ChainResult validate_chain(const Message& message, const KeyFetcher& keys) {
  // On the heap: 51 slots are ~20 KiB, too much for a libmilter thread's stack to take lightly.
  return std::make_unique<Validator>(message, keys)->run();
}

std::string sealers_comment(const ChainResult& r) {
  std::string out;
  for (const auto& s : r.sealers) {
    std::string i = std::to_string(s.instance);
    out += out.empty() ? "(" : " ";
    out += "as[" + i + "].d=" + s.domain + " as[" + i + "].s=" + s.selector;
  }
  if (!out.empty()) out += ")";
  return out;
}

common::authres::Result to_authres(const ChainResult& r, std::string_view client_ip) {
  common::authres::Result out;
  out.method = "arc";
  out.result = std::string(cv_name(r.result));
  if (r.result != Cv::kNone) out.comment = sealers_comment(r);
  if (r.result == Cv::kFail) out.reason = r.reason;
  if (r.result == Cv::kPass) {
    out.properties.push_back({"header", "oldest-pass", std::to_string(r.oldest_pass)});
  }
  if (!client_ip.empty()) out.properties.push_back({"smtp", "remote-ip", std::string(client_ip)});
  return out;
}

}  // namespace mxguard::milter::arc
