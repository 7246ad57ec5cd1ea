// Key loading and key selection (see keys.h). OpenSSL objects live in unique_ptrs only.
#include "milters/dkim/keys.h"

#include <grp.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <sstream>

#include "common/mail/from.h"
#include "common/util/strings.h"
#include "milters/dkim/key_cache.h"
#include "milters/dkim/options.h"

namespace mxguard::milter::dkim {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

using mxguard::common::util::lower;

std::string trim(std::string_view s) { return std::string(common::util::trim(s)); }

// Keys are read at start-up as root and again on reload as the daemon user: a key only root
// can read would make every reload fail. So at load, as root, the configured user must be
// able to read each key file (owner, group membership or other bits).
void require_readable_by(const std::string& path, const std::string& user) {
  if (user.empty() || ::geteuid() != 0) return;  // no user switch: reading it just worked
  struct passwd* pw = ::getpwnam(user.c_str());
  struct stat st {};
  if (pw == nullptr || ::stat(path.c_str(), &st) != 0) return;  // reported elsewhere
  bool readable = false;
  if (st.st_uid == pw->pw_uid) {
    readable = (st.st_mode & S_IRUSR) != 0;
  } else {
    int n = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(n));
    if (::getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n) < 0) {
      groups.resize(static_cast<std::size_t>(n));
      ::getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n);
    }
    groups.resize(static_cast<std::size_t>(std::max(n, 0)));
    bool member = std::find(groups.begin(), groups.end(), st.st_gid) != groups.end();
    readable = member ? (st.st_mode & S_IRGRP) != 0 : (st.st_mode & S_IROTH) != 0;
  }
  if (!readable) {
    throw KeyError(path + ": not readable by user '" + user +
                   "', who reads it again on every reload (chown it to that user, mode 0600)");
  }
}

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw KeyError(path + ": cannot read (missing, or not readable by this user)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Splits "a:b:c" at the first two colons (the path may contain colons).
bool split3(std::string_view v, std::string& a, std::string& b, std::string& c) {
  auto p1 = v.find(':');
  if (p1 == std::string_view::npos) return false;
  auto p2 = v.find(':', p1 + 1);
  if (p2 == std::string_view::npos) return false;
  a = trim(v.substr(0, p1));
  b = trim(v.substr(p1 + 1, p2 - p1 - 1));
  c = trim(v.substr(p2 + 1));
  return !a.empty() && !b.empty() && !c.empty();
}

}  // namespace

