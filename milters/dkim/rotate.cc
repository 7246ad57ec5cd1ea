// DKIM key rotation (see rotate.h). The glue (run_rotate) reads the tables and the state,
// looks up DNS, asks decide_rotation() and acts; every file it changes is replaced by rename.
#include "milters/dkim/rotate.h"

#include <fcntl.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/dns/resolver.h"
#include "common/util/strings.h"
#include "milters/dkim/keygen.h"
#include "milters/dkim/options.h"

extern char** environ;  // NOLINT: POSIX declares it nowhere

namespace mxguard::milter::dkim {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw KeyError(path + ": cannot read");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The white-space separated fields of a table line, '#' comments dropped.
std::vector<std::string> fields_of(std::string line) {
  if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
  std::istringstream ss(line);
  std::vector<std::string> out;
  std::string f;
  while (ss >> f) out.push_back(f);
  return out;
}

// Calls fn(line_number, fields) for every line of `text` that has fields.
template <class F>
void for_each_line(const std::string& text, F&& fn) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    auto f = fields_of(line);
    if (!f.empty()) fn(n, f);
  }
}

void fsync_directory(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // the rename happened; durability is the file system's then
  ::fsync(fd);
  ::close(fd);
}

// The owner of `path` by name, or "" when it has none we can name.
std::string owner_name(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  passwd* pw = ::getpwuid(st.st_uid);
  return pw != nullptr ? pw->pw_name : "";
}

// Runs `command` with /bin/sh; its output goes where ours goes. Returns its exit status, or
// 128 + the signal that ended it, or -1 when it could not be started.
int run_shell(const std::string& command) {
  std::string sh = "/bin/sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv, environ) != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

bool same_domain(const std::string& a, const std::string& b) { return common::util::iequals(a, b); }

}  // namespace

std::vector<KeyTableEntry> read_key_table(const std::string& path) {
  std::vector<KeyTableEntry> out;
  for_each_line(read_text(path), [&](int n, const std::vector<std::string>& f) {
    std::string where = path + ":" + std::to_string(n);
    if (f.size() != 2) throw KeyError(where + ": expected 'keyname domain:selector:/path/to/key'");
    auto p1 = f[1].find(':');
    auto p2 = p1 == std::string::npos ? p1 : f[1].find(':', p1 + 1);
    if (p2 == std::string::npos || p1 == 0 || p2 == p1 + 1 || p2 + 1 == f[1].size()) {
      throw KeyError(where + ": '" + f[1] + "' is not domain:selector:/path/to/key");
    }
    out.push_back(
        {f[0], f[1].substr(0, p1), f[1].substr(p1 + 1, p2 - p1 - 1), f[1].substr(p2 + 1), n});
  });
  return out;
}

std::string rewrite_key_table(std::string_view text, const std::string& key_name,
                              const std::string& value) {
  std::string out;
  bool found = false;
  for (auto line : common::util::split(text, '\n')) {
    std::string_view content = line.substr(0, line.find('#'));
    // The first two fields' places in the line: the name, then the value to replace.
    auto skip_space = [&](std::size_t i) {
      while (i < content.size() && std::isspace(static_cast<unsigned char>(content[i]))) ++i;
      return i;
    };
    auto skip_field = [&](std::size_t i) {
      while (i < content.size() && !std::isspace(static_cast<unsigned char>(content[i]))) ++i;
      return i;
    };
    std::size_t name_start = skip_space(0), name_end = skip_field(name_start);
    std::size_t value_start = skip_space(name_end), value_end = skip_field(value_start);
    if (!found && content.substr(name_start, name_end - name_start) == key_name &&
        value_end > value_start) {
      out.append(line.substr(0, value_start));
      out.append(value);
      out.append(line.substr(value_end));
      found = true;
    } else {
      out.append(line);
    }
    out.push_back('\n');
  }
  out.pop_back();  // split() gave one piece more than there were newlines
  if (!found) throw KeyError("the KeyTable has no key named '" + key_name + "'");
  return out;
}

std::string_view state_name(Rotation::State s) {
  switch (s) {
    case Rotation::State::kPending:
      return "pending";
    case Rotation::State::kSwitched:
      return "switched";
    case Rotation::State::kRetired:
      return "retired";
  }
  return "pending";
}

