// mxguard-keygen's logic: DKIM key pairs (RSA 1024–4096 or Ed25519), the DNS TXT record to
// publish (zone-file form split into 255-byte strings, and the one-line value for DNS web
// forms), the check that a published record matches a private key (key_record.h), and the
// dispatch to key rotation (rotate.h). Must never write a private key readable by anyone but
// its owner, and never overwrite an existing key.
#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

#include "common/config/config.h"
#include "common/dns/options.h"
#include "common/dns/resolver.h"
#include "milters/dkim/key_record.h"
#include "milters/dkim/keys.h"
#include "milters/dkim/options.h"
#include "milters/dkim/rotate.h"

namespace mxguard::milter::dkim {

struct KeygenOptions {
  std::string domain;
  std::string selector;
  std::string type = "rsa";  // rsa | ed25519
  unsigned bits = 2048;      // RSA only
  std::string dir = ".";
  std::string user;      // owner of the private key file (the daemon's user); empty: us
  std::string key_file;  // for "test": the private key to check
  // rotate (rotate.h):
  std::string dkim_config = kDefaultConfigFile;
  std::string new_selector;  // empty: next_selector() of the current one
  common::config::Duration grace{std::chrono::hours(24 * 7)};
  // Both shapes: whichever of the two runs is reloaded; neither running is no error.
  std::string reload_command =
      "systemctl try-reload-or-restart mxguard-dkim.service mxguard-milter.service";
  bool commit = false;
  common::dns::ResolverOptions dns;

  void bind(common::config::Binder& b);
  void validate() const;
};

// Generates a key; the PEM is PKCS#8. Throws KeyError.
PrivateKey generate_key(KeyType type, unsigned bits);

// A TXT record in zone-file form, "OWNER IN TXT ( "…" "…" )  ; COMMENT", its value split into
// character-strings of at most 255 bytes (RFC 1035); no comment when `comment` is empty. The
// one printer of records to publish (keygen's SELECTOR.txt, mxguard-dnscheck's fixes).
std::string zone_txt(const std::string& owner, const std::string& value,
                     const std::string& comment = "");
// "sel._domainkey IN TXT ( "v=DKIM1; k=rsa; " "p=…" )  ; DKIM key sel for domain".
std::string zone_record(const std::string& selector, const std::string& domain,
                        const std::string& record);
std::vector<std::string> split_txt(const std::string& record, std::size_t max = 255);

// Writes DIR/SELECTOR.private (0600, chowned to `user` if given) and DIR/SELECTOR.txt; refuses
// to overwrite. Returns the private key's path. Throws KeyError.
std::string write_key_files(const KeygenOptions& o, const PrivateKey& key);

// Runs "generate" (default), "test" or "rotate"; returns the exit code.
int run_keygen(const KeygenOptions& o, const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err);

}  // namespace mxguard::milter::dkim
