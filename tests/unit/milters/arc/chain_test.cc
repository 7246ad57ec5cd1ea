// ARC chains against python3-dkim as the independent oracle: chains it seals (1-3 hops, RSA)
// verify with milters/arc/chain.cc; RSA chains we seal (milters/arc/sealer.cc) verify with
// dkim.arc_verify (dkimpy has no Ed25519 for ARC: those are checked by us); tampering, broken
// numbering, missing keys and DNS failures fail; no ARC header fields is none. Also the A-R form
// mxguard-dmarc parses.
#include "milters/arc/chain.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <map>
#include <thread>

#include "common/authres/authres.h"
#include "milters/arc/sealer.h"
#include "milters/dkim/arc_keys.h"
#include "milters/dkim/keys.h"
#include "tests/fixtures/process.h"

namespace mxguard::milter::arc {
namespace {

using testing::TempDir;

const std::string kTool = std::string(MXGUARD_SOURCE_DIR) + "/tests/fixtures/dkim_tool.py";

struct Eml {
  std::vector<std::pair<std::string, std::string>> headers;  // name, raw value after ':'
  std::string body;
};

// A wire-format message split as a milter hands it over (values without their last CRLF).
Eml split_message(const std::string& text) {
  Eml m;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos + (eol < text.size() ? 1 : 0));
    pos = eol + 1;
    if (line == "\r\n" || line == "\n") break;
    if ((line[0] == ' ' || line[0] == '\t') && !m.headers.empty()) {
      m.headers.back().second += line;
      continue;
    }
    auto colon = line.find(':');
    m.headers.push_back({line.substr(0, colon), line.substr(colon + 1)});
  }
  for (auto& h : m.headers) {
    auto& v = h.second;
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
  }
  m.body = pos < text.size() ? text.substr(pos) : "";
  return m;
}

std::string join_message(const Eml& m) {
  std::string out;
  for (const auto& [n, v] : m.headers) out += n + ":" + v + "\r\n";
  return out + "\r\n" + m.body;
}

void feed(Message& msg, const Eml& m, bool will_seal, std::size_t chunk = 7) {
  for (const auto& [n, v] : m.headers) msg.header(n, v);
  msg.end_of_headers(will_seal);
  for (std::size_t i = 0; i < m.body.size(); i += chunk) msg.body(m.body.substr(i, chunk));
  msg.end_of_body();
}

const char* kMessage =
    "From: Alice <alice@orig.example>\r\n"
    "To: list@lists.example.org\r\n"
    "Subject: ARC test\r\n"
    "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
    "Message-ID: <arc-1@orig.example>\r\n"
    "\r\n"
    "Hello  world \r\n"
    "second line\t\r\n"
    "\r\n"
    "\r\n";

class ArcChainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_EQ(testing::run_command({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                                    "rsa_keygen_bits:2048", "-out", (*dir_ / "rsa.pem").string()}),
              0);
    ASSERT_EQ(testing::run_command({"openssl", "genpkey", "-algorithm", "ed25519", "-out",
                                    (*dir_ / "ed.pem").string()}),
              0);
    rsa_ = new dkim::PrivateKey(dkim::load_private_key((*dir_ / "rsa.pem").string()));
    ed_ = new dkim::PrivateKey(dkim::load_private_key((*dir_ / "ed.pem").string()));
    // python3-dkim reads Ed25519 private keys as the base64 seed (RFC 8463's form).
    PkeyPtr ed(private_key_from_pem(ed_->pem));
    unsigned char seed[32];
    std::size_t len = sizeof seed;
    ASSERT_EQ(EVP_PKEY_get_raw_private_key(ed.get(), seed, &len), 1);
    testing::write_file(*dir_ / "ed.seed",
                        base64_encode(std::string(reinterpret_cast<char*>(seed), len)) + "\n");
    std::string keys;
    for (const char* name : {"s1._domainkey.orig.example", "sel._domainkey.lists.example.org",
                             "s3._domainkey.relay.example.net", "arc._domainkey.mx.example.test"}) {
      records_[name] = rsa_->public_record;
      keys += std::string(name) + " " + rsa_->public_record + "\n";
    }
    records_["ed._domainkey.lists.example.org"] = ed_->public_record;
    keys += "ed._domainkey.lists.example.org " + ed_->public_record + "\n";
    testing::write_file(*dir_ / "keys.txt", keys);
    testing::write_file(*dir_ / "m0.eml", kMessage);
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ed_;
    delete dir_;
  }

  KeyFetcher keys() {
    return [this](const std::string& d, const std::string& s) {
      ++lookups_;
      std::string name = s + "._domainkey." + d;
      if (name == "slow._domainkey.orig.example") {
        return dkim::arc_key_answer({dkim::KeyLookupResult::Kind::kTempError, "", "timeout"});
      }
      auto it = records_.find(name);
      if (it == records_.end()) {
        return dkim::arc_key_answer({dkim::KeyLookupResult::Kind::kNotFound, "", "nxdomain"});
      }
      return dkim::arc_key_answer({dkim::KeyLookupResult::Kind::kFound, it->second, "ok"});
    };
  }

  // python3-dkim adds one hop to the message in file `in`, writing `out`.
  static void py_seal(const std::string& in, const std::string& out, const std::string& key,
                      const std::string& selector, const std::string& domain,
                      const std::string& cv = "") {
    std::string text;
    int rc = testing::run_command(
        {"/usr/bin/python3", kTool, "arc-sign", (*dir_ / in).string(), (*dir_ / key).string(),
         selector, domain, "mx." + domain, "rsa", cv.empty() ? (*dir_ / "keys.txt").string() : cv},
        &text);
    ASSERT_EQ(rc, 0) << text;
    testing::write_file(*dir_ / out, text);
  }
  static std::string read(const std::string& name) { return testing::read_file(*dir_ / name); }

  ChainResult verify_text(const std::string& text, std::size_t chunk = 7) {
    Message m;
    feed(m, split_message(text), false, chunk);
    return validate_chain(m, keys());
  }

  // Our seal on top of `text`; returns the new message text ("" when no set was made).
  std::string our_seal(const std::string& text, const dkim::PrivateKey& key,
                       const std::string& selector = "arc",
                       const std::string& domain = "mx.example.test",
                       std::string* skipped = nullptr) {
    Eml e = split_message(text);
    Message m;
    feed(m, e, true);
    ChainResult chain = validate_chain(m, keys());
    PkeyPtr k = private_key_from_pem(key.pem);
    SealRequest req;
    req.domain = domain;
    req.selector = selector;
    req.key = k.get();
    req.authserv_id = "mx.example.test";
    req.results =
        "spf=pass smtp.mailfrom=orig.example;\r\n\t" +
        common::authres::Builder("x").add(to_authres(chain, "198.51.100.7")).value(false).substr(3);
    req.timestamp = 1700000000;
    SealOutcome o = seal(m, chain, req);
    if (!o.set) {
      if (skipped) *skipped = o.skipped;
      return "";
    }
    Eml out = e;
    out.headers.insert(out.headers.begin(), {"ARC-Authentication-Results", o.set->auth_results});
    out.headers.insert(out.headers.begin(), {"ARC-Message-Signature", o.set->message_signature});
    out.headers.insert(out.headers.begin(), {"ARC-Seal", o.set->seal});
    return join_message(out);
  }

  static bool py_verify(const std::string& text, std::string* out) {
    testing::write_file(*dir_ / "check.eml", text);
    return testing::run_command({"/usr/bin/python3", kTool, "arc-verify",
                                 (*dir_ / "check.eml").string(), (*dir_ / "keys.txt").string()},
                                out) == 0;
  }

  static TempDir* dir_;
  static dkim::PrivateKey* rsa_;
  static dkim::PrivateKey* ed_;
  static std::map<std::string, std::string> records_;
  int lookups_ = 0;
};

TempDir* ArcChainTest::dir_ = nullptr;
dkim::PrivateKey* ArcChainTest::rsa_ = nullptr;
dkim::PrivateKey* ArcChainTest::ed_ = nullptr;
std::map<std::string, std::string> ArcChainTest::records_;

TEST_F(ArcChainTest, NoArcHeadersIsNone) {
  ChainResult r = verify_text(kMessage);
  EXPECT_EQ(r.result, Cv::kNone);
  EXPECT_EQ(r.instances, 0);
  EXPECT_EQ(lookups_, 0);
  auto ar = to_authres(r, "198.51.100.7");
  EXPECT_EQ(common::authres::Builder("mx").add(ar).value(false),
            "mx; arc=none smtp.remote-ip=198.51.100.7");
}

