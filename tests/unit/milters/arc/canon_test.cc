// DKIM canonicalisation for ARC (milters/arc/canon.cc): RFC 6376 §3.4.5's examples, the empty
// body rules, and that body hashes do not depend on how the milter splits the body.
#include "milters/arc/canon.h"

#include <gtest/gtest.h>

#include <map>

#include "common/util/strings.h"
#include "milters/arc/crypto.h"
#include "milters/arc/tag_list.h"
#include "tests/fixtures/process.h"

namespace mxguard::milter::arc {
namespace {

std::string body_hash(Canon c, std::string_view body, std::size_t chunk) {
  BodyHasher h(c);
  for (std::size_t i = 0; i < body.size(); i += chunk) h.update(body.substr(i, chunk));
  return base64_encode(h.finish());
}

std::string sha(std::string_view s) {
  Sha256 h;
  h.update(s);
  return base64_encode(h.digest());
}

TEST(ArcCanonTest, HeadersFollowRfc6376Examples) {
  // §3.4.5: "A: X" / "B : Y\t\r\n\tZ  " relaxed → "a:X" / "b:Y Z".
  EXPECT_EQ(canon_header(Canon::kRelaxed, "A", " X"), "a:X\r\n");
  EXPECT_EQ(canon_header(Canon::kRelaxed, "B ", " Y\t\r\n\tZ  "), "b:Y Z\r\n");
  EXPECT_EQ(canon_header(Canon::kSimple, "B ", " Y\t\n\tZ  "), "B : Y\t\r\n\tZ  \r\n");
}

TEST(ArcCanonTest, BodiesFollowRfc6376Examples) {
  std::string body = " C \r\nD \t E\r\n\r\n\r\n";
  EXPECT_EQ(body_hash(Canon::kRelaxed, body, 100), sha(" C\r\nD E\r\n"));
  EXPECT_EQ(body_hash(Canon::kSimple, body, 100), sha(" C \r\nD \t E\r\n"));
}

TEST(ArcCanonTest, EmptyBodies) {
  EXPECT_EQ(body_hash(Canon::kSimple, "", 1), sha("\r\n"));
  EXPECT_EQ(body_hash(Canon::kRelaxed, "", 1), sha(""));
  EXPECT_EQ(body_hash(Canon::kSimple, "\r\n\r\n", 1), sha("\r\n"));
  EXPECT_EQ(body_hash(Canon::kRelaxed, " \t\r\n\r\n", 1), sha(""));
  // An unterminated last line gets its CRLF; a bare LF is a line end; a lone CR is data.
  EXPECT_EQ(body_hash(Canon::kSimple, "a", 1), sha("a\r\n"));
  EXPECT_EQ(body_hash(Canon::kRelaxed, "a \n\nb\r", 1), sha("a\r\n\r\nb\r\r\n"));
}

TEST(ArcCanonTest, ChunkingDoesNotChangeTheHash) {
  std::string body;
  for (int i = 0; i < 300; ++i) {
    body += std::string(i % 7, ' ') + "line " + std::to_string(i) + std::string(i % 3, '\t');
    body += i % 11 == 0 ? "\n" : "\r\n";
    if (i % 13 == 0) body += "\r\n\r\n";
  }
  body += "\r\n\r\n \r\n";
  for (Canon c : {Canon::kSimple, Canon::kRelaxed}) {
    std::string whole = body_hash(c, body, body.size());
    for (std::size_t chunk : {1u, 2u, 3u, 5u, 64u, 4095u}) {
      EXPECT_EQ(body_hash(c, body, chunk), whole) << chunk;
    }
  }
}

TEST(ArcCanonTest, StripsOnlyTheBValue) {
  EXPECT_EQ(strip_b_value(" i=1; a=rsa-sha256; bh=abc; b=xy\r\n\tz; d=x"),
            " i=1; a=rsa-sha256; bh=abc; b=; d=x");
  EXPECT_EQ(strip_b_value(" i=1; b=abc"), " i=1; b=");
  EXPECT_EQ(strip_b_value(" b = abc ;i=1"), " b =;i=1");
  EXPECT_EQ(strip_b_value(" i=1; bh=abc"), " i=1; bh=abc");
}

// RFC 8463 §A's message, signed with Ed25519 and RSA (relaxed/relaxed, oversigned h=), checked
// with this library's canonicalisation, h= selection order and signature code: an independent
// test vector for the operations an AMS uses, Ed25519 included.
TEST(ArcCanonTest, Rfc8463ExampleVerifies) {
  std::string text = testing::read_file(std::string(MXGUARD_SOURCE_DIR) +
                                        "/tests/fuzz/corpus/dkim_verify/rfc8463");
  // The file is in wire form (CRLF).
  std::vector<std::pair<std::string, std::string>> fields;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find("\r\n", pos);
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) break;
    if (line[0] == ' ') {
      fields.back().second += "\r\n" + line;
      continue;
    }
    auto colon = line.find(':');
    fields.push_back({line.substr(0, colon), line.substr(colon + 1)});
  }
  std::string body = text.substr(pos);
  EXPECT_EQ(body_hash(Canon::kRelaxed, body, 5), "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");

  KeyAnswer ed;
  ed.status = KeyAnswer::Status::kFound;
  ed.key_type = "ed25519";
  ed.public_key = *base64_decode("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  KeyAnswer rsa;
  rsa.status = KeyAnswer::Status::kFound;
  rsa.public_key = *base64_decode(
      "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/"
      "J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/"
      "8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2"
      "EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
  for (int sig = 0; sig < 2; ++sig) {
    const auto& value = fields[sig].second;
    auto tags = parse_tag_list(value);
    ASSERT_TRUE(tags.list);
    Algorithm alg = *parse_algorithm(*tags.list->get("a"));
    Sha256 h;
    std::map<std::string, int> used;
    for (auto name : common::util::split(*tags.list->get("h"), ':')) {
      std::string n = common::util::lower(common::util::trim(name));
      int skip = used[n]++;
      int seen = 0;
      for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
        if (common::util::lower(it->first) == n && seen++ == skip) {
          h.update(canon_header(Canon::kRelaxed, it->first, it->second));
          break;
        }
      }
    }
    std::string self = canon_header(Canon::kRelaxed, fields[sig].first, strip_b_value(value));
    h.update(self.substr(0, self.size() - 2));
    std::string error;
    PkeyPtr key = public_key_for(alg == Algorithm::kEd25519Sha256 ? ed : rsa, alg, 1024, &error);
    ASSERT_TRUE(key) << error;
    EXPECT_TRUE(verify_digest(key.get(), alg, h.digest(), *base64_decode(*tags.list->get("b"))))
        << sig;
  }
}

}  // namespace
}  // namespace mxguard::milter::arc
