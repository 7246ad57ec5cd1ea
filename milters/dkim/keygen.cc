// mxguard-keygen's logic (see keygen.h).
#include "milters/dkim/keygen.h"

#include <fcntl.h>
#include <grp.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

namespace mxguard::milter::dkim {
namespace {

struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct FdClose {
  void operator()(int* fd) const {
    if (*fd >= 0) ::close(*fd);
    delete fd;
  }
};

}  // namespace

void KeygenOptions::bind(common::config::Binder& b) {
  b.add("domain", domain, "the signing domain (d=)");
  b.add("selector", selector, "the selector (s=); names the output files");
  b.add("type", type, "rsa or ed25519");
  b.add("bits", bits, "RSA key size, 1024 to 4096");
  b.add("dir", dir, "directory for SELECTOR.private and SELECTOR.txt");
  b.add("user", user, "owner of the private key (the daemon's user; empty: current user)");
  b.add("key-file", key_file, "test: the private key to compare with DNS");
  b.add("dkim-config", dkim_config,
        "rotate: mxguard-dkim's configuration file (its key-table and signing-table)");
  b.add("new-selector", new_selector,
        "rotate: the new key's selector (empty: the current one's number plus one)");
  b.add("grace", grace, "rotate: how long the old selector stays published after the switch");
  b.add("reload-command", reload_command,
        "rotate: shell command that makes mxguard-dkim reload after the switch (empty: none)");
  b.add("commit", commit, "rotate: only continue rotations in progress, start none");
  common::dns::bind_options(b, dns);
}

void KeygenOptions::validate() const {
  using common::config::OptionError;
  if (type != "rsa" && type != "ed25519") throw OptionError("type", "rsa or ed25519");
  if (type == "rsa" && (bits < 1024 || bits > 4096)) throw OptionError("bits", "1024 to 4096");
  for (auto [name, value] : {std::pair{"selector", &selector}, {"new-selector", &new_selector}}) {
    // A selector is one or more DNS labels (RFC 6376 §3.1) and names files: nothing else.
    if (value->empty()) continue;
    bool ok = std::all_of(value->begin(), value->end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
    if (!ok || value->front() == '.' || value->back() == '.' ||
        value->find("..") != std::string::npos) {
      throw OptionError(name, "letters, digits, '-', '_' and inner dots");
    }
  }
  common::dns::validate_options(dns);
}

PrivateKey generate_key(KeyType type, unsigned bits) {
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
      EVP_PKEY_CTX_new_id(type == KeyType::kRsa ? EVP_PKEY_RSA : EVP_PKEY_ED25519, nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) throw KeyError("cannot set up key generation");
  if (type == KeyType::kRsa &&
      EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), static_cast<int>(bits)) != 1) {
    throw KeyError("cannot set the RSA key size");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_keygen(ctx.get(), &raw) != 1) throw KeyError("key generation failed");
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(raw);
  std::unique_ptr<BIO, BioFree> mem(BIO_new(BIO_s_mem()));
  if (!mem ||
      PEM_write_bio_PrivateKey(mem.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    throw KeyError("cannot encode the key");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(mem.get(), &data);
  // One parser for generated and loaded keys: what we write is what the daemon will read.
  return parse_private_key(std::string_view(data, static_cast<std::size_t>(n)), "generated key");
}

std::vector<std::string> split_txt(const std::string& record, std::size_t max) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < record.size(); i += max) out.push_back(record.substr(i, max));
  if (out.empty()) out.emplace_back();
  return out;
}

std::string zone_txt(const std::string& owner, const std::string& value,
                     const std::string& comment) {
  std::string out = owner + "\tIN\tTXT\t( ";
  auto parts = split_txt(value);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += "\n\t\t\t\t  ";
    out += '"';
    // Zone-file escapes (RFC 1035 §5.1), after splitting: a string's 255 bytes are its data.
    for (char c : parts[i]) {
      auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (u < 0x20 || u > 0x7e) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\%03u", static_cast<unsigned>(u));
        out += buf;
      } else {
        out += c;
      }
    }
    out += '"';
  }
  out += " )";
  if (!comment.empty()) out += "  ; " + comment;
  return out + "\n";
}