TEST_F(ArcChainTest, PythonChainsOfOneTwoThreeHopsPass) {
  py_seal("m0.eml", "p1.eml", "rsa.pem", "s1", "orig.example");
  py_seal("p1.eml", "p2.eml", "rsa.pem", "sel", "lists.example.org");
  py_seal("p2.eml", "p3.eml", "rsa.pem", "s3", "relay.example.net");
  for (const char* f : {"p1.eml", "p2.eml", "p3.eml"}) {
    for (std::size_t chunk : {1u, 7u, 4096u}) {
      ChainResult r = verify_text(read(f), chunk);
      EXPECT_EQ(r.result, Cv::kPass) << f << ": " << r.reason;
      EXPECT_EQ(r.oldest_pass, 0) << f;
    }
  }
  lookups_ = 0;
  ChainResult r = verify_text(read("p3.eml"));
  ASSERT_EQ(r.instances, 3);
  ASSERT_EQ(r.sealers.size(), 3u);
  EXPECT_EQ(r.sealers[0].domain, "relay.example.net");
  EXPECT_EQ(r.sealers[2].selector, "s1");
  EXPECT_EQ(lookups_, 3);  // one lookup per distinct d=/s=, though each signs an AS and AMS
}

TEST_F(ArcChainTest, AuthResultsFormIsTheOneDmarcParses) {
  py_seal("m0.eml", "f1.eml", "rsa.pem", "s1", "orig.example");
  py_seal("f1.eml", "f2.eml", "rsa.pem", "sel", "lists.example.org");
  ChainResult r = verify_text(read("f2.eml"));
  ASSERT_EQ(r.result, Cv::kPass) << r.reason;
  std::string v =
      common::authres::Builder("mx.example.test").add(to_authres(r, "198.51.100.7")).value(false);
  EXPECT_EQ(v,
            "mx.example.test; arc=pass (as[2].d=lists.example.org as[2].s=sel "
            "as[1].d=orig.example as[1].s=s1) header.oldest-pass=0 smtp.remote-ip=198.51.100.7");
  auto parsed = common::authres::parse(v);
  ASSERT_TRUE(parsed);
  ASSERT_EQ(parsed->results.size(), 1u);
  EXPECT_EQ(parsed->results[0].result, "pass");
  EXPECT_EQ(*parsed->results[0].property("header", "oldest-pass"), "0");
  EXPECT_EQ(parsed->results[0].comment,
            "(as[2].d=lists.example.org as[2].s=sel as[1].d=orig.example as[1].s=s1)");
}

// dkimpy 1.1.4 has no Ed25519 for ARC (arc_verify: "unknown signature algorithm"), so Ed25519
// sets are checked by us only (the Ed25519 operation itself is checked against RFC 8463's
// example in canon_test.cc): ours under a python hop, the python hop told the chain passed.
TEST_F(ArcChainTest, Ed25519SetUnderAPythonHopPasses) {
  std::string h1 = our_seal(kMessage, *ed_, "ed", "lists.example.org");
  ASSERT_FALSE(h1.empty());
  ASSERT_NE(h1.find("a=ed25519-sha256"), std::string::npos);
  testing::write_file(*dir_ / "e1.eml", h1);
  py_seal("e1.eml", "e2.eml", "rsa.pem", "s1", "orig.example", "cv=pass");
  ChainResult r = verify_text(read("e2.eml"));
  EXPECT_EQ(r.result, Cv::kPass) << r.reason;
  EXPECT_EQ(r.instances, 2);
}

TEST_F(ArcChainTest, TamperedBodyOrHeaderFails) {
  py_seal("m0.eml", "t1.eml", "rsa.pem", "s1", "orig.example");
  std::string text = read("t1.eml");
  std::string body = text;
  body.replace(body.find("second line"), 11, "second LINE");
  ChainResult r = verify_text(body);
  EXPECT_EQ(r.result, Cv::kFail);
  EXPECT_NE(r.reason.find("body hash"), std::string::npos) << r.reason;
  std::string header = text;
  header.replace(header.find("Subject: ARC test"), 17, "Subject: ARC TEST");
  r = verify_text(header);
  EXPECT_EQ(r.result, Cv::kFail);
  EXPECT_NE(r.reason.find("ARC-Message-Signature[1]"), std::string::npos) << r.reason;
  // The AAR is sealed by the AS.
  std::string aar = text;
  aar.replace(aar.find("spf=pass"), 8, "spf=fail");
  r = verify_text(aar);
  EXPECT_EQ(r.result, Cv::kFail);
  EXPECT_NE(r.reason.find("ARC-Seal[1]"), std::string::npos) << r.reason;
  // A fold changed in a relaxed-canonicalised field still passes.
  std::string fold = text;
  fold.replace(fold.find("Subject: ARC test"), 17, "Subject:  ARC\r\n\ttest");
  EXPECT_EQ(verify_text(fold).result, Cv::kPass);
}