std::string format_utc(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<std::int64_t> parse_utc(std::string_view text) {
  std::string s(text);
  std::tm tm{};
  const char* end = ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return static_cast<std::int64_t>(::timegm(&tm));
}

std::vector<Rotation> read_rotations(const std::string& path) {
  std::vector<Rotation> out;
  if (!fs::exists(path)) return out;
  for_each_line(read_text(path), [&](int n, const std::vector<std::string>& fields) {
    std::string where = path + ":" + std::to_string(n);
    Rotation r;
    std::vector<std::string> seen;
    for (const auto& f : fields) {
      auto eq = f.find('=');
      if (eq == std::string::npos) throw KeyError(where + ": '" + f + "' is not name=value");
      std::string name = f.substr(0, eq), value = f.substr(eq + 1);
      if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
        throw KeyError(where + ": " + name + "= given twice");
      }
      seen.push_back(name);
      if (name == "key") {
        r.key_name = value;
      } else if (name == "state") {
        if (value == "pending") {
          r.state = Rotation::State::kPending;
        } else if (value == "switched") {
          r.state = Rotation::State::kSwitched;
        } else if (value == "retired") {
          r.state = Rotation::State::kRetired;
        } else {
          throw KeyError(where + ": state '" + value + "' is not pending, switched or retired");
        }
      } else if (name == "domain") {
        r.domain = value;
      } else if (name == "old") {
        r.old_selector = value;
      } else if (name == "old-key") {
        r.old_path = value;
      } else if (name == "new") {
        r.new_selector = value;
      } else if (name == "new-key") {
        r.new_path = value;
      } else if (name == "since") {
        auto t = parse_utc(value);
        if (!t) throw KeyError(where + ": since '" + value + "' is not YYYY-MM-DDTHH:MM:SSZ");
        r.since = *t;
      } else {
        throw KeyError(where + ": unknown field '" + name + "'");
      }
    }
    if (seen.size() != 8) {
      throw KeyError(where + ": needs key, state, domain, old, old-key, new, new-key and since");
    }
    out.push_back(std::move(r));
  });
  return out;
}

std::string format_rotations(const std::vector<Rotation>& rotations) {
  std::string out =
      "# DKIM key rotations in progress, kept by mxguard-keygen rotate (one line each).\n"
      "# pending: the new key waits for its record in DNS, signing is unchanged;\n"
      "# switched: signing with the new key, the old record stays published for the grace;\n"
      "# retired: remove the old record from DNS (listed by every run until it is gone).\n";
  for (const auto& r : rotations) {
    out += "key=" + r.key_name + " state=" + std::string(state_name(r.state)) +
           " domain=" + r.domain + " old=" + r.old_selector + " old-key=" + r.old_path +
           " new=" + r.new_selector + " new-key=" + r.new_path + " since=" + format_utc(r.since) +
           "\n";
  }
  return out;
}

std::string rotation_state_path(const std::string& key_table) { return key_table + ".rotation"; }

std::string next_selector(std::string_view current) {
  std::size_t digits = 0;
  while (digits < current.size() &&
         std::isdigit(static_cast<unsigned char>(current[current.size() - 1 - digits]))) {
    ++digits;
  }
  if (digits == 0) return std::string(current) + "2";
  std::string number(current.substr(current.size() - digits));
  // Decimal increment on the text: no overflow, leading zeros kept ("k09" → "k10").
  int i = static_cast<int>(number.size()) - 1;
  while (i >= 0 && number[static_cast<std::size_t>(i)] == '9') {
    number[static_cast<std::size_t>(i)] = '0';
    --i;
  }
  if (i < 0) {
    number.insert(number.begin(), '1');
  } else {
    ++number[static_cast<std::size_t>(i)];
  }
  return std::string(current.substr(0, current.size() - digits)) + number;
}

RotationAction decide_rotation(const Rotation& r, std::int64_t now, std::chrono::seconds grace,
                               const KeyCheck& check) {
  switch (r.state) {
    case Rotation::State::kPending:
      return check.ok() ? RotationAction::kSwitch : RotationAction::kWaitForRecord;
    case Rotation::State::kSwitched:
      return now >= r.since + grace.count() ? RotationAction::kRetire : RotationAction::kKeepOld;
    case Rotation::State::kRetired:
      return check.status == KeyStatus::kMissing ? RotationAction::kFinish
                                                 : RotationAction::kListForRemoval;
  }
  return RotationAction::kWaitForRecord;
}

