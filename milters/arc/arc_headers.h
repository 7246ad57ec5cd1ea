// The three ARC header fields of RFC 8617 §4.1 as typed values: ARC-Seal (AS),
// ARC-Message-Signature (AMS) and ARC-Authentication-Results (AAR), parsed from the raw header
// value. Every required tag is checked here, once, so the chain code only sees well-formed
// sets. Must never throw on bad input (an error text says why a header is unusable) and never
// accept an instance outside 1..kMaxInstances.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxguard::milter::arc {

// RFC 8617 §4.2.1: i= is 1 to 50.
inline constexpr int kMaxInstances = 50;
// h= entries of one AMS (a long oversigning list is ~30).
inline constexpr std::size_t kMaxSignedHeaders = 256;

enum class Algorithm { kRsaSha256, kEd25519Sha256 };
std::string_view algorithm_name(Algorithm a);  // "rsa-sha256", "ed25519-sha256"
std::optional<Algorithm> parse_algorithm(std::string_view text);

enum class Canon { kSimple, kRelaxed };
std::string_view canon_name(Canon c);

// Chain validation status (cv=, and the chain result: RFC 8617 §4.4 knows no other).
enum class Cv { kNone, kPass, kFail };
std::string_view cv_name(Cv c);  // "none", "pass", "fail"

enum class HeaderKind { kSeal, kMessageSignature, kAuthResults };
// The kind of an ARC header field name (any case), or nullopt for other fields.
std::optional<HeaderKind> arc_header_kind(std::string_view name);

struct Seal {
  int instance = 0;
  Cv cv = Cv::kNone;
  Algorithm algorithm = Algorithm::kRsaSha256;
  std::string domain, selector;
  std::string signature;  // b=, decoded
};

struct MessageSignature {
  int instance = 0;
  Algorithm algorithm = Algorithm::kRsaSha256;
  Canon header_canon = Canon::kSimple;
  Canon body_canon = Canon::kSimple;
  std::string domain, selector;
  std::vector<std::string> headers;  // h=, lower case
  std::string body_hash;             // bh=, decoded
  std::string signature;             // b=, decoded
};

struct AuthResults {
  int instance = 0;
  std::string payload;  // what follows "i=N;" (authserv-id; results), trimmed
};

template <typename T>
struct Parsed {
  std::optional<T> value;
  std::string error;  // set when value is empty
  int instance = 0;   // i= when it could be read, even if the rest is bad (0: unreadable)
};

Parsed<Seal> parse_seal(std::string_view value);
Parsed<MessageSignature> parse_message_signature(std::string_view value);
Parsed<AuthResults> parse_auth_results(std::string_view value);

// Base64 (RFC 2045 alphabet), folding white space ignored; nullopt on anything else.
std::optional<std::string> base64_decode(std::string_view text);
std::string base64_encode(std::string_view data);

}  // namespace mxguard::milter::arc