TEST_F(ArcChainTest, BrokenNumberingOrIncompleteSetsFail) {
  py_seal("m0.eml", "n1.eml", "rsa.pem", "s1", "orig.example");
  py_seal("n1.eml", "n2.eml", "rsa.pem", "sel", "lists.example.org");
  std::string text = read("n2.eml");
  // Instance 2 renamed 3: a gap.
  std::string gap = text;
  for (std::size_t p; (p = gap.find("i=2;")) != std::string::npos;) gap.replace(p, 4, "i=3;");
  ChainResult r = verify_text(gap);
  EXPECT_EQ(r.result, Cv::kFail);
  EXPECT_NE(r.reason.find("incomplete"), std::string::npos) << r.reason;
  // A duplicate AAR.
  Eml e = split_message(text);
  for (const auto& h : e.headers) {
    if (h.first == "ARC-Authentication-Results") {
      e.headers.push_back(h);
      break;
    }
  }
  r = verify_text(join_message(e));
  EXPECT_EQ(r.result, Cv::kFail);
  EXPECT_NE(r.reason.find("duplicate"), std::string::npos) << r.reason;
  // A missing AMS.
  Eml missing = split_message(text);
  for (auto it = missing.headers.begin(); it != missing.headers.end(); ++it) {
    if (it->first == "ARC-Message-Signature") {
      missing.headers.erase(it);
      break;
    }
  }
  EXPECT_EQ(verify_text(join_message(missing)).result, Cv::kFail);
  // i=51 is not an instance.
  EXPECT_EQ(verify_text("ARC-Seal: i=51; cv=pass; a=rsa-sha256; d=x.example; s=s; b=AAAA\r\n" +
                        std::string(kMessage))
                .result,
            Cv::kFail);
  // A lone garbage ARC header.
  EXPECT_EQ(verify_text("ARC-Message-Signature: garbage\r\n" + std::string(kMessage)).result,
            Cv::kFail);
}

TEST_F(ArcChainTest, OldestPassIsTheOldestAmsThatStillValidates) {
  py_seal("m0.eml", "o1.eml", "rsa.pem", "s1", "orig.example");
  // The list verifies (pass), changes the subject (breaking AMS 1) and seals.
  std::string text = read("o1.eml");
  text.replace(text.find("Subject: ARC test"), 17, "Subject: [list] ARC test");
  testing::write_file(*dir_ / "o1b.eml", text);
  py_seal("o1b.eml", "o2.eml", "rsa.pem", "sel", "lists.example.org", "cv=pass");
  ChainResult r = verify_text(read("o2.eml"));
  EXPECT_EQ(r.result, Cv::kPass) << r.reason;
  EXPECT_EQ(r.oldest_pass, 2);
}

TEST_F(ArcChainTest, MissingKeyFailsAndTempErrorIsMarked) {
  py_seal("m0.eml", "k1.eml", "rsa.pem", "s1", "orig.example");
  std::string text = read("k1.eml");
  std::string nokey = text;
  for (std::size_t p; (p = nokey.find("s=s1;")) != std::string::npos;) nokey.replace(p, 5, "s=s9;");
  ChainResult r = verify_text(nokey);
  EXPECT_EQ(r.result, Cv::kFail);
  EXPECT_FALSE(r.key_temp_error);
  std::string slow = text;
  for (std::size_t p; (p = slow.find("s=s1;")) != std::string::npos;) slow.replace(p, 5, "s=slow;");
  r = verify_text(slow);
  EXPECT_EQ(r.result, Cv::kFail);
  EXPECT_TRUE(r.key_temp_error);
  // No seal over a chain judged on a DNS failure: that verdict would be permanent.
  std::string skipped;
  EXPECT_EQ(our_seal(slow, *rsa_, "arc", "mx.example.test", &skipped), "");
  EXPECT_EQ(skipped, "key lookup failed temporarily");
}

TEST_F(ArcChainTest, OurSealsVerifyWithPythonAndUs) {
  // Hop 1 by us, hop 2 by python, hop 3 by us (RSA: python checks), hop 4 by us (Ed25519).
  std::string h1 = our_seal(kMessage, *rsa_);
  ASSERT_FALSE(h1.empty());
  std::string out;
  EXPECT_TRUE(py_verify(h1, &out)) << out << h1;
  EXPECT_EQ(verify_text(h1).result, Cv::kPass);
  testing::write_file(*dir_ / "u1.eml", h1);
  py_seal("u1.eml", "u2.eml", "rsa.pem", "sel", "lists.example.org");
  std::string h3 = our_seal(read("u2.eml"), *rsa_);
  ASSERT_FALSE(h3.empty());
  EXPECT_NE(h3.find("ARC-Seal: i=3; a=rsa-sha256; cv=pass;"), std::string::npos) << h3;
  EXPECT_TRUE(py_verify(h3, &out)) << out << h3;
  std::string h4 = our_seal(h3, *ed_, "ed", "lists.example.org");
  ASSERT_FALSE(h4.empty());
  EXPECT_NE(h4.find("ARC-Seal: i=4; a=ed25519-sha256; cv=pass;"), std::string::npos) << h4;
  ChainResult r = verify_text(h4);
  EXPECT_EQ(r.result, Cv::kPass) << r.reason;
  EXPECT_EQ(r.instances, 4);
  // Our AAR carries our results with the chain's.
  EXPECT_NE(h4.find("ARC-Authentication-Results: i=4; mx.example.test;"), std::string::npos);
}

