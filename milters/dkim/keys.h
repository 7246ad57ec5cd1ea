// Signing keys and the choice of keys for a message: the simple options (--domain, --selector,
// --key-file, --signing-key) and OpenDKIM's KeyTable/SigningTable files, read unchanged
// (refile: wildcards, "%" for the signing domain). Everything is loaded and checked at once, so
// a bad table or key is a start-up (or reload) error with file:line, never a surprise per
// message. Must never include libmilter, and never hand out a key shorter than 1024 bits.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mxguard::milter::dkim {

struct Options;

enum class KeyType { kRsa, kEd25519 };
std::string_view key_type_name(KeyType t);  // "rsa", "ed25519"

// A private key read and checked at load time.
struct PrivateKey {
  KeyType type = KeyType::kRsa;
  int bits = 0;               // RSA modulus size; 256 for Ed25519
  std::string pem;            // PKCS#8 PEM, what libopendkim's loader reads
  std::string public_record;  // the DNS TXT value matching this key ("v=DKIM1; k=…; p=…")
  std::string public_p;       // just the p= value
};

// Reads a PEM private key (PKCS#1 or PKCS#8, RSA or Ed25519) or a base64 Ed25519 seed (the
// RFC 8463 example form). Throws KeyError; RSA keys under 1024 or over 4096 bits are refused.
PrivateKey load_private_key(const std::string& path);
PrivateKey parse_private_key(std::string_view text, const std::string& origin);

class KeyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One signature to make.
struct SigningKey {
  std::string domain;    // d=
  std::string selector;  // s=
  std::string path;      // for log lines
  std::shared_ptr<const PrivateKey> key;
};

class KeyStore {
 public:
  // Loads and checks everything the options name. Throws KeyError with "file:line: reason"
  // (tables) or "option: reason" (simple options).
  explicit KeyStore(const Options& options);
  KeyStore() = default;

  // The keys that sign a message whose From address is `address` (local@domain, any case).
  // Empty when we do not sign for that sender.
  std::vector<SigningKey> keys_for(std::string_view address) const;
  bool empty() const { return simple_.empty() && table_.empty(); }

  // Every (domain, selector) this store signs with, each once, for checking what DNS
  // publishes (mxguard-dnscheck): the simple options' keys, then the KeyTable keys the
  // SigningTable uses, in table order. A "%" key takes the domain its SigningTable pattern
  // names; a pattern with a wildcard in its domain names none, and is described in `unnamed`.
  struct Inventory {
    std::vector<SigningKey> keys;
    std::vector<std::string> unnamed;
  };
  Inventory inventory() const;

 private:
  struct TableKey {
    std::string domain;  // may be "%": the signing domain
    std::string selector;
    std::string path;
    std::shared_ptr<const PrivateKey> key;
  };
  struct SigningEntry {
    std::string pattern;  // lower case; address, domain, or a refile: wildcard
    std::string key_name;
  };
  void load_key_table(const std::string& path);
  void load_signing_table(const std::string& spec);

  std::vector<SigningKey> simple_;                       // keyed by domain
  std::vector<std::pair<std::string, TableKey>> table_;  // KeyTable: name → key
  std::vector<SigningEntry> signing_;
  bool refile_ = false;
  std::string user_;  // --user: must be able to read every key file (reloads run as it)
};

// --arc-seal-key "domain:selector:/path/to/key": the key loaded and checked, readable by
// `user` (--user; empty: this process) as KeyStore requires of its keys. Throws KeyError.
SigningKey parse_arc_seal_key(const std::string& spec, const std::string& user);

// "*" matches any run of characters (refile: semantics), case-insensitively.
bool wildcard_match(std::string_view pattern, std::string_view text);

// The addr-spec of a From header value: "Joe <joe@Example.COM>" → "joe@example.com" (domain
// lower-cased), by common/mail's parser. Empty when the value does not parse or does not name
// exactly one mailbox (no single author: nothing to sign for).
std::string from_address(std::string_view value);

}  // namespace mxguard::milter::dkim

namespace mxguard::milter::dkim {
std::string base64_encode(std::string_view data);
// Ignores white space; throws std::invalid_argument on anything else that is not base64.
std::string base64_decode(std::string_view text);
}  // namespace mxguard::milter::dkim
