// Seals on the Authentication-Results headers written at this hop, so a later filter can tell
// them from headers that came with the message (DESIGN §2's trust rule, as Postfix allows it).
// Postfix never shows a milter the Received header it adds for this hop (milter8.c hides the
// first header), so "above our Received header" cannot be seen; instead the writer appends
// " (mxguard-seal=HEX)": HMAC-SHA256 under a secret the suite's daemons share
// (/etc/mxguard/hop-secret), over the queue id and the value. A sender cannot make one, and one
// copied from another message does not fit this queue id.
// Must never accept a header it cannot verify, and never throw while checking.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mxguard::common::authres {

inline constexpr const char* kDefaultHopSecretFile = "/etc/mxguard/hop-secret";

// Reads a hop secret (its text, white space trimmed; at least 16 octets). nullopt when the file
// does not exist; throws std::runtime_error naming the file for anything else.
std::optional<std::string> load_hop_secret(const std::string& path);

// The secret a daemon's hop-secret-file option names: nullopt when the option is empty or the
// built-in default file does not exist (a build tree, a host without the package); a missing
// file the admin named, or a bad one, throws std::runtime_error.
std::optional<std::string> configured_hop_secret(const std::string& path);

// The value with its seal appended. queue_id may be empty (the policy server answers before
// Postfix has one): such a seal says "written at a hop of ours", not "for this message".
std::string add_seal(std::string value, std::string_view secret, std::string_view queue_id);

enum class SealCheck {
  kNone,     // no seal, or one that does not verify: came with the message
  kHop,      // sealed without a queue id (mxguard-policyd): ours, but not bound to this message
  kMessage,  // sealed for this queue id (an earlier milter of this hop)
};
SealCheck check_seal(std::string_view value, std::string_view secret, std::string_view queue_id);

// The value without its seal comment (for parsing and rewriting).
std::string strip_seal(std::string_view value);

}  // namespace mxguard::common::authres