std::string zone_record(const std::string& selector, const std::string& domain,
                        const std::string& record) {
  return zone_txt(selector + "._domainkey", record, "DKIM key " + selector + " for " + domain);
}

std::string write_key_files(const KeygenOptions& o, const PrivateKey& key) {
  namespace fs = std::filesystem;
  fs::path dir(o.dir);
  fs::path priv = dir / (o.selector + ".private");
  fs::path txt = dir / (o.selector + ".txt");
  if (fs::exists(priv) || fs::exists(txt)) {
    throw KeyError(priv.string() + " or " + txt.string() + " exists; not overwriting a key");
  }
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  if (!o.user.empty()) {
    passwd* pw = ::getpwnam(o.user.c_str());
    if (pw == nullptr) throw KeyError("user '" + o.user + "' does not exist");
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  // Created 0600 from the start (O_EXCL): the key is never readable by others, not even briefly.
  std::unique_ptr<int, FdClose> fd(
      new int(::open(priv.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)));
  if (*fd < 0) throw KeyError("cannot create " + priv.string());
  // A half-made key must not stay behind: it would block the next attempt ("exists").
  auto fail = [&](const std::string& why) {
    ::unlink(priv.c_str());
    ::unlink(txt.c_str());
    throw KeyError(why);
  };
  if (::fchmod(*fd, 0600) != 0) fail("cannot chmod " + priv.string());
  if (!o.user.empty() && ::fchown(*fd, uid, gid) != 0) {
    fail("cannot give " + priv.string() + " to " + o.user);
  }
  const std::string& pem = key.pem;
  if (::write(*fd, pem.data(), pem.size()) != static_cast<ssize_t>(pem.size())) {
    fail("cannot write " + priv.string());
  }
  std::ofstream out(txt);
  out << zone_record(o.selector, o.domain, key.public_record);
  if (!out) fail("cannot write " + txt.string());
  return priv.string();
}

int run_keygen(const KeygenOptions& o, const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err) {
  std::string command = args.empty() ? "generate" : args[0];
  if (args.size() > 1) {
    err << "mxguard-keygen: fatal: one command only, not '" << args[1] << "'\n";
    return 64;
  }
  if (command == "rotate") return run_rotate(o, out, err);
  if (o.domain.empty() || o.selector.empty()) {
    err << "mxguard-keygen: fatal: --domain and --selector are required\n";
    return 64;
  }
  try {
    if (command == "generate") {
      KeyType t = o.type == "rsa" ? KeyType::kRsa : KeyType::kEd25519;
      PrivateKey key = generate_key(t, o.bits);
      std::string path = write_key_files(o, key);
      out << "wrote " << path << " and "
          << (std::filesystem::path(o.dir) / (o.selector + ".txt")).string() << "\n";
      out << "publish at " << o.selector << "._domainkey." << o.domain << " (TXT):\n";
      out << key.public_record << "\n";
      return 0;
    }
    if (command == "test") {
      if (o.key_file.empty()) {
        err << "mxguard-keygen: fatal: test needs --key-file\n";
        return 64;
      }
      PrivateKey key = load_private_key(o.key_file);
      common::dns::Resolver resolver(o.dns);
      KeyCheck c = check_published_key(resolver, o.domain, o.selector, key);
      (c.ok() ? out : err) << (c.ok() ? "ok: " : "error: ") << c.message << "\n";
      return c.ok() ? 0 : 1;
    }
    err << "mxguard-keygen: fatal: unknown command '" << command << "' (generate, test, rotate)\n";
    return 64;
  } catch (const std::exception& ex) {
    err << "mxguard-keygen: fatal: " << ex.what() << "\n";
    return 1;
  }
}

}  // namespace mxguard::milter::dkim