void replace_file(const std::string& path, const std::string& content,
                  const std::function<void(const std::string&)>& check) {
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string temp = (dir / ("." + target.filename().string() + ".XXXXXX")).string();
  int fd = ::mkstemp(temp.data());
  if (fd < 0) throw KeyError(path + ": cannot create a temporary file in " + dir.string());
  auto fail = [&](const std::string& why) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw KeyError(path + ": " + why);
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (::fchmod(fd, st.st_mode & 07777) != 0) fail("cannot set the mode of the new file");
    if ((st.st_uid != ::geteuid() || st.st_gid != ::getegid()) &&
        ::fchown(fd, st.st_uid, st.st_gid) != 0) {
      fail("cannot give the new file the owner of the old one");
    }
  } else if (::fchmod(fd, 0644) != 0) {
    fail("cannot set the mode of the new file");
  }
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot write the new file");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail("cannot sync the new file");
  ::close(fd);
  if (check) {
    try {
      check(temp);
    } catch (...) {
      ::unlink(temp.c_str());
      throw;
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    throw KeyError(path + ": cannot replace it");
  }
  fsync_directory(dir);
}

namespace {

// One run of `rotate`: the tables, the state and what to say.
class RotateRun {
 public:
  RotateRun(const KeygenOptions& o, const Options& dkim, std::ostream& out, std::ostream& err)
      : o_(o),
        dkim_(dkim),
        out_(out),
        err_(err),
        state_path_(rotation_state_path(dkim.key_table)),
        now_(static_cast<std::int64_t>(std::time(nullptr))) {
    entries_ = read_key_table(dkim_.key_table);
    rotations_ = read_rotations(state_path_);
  }

  int run() {
    std::vector<std::string> advance;  // key names, in order
    if (o_.commit) {
      for (const auto& r : rotations_) {
        if (o_.domain.empty() || same_domain(r.domain, o_.domain)) advance.push_back(r.key_name);
      }
      if (advance.empty()) out_ << "rotate: no rotation in progress\n";
    } else {
      std::vector<const KeyTableEntry*> selected;
      for (const auto& e : entries_) {
        if (!same_domain(e.domain, o_.domain)) continue;
        const Rotation* r = find(e.name);
        bool selector_matches = o_.selector.empty() || e.selector == o_.selector ||
                                (r && (r->old_selector == o_.selector));
        if (selector_matches) selected.push_back(&e);
      }
      if (selected.empty()) {
        err_ << "mxguard-keygen: error: no line of " << dkim_.key_table << " signs for "
             << o_.domain << (o_.selector.empty() ? "" : " with selector " + o_.selector) << "\n";
        return 1;
      }
      std::size_t starts = std::count_if(selected.begin(), selected.end(),
                                         [&](const KeyTableEntry* e) { return !find(e->name); });
      if (!o_.new_selector.empty() && starts > 1) {
        err_ << "mxguard-keygen: fatal: --new-selector names one selector, but " << starts
             << " keys of " << o_.domain << " would start a rotation; choose one with --selector\n";
        return 64;
      }
      for (const auto* e : selected) {
        if (find(e->name)) {
          advance.push_back(e->name);
        } else {
          start(*e);
        }
      }
    }
    int status = 0;
    if (!advance.empty()) {
      common::dns::Resolver resolver(o_.dns);
      for (const auto& name : advance) status = std::max(status, step(resolver, name));
    }
    return status;
  }

 private:
  Rotation* find(const std::string& key_name) {
    for (auto& r : rotations_) {
      if (r.key_name == key_name) return &r;
    }
    return nullptr;
  }

  void save() { replace_file(state_path_, format_rotations(rotations_)); }