std::string_view key_type_name(KeyType t) { return t == KeyType::kRsa ? "rsa" : "ed25519"; }

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64_decode(std::string_view text) {
  std::string clean;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') {
      throw std::invalid_argument("not base64");
    }
    clean.push_back(c);
  }
  if (clean.size() % 4 != 0) throw std::invalid_argument("base64 length is not a multiple of 4");
  std::string out(clean.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  if (n < 0) throw std::invalid_argument("bad base64");
  std::size_t len = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts padding as zero bytes.
  if (clean.size() >= 1 && clean[clean.size() - 1] == '=') --len;
  if (clean.size() >= 2 && clean[clean.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

PrivateKey parse_private_key(std::string_view text, const std::string& origin) {
  PkeyPtr pkey;
  {
    BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    if (!bio) throw KeyError(origin + ": out of memory");
    pkey.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  }
  if (!pkey) {
    // Not PEM: perhaps a bare Ed25519 seed in base64 (RFC 8463's example key form).
    std::string seed;
    try {
      seed = base64_decode(text);
    } catch (const std::invalid_argument&) {
    }
    if (seed.size() == 32) {
      pkey.reset(EVP_PKEY_new_raw_private_key(
          EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), 32));
    }
  }
  if (!pkey) throw KeyError(origin + ": not a PEM private key or base64 Ed25519 seed");

  PrivateKey out;
  int id = EVP_PKEY_get_base_id(pkey.get());
  if (id == EVP_PKEY_RSA) {
    out.type = KeyType::kRsa;
    out.bits = EVP_PKEY_get_bits(pkey.get());
    if (out.bits < 1024) {
      throw KeyError(origin + ": RSA key of " + std::to_string(out.bits) +
                     " bits refused (RFC 8301: at least 1024)");
    }
    if (out.bits > 4096) {
      throw KeyError(origin + ": RSA key of " + std::to_string(out.bits) +
                     " bits refused (verifiers need not accept more than 4096)");
    }
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(pkey.get(), &der);
    if (len <= 0) throw KeyError(origin + ": cannot derive the public key");
    out.public_p = base64_encode(
        std::string_view(reinterpret_cast<char*>(der), static_cast<std::size_t>(len)));
    OPENSSL_free(der);
    out.public_record = "v=DKIM1; k=rsa; p=" + out.public_p;
  } else if (id == EVP_PKEY_ED25519) {
    out.type = KeyType::kEd25519;
    out.bits = 256;
    unsigned char raw[32];
    std::size_t len = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(pkey.get(), raw, &len) != 1 || len != 32) {
      throw KeyError(origin + ": cannot derive the Ed25519 public key");
    }
    out.public_p = base64_encode(std::string_view(reinterpret_cast<char*>(raw), len));
    out.public_record = "v=DKIM1; k=ed25519; p=" + out.public_p;
  } else {
    throw KeyError(origin + ": key type is neither RSA nor Ed25519");
  }
  BioPtr mem(BIO_new(BIO_s_mem()));
  if (!mem ||
      PEM_write_bio_PrivateKey(mem.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    throw KeyError(origin + ": cannot re-encode the key");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(mem.get(), &data);
  out.pem.assign(data, static_cast<std::size_t>(n));
  // libopendkim re-reads this text for every signature; let it reuse this parse.
  remember_parsed_key(out.pem, pkey.get());
  return out;
}

PrivateKey load_private_key(const std::string& path) {
  std::string text = read_whole(path);
  return parse_private_key(text, path);
}

bool wildcard_match(std::string_view pattern, std::string_view text) {
  // Iterative glob with backtracking on the last '*': linear enough for table sizes.
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  auto eq = [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  };
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && eq(pattern[p], text[t])) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string from_address(std::string_view value) {
  // The suite's one From parser (common/mail), the same that mxguard-dmarc evaluates: the key
  // we sign with and the author DMARC checks can never be two different addresses.
  auto parsed = common::mail::parse_from(value);
  if (!parsed.ok() || parsed.mailboxes.size() != 1) return "";
  const auto& m = parsed.mailboxes.front();
  return m.local + "@" + m.domain;
}

SigningKey parse_arc_seal_key(const std::string& spec, const std::string& user) {
  std::string d, s, path;
  if (!split3(spec, d, s, path)) {
    throw KeyError("'" + spec + "' is not domain:selector:/path/to/key");
  }
  require_readable_by(path, user);  // reloads run as --user
  return {lower(d), s, path, std::make_shared<const PrivateKey>(load_private_key(path))};
}

KeyStore::KeyStore(const Options& o) : user_(o.daemon.user) {
  std::map<std::string, std::shared_ptr<const PrivateKey>> cache;  // one load per file
  auto load = [&](const std::string& path, const std::string& origin) {
    auto it = cache.find(path);
    if (it != cache.end()) return it->second;
    try {
      require_readable_by(path, o.daemon.user);
      auto key = std::make_shared<const PrivateKey>(load_private_key(path));
      cache.emplace(path, key);
      return key;
    } catch (const KeyError& ex) {
      throw KeyError(origin + ": " + ex.what());
    }
  };
  if (o.selector.size() != o.key_file.size()) {
    throw KeyError("selector: give one selector per key-file (" +
                   std::to_string(o.selector.size()) + " selectors, " +
                   std::to_string(o.key_file.size()) + " key files)");
  }
  if (!o.domain.empty() && o.selector.empty()) {
    throw KeyError("domain: needs selector and key-file");
  }
  if (o.domain.empty() && !o.selector.empty()) {
    throw KeyError("selector: needs domain");
  }
  for (const auto& d : o.domain) {
    for (std::size_t i = 0; i < o.selector.size(); ++i) {
      simple_.push_back({lower(d), o.selector[i], o.key_file[i], load(o.key_file[i], "key-file")});
    }
  }
  for (const auto& entry : o.signing_key) {
    std::string d, s, path;
    if (!split3(entry, d, s, path)) {
      throw KeyError("signing-key: '" + entry + "' is not domain:selector:/path/to/key");
    }
    simple_.push_back({lower(d), s, path, load(path, "signing-key")});
  }
  if (o.key_table.empty() != o.signing_table.empty()) {
    throw KeyError(o.key_table.empty() ? "signing-table: needs key-table"
                                       : "key-table: needs signing-table");
  }
  if (!o.key_table.empty()) {
    load_key_table(o.key_table);
    load_signing_table(o.signing_table);
  }
}

namespace {
// Calls fn(line_number, fields) for every non-empty, non-comment line of a table file.
template <class F>
void for_each_line(const std::string& path, F&& fn) {
  std::ifstream in(path);
  if (!in) throw KeyError(path + ": cannot read (missing, or not readable by this user)");
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream ss(line);
    std::vector<std::string> fields;
    std::string f;
    while (ss >> f) fields.push_back(f);
    if (fields.empty()) continue;
    fn(n, fields);
  }
}
}  // namespace

void KeyStore::load_key_table(const std::string& path) {
  std::map<std::string, std::shared_ptr<const PrivateKey>> cache;
  for_each_line(path, [&](int n, const std::vector<std::string>& f) {
    std::string where = path + ":" + std::to_string(n);
    if (f.size() != 2) throw KeyError(where + ": expected 'keyname domain:selector:/path/to/key'");
    TableKey k;
    if (!split3(f[1], k.domain, k.selector, k.path)) {
      throw KeyError(where + ": '" + f[1] + "' is not domain:selector:/path/to/key");
    }
    for (const auto& [name, existing] : table_) {
      if (name == f[0]) throw KeyError(where + ": key name '" + f[0] + "' defined twice");
    }
    auto it = cache.find(k.path);
    if (it == cache.end()) {
      try {
        require_readable_by(k.path, user_);
        it = cache.emplace(k.path, std::make_shared<const PrivateKey>(load_private_key(k.path)))
                 .first;
      } catch (const KeyError& ex) {
        throw KeyError(where + ": " + ex.what());
      }
    }
    k.key = it->second;
    k.domain = k.domain == "%" ? "%" : lower(k.domain);
    table_.emplace_back(f[0], std::move(k));
  });
}

void KeyStore::load_signing_table(const std::string& spec) {
  std::string path = spec;
  if (path.rfind("refile:", 0) == 0) {
    refile_ = true;
    path = path.substr(7);
  } else if (auto colon = path.find(':'); colon != std::string::npos && path[0] != '/') {
    throw KeyError("signing-table: only plain files and refile: are supported, not '" +
                   path.substr(0, colon) + ":'");
  }
  for_each_line(path, [&](int n, const std::vector<std::string>& f) {
    std::string where = path + ":" + std::to_string(n);
    if (f.size() < 2) throw KeyError(where + ": expected 'pattern keyname [keyname…]'");
    for (std::size_t i = 1; i < f.size(); ++i) {
      bool known =
          std::any_of(table_.begin(), table_.end(), [&](const auto& e) { return e.first == f[i]; });
      if (!known) throw KeyError(where + ": key name '" + f[i] + "' is not in the key table");
      signing_.push_back({lower(f[0]), f[i]});
    }
  });
}

namespace {
// The one domain a SigningTable pattern names, or "" when it names many ("*", "*@*.example",
// ".example" for subdomains) or none.
std::string pattern_domain(const std::string& pattern, bool refile) {
  auto at = pattern.rfind('@');
  std::string domain = at == std::string::npos ? (refile ? "" : pattern) : pattern.substr(at + 1);
  if (domain.empty() || domain.front() == '.' || domain.find('*') != std::string::npos) return "";
  return domain;
}
}  // namespace

KeyStore::Inventory KeyStore::inventory() const {
  Inventory inv;
  auto add = [&](SigningKey k) {
    bool dup = std::any_of(inv.keys.begin(), inv.keys.end(), [&](const SigningKey& o) {
      return o.domain == k.domain && o.selector == k.selector;
    });
    if (!dup) inv.keys.push_back(std::move(k));
  };
  for (const auto& k : simple_) add(k);
  for (const auto& e : signing_) {
    for (const auto& [name, k] : table_) {
      if (name != e.key_name) continue;
      std::string domain = k.domain == "%" ? pattern_domain(e.pattern, refile_) : k.domain;
      if (domain.empty()) {
        inv.unnamed.push_back("SigningTable pattern '" + e.pattern + "' signs with key '" + name +
                              "' (domain %) for domains it does not name");
        continue;
      }
      add({domain, k.selector, k.path, k.key});
    }
  }
  return inv;
}

std::vector<SigningKey> KeyStore::keys_for(std::string_view address) const {
  std::vector<SigningKey> out;
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return out;
  std::string addr = lower(address);
  std::string domain = addr.substr(at + 1);
  for (const auto& k : simple_) {
    if (k.domain == domain) out.push_back(k);
  }
  if (signing_.empty()) return out;

  auto add = [&](const std::string& key_name) {
    for (const auto& [name, k] : table_) {
      if (name != key_name) continue;
      SigningKey sk{k.domain == "%" ? domain : k.domain, k.selector, k.path, k.key};
      bool dup = std::any_of(out.begin(), out.end(), [&](const SigningKey& o) {
        return o.domain == sk.domain && o.selector == sk.selector;
      });
      if (!dup) out.push_back(std::move(sk));
    }
  };
  if (refile_) {
    // Every matching line signs (OpenDKIM with MultipleSignatures): dual signing needs two.
    for (const auto& e : signing_) {
      if (wildcard_match(e.pattern, addr)) add(e.key_name);
    }
    return out;
  }
  // Plain table: the most specific key that has entries wins: address, domain, parent
  // domains as ".parent", then "*".
  std::vector<std::string> candidates{addr, domain};
  for (auto dot = domain.find('.'); dot != std::string::npos; dot = domain.find('.', dot + 1)) {
    candidates.push_back(domain.substr(dot));
  }
  candidates.push_back("*");
  for (const auto& c : candidates) {
    bool any = false;
    for (const auto& e : signing_) {
      if (e.pattern == c) {
        add(e.key_name);
        any = true;
      }
    }
    if (any) break;
  }
  return out;
}

}  // namespace mxguard::milter::dkim
