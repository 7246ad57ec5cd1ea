// Signs one message with one or more keys (RSA and Ed25519 for one domain: RFC 8463 dual
// signing) on libopendkim, relaxed/relaxed, headers and body streamed as they arrive so a big
// body costs no memory. Must never include libmilter, and never return a signature it did not
// finish: every failure throws SigningError (the milter then applies --on-signing-error).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "milters/dkim/keys.h"
#include "milters/dkim/library.h"

namespace mxguard::milter::dkim {

class SigningError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SignOptions {
  bool body_length = false;  // l=
};

class Signer {
 public:
  // `id` names the message in libopendkim's own messages (the queue id).
  Signer(const Library& lib, std::vector<SigningKey> keys, const std::string& id,
         SignOptions options = {});
  Signer(const Signer&) = delete;
  Signer& operator=(const Signer&) = delete;

  // One header field as header_field() builds it.
  void header(std::string_view field);
  void end_of_headers();
  void body(std::string_view chunk);
  // The DKIM-Signature values, one per key in key order, folded with "\n\t" and without the
  // field name or a leading space.
  std::vector<std::string> finish();
  const std::vector<SigningKey>& keys() const { return keys_; }

 private:
  std::vector<SigningKey> keys_;
  std::vector<HandlePtr> handles_;
};

}  // namespace mxguard::milter::dkim