  void start(const KeyTableEntry& e) {
    std::string where = dkim_.key_table + ":" + std::to_string(e.line);
    if (e.domain == "%") {
      throw KeyError(where + ": key '" + e.name +
                     "' signs for every domain its SigningTable lines give (%); its record must "
                     "be published in each: rotate it by hand");
    }
    PrivateKey old = load_private_key(e.path);
    std::string selector = o_.new_selector.empty() ? next_selector(e.selector) : o_.new_selector;
    if (selector == e.selector) throw KeyError("--new-selector: " + selector + " is in use");
    KeygenOptions ko;
    ko.domain = e.domain;
    ko.selector = selector;
    ko.dir = fs::path(e.path).has_parent_path() ? fs::path(e.path).parent_path().string() : ".";
    // The daemon reads the new key as it reads the old one: same owner unless told otherwise.
    ko.user = o_.user.empty() ? owner_name(e.path) : o_.user;
    unsigned bits =
        old.type == KeyType::kRsa ? std::max(static_cast<unsigned>(old.bits), o_.bits) : 0u;
    PrivateKey key = generate_key(old.type, bits);
    std::string path = write_key_files(ko, key);
    rotations_.push_back(
        {e.name, Rotation::State::kPending, e.domain, e.selector, e.path, selector, path, now_});
    save();
    std::string type(key_type_name(key.type));
    if (key.type == KeyType::kRsa) type += " " + std::to_string(key.bits) + "-bit";
    out_ << "rotate " << e.name << ": new " << type << " key " << path << ", selector " << selector
         << "\n"
         << "publish at " << selector << "._domainkey." << e.domain << " (TXT):\n"
         << key.public_record << "\n"
         << "zone-file form (also in " << (fs::path(ko.dir) / (selector + ".txt")).string()
         << "):\n"
         << zone_record(selector, e.domain, key.public_record) << "signing stays with "
         << e.selector << " until DNS publishes it; then: mxguard-keygen rotate --commit\n";
  }

  // Advances one rotation; returns 0, or 1 when it had to refuse or failed.
  int step(common::dns::Resolver& resolver, const std::string& key_name) {
    Rotation& r = *find(key_name);
    std::string old_name = r.old_selector + "._domainkey." + r.domain;
    KeyCheck check;
    if (r.state == Rotation::State::kPending) {
      check = check_published_key(resolver, r.domain, r.new_selector, load_private_key(r.new_path));
    } else if (r.state == Rotation::State::kRetired) {
      check = old_record(resolver, r, old_name);
    }
    switch (decide_rotation(r, now_, o_.grace.seconds(), check)) {
      case RotationAction::kWaitForRecord:
        err_ << "rotate " << r.key_name << ": not switching to " << r.new_selector << ": "
             << check.message << "\n"
             << "publish at " << r.new_selector << "._domainkey." << r.domain << " (TXT):\n"
             << load_private_key(r.new_path).public_record << "\n";
        return 1;
      case RotationAction::kSwitch:
        return switch_to_new(r, check);
      case RotationAction::kKeepOld:
        out_ << "rotate " << r.key_name << ": signing with " << r.new_selector << "; " << old_name
             << " stays published until " << format_utc(r.since + o_.grace.seconds().count())
             << "\n";
        return 0;
      case RotationAction::kRetire:
        r.state = Rotation::State::kRetired;
        r.since = now_;
        save();
        list_for_removal(r, old_name);
        return 0;
      case RotationAction::kListForRemoval:
        list_for_removal(r, old_name);
        return 0;
      case RotationAction::kFinish: {
        out_ << "rotate " << r.key_name << ": " << old_name
             << " is gone from DNS; rotation done (the old key " << r.old_path
             << " is no longer used)\n";
        std::string name = r.key_name;
        rotations_.erase(std::remove_if(rotations_.begin(), rotations_.end(),
                                        [&](const Rotation& x) { return x.key_name == name; }),
                         rotations_.end());
        save();
        return 0;
      }
    }
    return 1;
  }

  // Whether the old selector is still in DNS: judged against the old key when it is still on
  // disk, else by the lookup alone (anything there is still to remove).
  KeyCheck old_record(common::dns::Resolver& resolver, const Rotation& r, const std::string& name) {
    if (fs::exists(r.old_path)) {
      return check_published_key(resolver, r.domain, r.old_selector, load_private_key(r.old_path));
    }
    auto answer = resolver.lookup_txt(name);
    KeyCheck c;
    c.name = name;
    bool gone = answer.status == common::dns::Status::kNxDomain ||
                answer.status == common::dns::Status::kNoData;
    c.status = gone ? KeyStatus::kMissing : KeyStatus::kBadSyntax;
    return c;
  }