TEST_F(ArcChainTest, FailedChainIsSealedWithCvFailOnceOnly) {
  py_seal("m0.eml", "x1.eml", "rsa.pem", "s1", "orig.example");
  std::string text = read("x1.eml");
  text.replace(text.find("second line"), 11, "second LINE");
  std::string sealed = our_seal(text, *rsa_);
  ASSERT_FALSE(sealed.empty());
  EXPECT_NE(sealed.find("i=2; a=rsa-sha256; cv=fail;"), std::string::npos);
  ChainResult r = verify_text(sealed);
  EXPECT_EQ(r.result, Cv::kFail);
  EXPECT_TRUE(r.newest_cv_fail);
  std::string out;
  EXPECT_FALSE(py_verify(sealed, &out));
  // Never a set after cv=fail.
  std::string skipped;
  EXPECT_EQ(our_seal(sealed, *rsa_, "arc", "mx.example.test", &skipped), "");
  EXPECT_EQ(skipped, "chain already failed (cv=fail)");
}

TEST_F(ArcChainTest, FiftySetsAreTheMost) {
  std::string text = kMessage;
  for (int i = 0; i < 50; ++i) {
    text = our_seal(text, *ed_, "ed", "lists.example.org");
    ASSERT_FALSE(text.empty()) << i;
  }
  lookups_ = 0;
  ChainResult r = verify_text(text);
  EXPECT_EQ(r.result, Cv::kPass) << r.reason;
  EXPECT_EQ(r.instances, 50);
  EXPECT_EQ(lookups_, 1);
  std::string skipped;
  EXPECT_EQ(our_seal(text, *ed_, "ed", "lists.example.org", &skipped), "");
  EXPECT_EQ(skipped, "already 50 ARC sets");
}

// Found by fuzz_arc: a message with hundreds of copies of a signed field got an AMS whose h=
// our own validator refuses (more than kMaxSignedHeaders names). The sealer signs at most that.
TEST_F(ArcChainTest, SealOfAMessageWithManyCopiesOfAFieldValidates) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "To: list" + std::to_string(i) + "@lists.example.org\r\n";
  text += kMessage;
  std::string sealed = our_seal(text, *ed_, "ed", "lists.example.org");
  ASSERT_FALSE(sealed.empty());
  ChainResult r = verify_text(sealed);
  EXPECT_EQ(r.result, Cv::kPass) << r.reason;
}

TEST_F(ArcChainTest, KeyLookupsStopWhenTheirTimeBudgetIsSpent) {
  py_seal("m0.eml", "b1.eml", "rsa.pem", "s1", "orig.example");
  py_seal("b1.eml", "b2.eml", "rsa.pem", "sel", "lists.example.org");
  Message m(Limits{.key_lookup_budget = std::chrono::milliseconds(50)});
  feed(m, split_message(read("b2.eml")), false);
  int calls = 0;
  KeyFetcher slow = [&](const std::string& d, const std::string& s) {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    return keys()(d, s);
  };
  ChainResult r = validate_chain(m, slow);
  EXPECT_EQ(calls, 1);  // the second key is never asked for
  EXPECT_EQ(r.result, Cv::kFail);
  EXPECT_TRUE(r.key_temp_error);
  EXPECT_NE(r.reason.find("budget"), std::string::npos) << r.reason;
}

TEST_F(ArcChainTest, HeaderLimitsFailInsteadOfGrowing) {
  py_seal("m0.eml", "l1.eml", "rsa.pem", "s1", "orig.example");
  Eml e = split_message(read("l1.eml"));
  Limits lim;
  lim.max_headers = 5;
  Message m(lim);
  feed(m, e, false);
  EXPECT_TRUE(m.overflow());
  EXPECT_LE(m.fields().size(), 5u);
  ChainResult r = validate_chain(m, keys());
  EXPECT_EQ(r.result, Cv::kFail);
}

}  // namespace
}  // namespace mxguard::milter::arc