  int switch_to_new(Rotation& r, const KeyCheck& check) {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const KeyTableEntry& e) { return e.name == r.key_name; });
    if (it == entries_.end()) {
      throw KeyError(dkim_.key_table + ": has no key '" + r.key_name + "' any more; remove its " +
                     "line from " + state_path_);
    }
    if (it->selector != r.new_selector) {
      if (it->selector != r.old_selector) {
        throw KeyError(dkim_.key_table + ":" + std::to_string(it->line) + ": key '" + r.key_name +
                       "' signs with " + it->selector + ", neither " + r.old_selector + " nor " +
                       r.new_selector + ": the table changed since the rotation started (" +
                       state_path_ + ")");
      }
      std::string table = rewrite_key_table(read_text(dkim_.key_table), r.key_name,
                                            it->domain + ":" + r.new_selector + ":" + r.new_path);
      // The new table is loaded in full, keys and SigningTable included, as mxguard-dkim will
      // load it on reload; if that fails, the old table stays.
      replace_file(dkim_.key_table, table, [&](const std::string& temp) {
        Options candidate = dkim_;
        candidate.key_table = temp;
        KeyStore store(candidate);
      });
    }
    r.state = Rotation::State::kSwitched;
    r.since = now_;
    save();
    out_ << "rotate " << r.key_name << ": " << check.message << "\n"
         << "rotate " << r.key_name << ": " << dkim_.key_table << " signs " << r.domain << " with "
         << r.new_selector << " (was " << r.old_selector << ")\n";
    int status = 0;
    if (o_.reload_command.empty()) {
      out_ << "rotate " << r.key_name
           << ": reload-command is empty: reload mxguard-dkim yourself\n";
    } else {
      out_.flush();
      int rc = run_shell(o_.reload_command);
      if (rc != 0) {
        err_ << "rotate " << r.key_name << ": '" << o_.reload_command << "' failed (exit " << rc
             << "); the table is switched: reload mxguard-dkim by hand\n";
        status = 1;
      } else {
        out_ << "rotate " << r.key_name << ": reloaded (" << o_.reload_command << ")\n";
      }
    }
    out_ << "rotate " << r.key_name << ": " << r.old_selector << "._domainkey." << r.domain
         << " stays published until " << format_utc(now_ + o_.grace.seconds().count()) << "\n";
    return status;
  }

  void list_for_removal(const Rotation& r, const std::string& old_name) {
    out_ << "remove: " << old_name << " TXT (rotation of " << r.key_name << " to " << r.new_selector
         << "; grace over); the old key " << r.old_path << " is no longer used\n";
  }

  const KeygenOptions& o_;
  const Options& dkim_;
  std::ostream& out_;
  std::ostream& err_;
  std::string state_path_;
  std::int64_t now_;
  std::vector<KeyTableEntry> entries_;
  std::vector<Rotation> rotations_;
};

}  // namespace

namespace {

// One rotate at a time per KeyTable (the daily timer and an admin may meet): an exclusive
// flock on the KeyTable's directory, which is not replaced by the renames, unlike the files.
class DirectoryLock {
 public:
  explicit DirectoryLock(const std::string& key_table) {
    fs::path p(key_table);
    std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
    fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) throw KeyError(dir + ": cannot open the directory to lock it");
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw KeyError(dir + ": another mxguard-keygen rotate is running; try again later");
    }
  }
  ~DirectoryLock() { ::close(fd_); }
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace

int run_rotate(const KeygenOptions& o, std::ostream& out, std::ostream& err) {
  Options dkim;
  try {
    dkim = read_options_file(o.dkim_config);
  } catch (const std::exception& ex) {
    err << "mxguard-keygen: fatal: " << ex.what() << "\n";
    return 78;
  }
  if (dkim.key_table.empty() || dkim.signing_table.empty()) {
    err << "mxguard-keygen: fatal: " << o.dkim_config
        << " names no key-table and signing-table: rotation switches KeyTable lines (keys of "
           "domain/selector/key-file or signing-key are rotated by hand)\n";
    return 78;
  }
  if (!o.commit && o.domain.empty()) {
    err << "mxguard-keygen: fatal: rotate needs --domain (start or continue the rotation of its "
           "keys) or --commit (continue every rotation)\n";
    return 64;
  }
  try {
    DirectoryLock lock(dkim.key_table);
    return RotateRun(o, dkim, out, err).run();
  } catch (const std::exception& ex) {
    err << "mxguard-keygen: error: " << ex.what() << "\n";
    return 1;
  }
}

}  // namespace mxguard::milter::dkim
