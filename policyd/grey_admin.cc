// Implementation of mxguard-grey's commands (see grey_admin.h).
#include "policyd/grey_admin.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>
#include <unordered_set>

#include "common/config/config.h"
#include "common/redis/errors.h"
#include "policyd/whitelist.h"

extern char** environ;

namespace mxguard::policyd {
namespace {

using common::redis::Reply;
using Json = nlohmann::ordered_json;

// Keys per SCAN step, and so per pipeline: large enough to be fast on millions of keys, small
// enough that one step never blocks Redis noticeably.
constexpr int kScanCount = 1000;
constexpr std::size_t kPipelineBatch = 1000;

// Deletes a triplet only if it is still old when Redis runs this: a daemon may have renewed
// it between our SCAN and the delete, and a triplet just seen again must not be forgotten.
const common::redis::Script& purge_script() {
  static const common::redis::Script s("grey-purge", R"lua(
local last = tonumber(redis.call('HGET', KEYS[1], 'last'))
if last and last < tonumber(ARGV[1]) then return redis.call('DEL', KEYS[1]) end
return 0
)lua");
  return s;
}

// Writes an imported hash unless Redis already has a newer one (mxguard-policyd may already be
// running beside postgrey during the switch). ARGV: ttl, last, then field/value pairs.
const common::redis::Script& import_script() {
  static const common::redis::Script s("grey-import", R"lua(
local cur = tonumber(redis.call('HGET', KEYS[1], 'last'))
if cur and cur >= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
)lua");
  return s;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<std::int64_t> reply_int(const Reply& r) {
  if (r.is_nil()) return std::nullopt;
  if (r.is_integer()) return r.as_integer();
  return parse_int(r.as_string());
}

std::string reply_str(const Reply& r) { return r.is_nil() ? std::string() : r.as_string(); }

// A glob pattern that matches the prefix literally, whatever characters it holds.
std::string glob_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string unescape_dump_line(std::string_view s, std::size_t line_no) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 1 < s.size() && s[i + 1] == '\\') {
      out.push_back('\\');
      ++i;
      continue;
    }
    int hi = i + 2 < s.size() ? hex_value(s[i + 1]) : -1;
    int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
    if (lo < 0) {
      throw DumpError("db_dump line " + std::to_string(line_no) + ": bad escape");
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// The network text the daemon would use for this address (postgrey prints IPv6 networks
// uncompressed, "2001:db8:0:0:0:0:0:0"; the daemon writes "2001:db8::").
std::optional<std::string> daemon_net(std::string_view text, const GreylistOptions& g) {
  auto ip = common::net::IpAddress::parse(text);
  if (!ip) return std::nullopt;
  int prefix = ip->is_v4() ? static_cast<int>(g.ipv4_prefix) : static_cast<int>(g.ipv6_prefix);
  return ip->truncated(prefix).to_string();
}

std::string domain_of(std::string_view addr) {
  auto at = addr.rfind('@');
  return at == std::string_view::npos ? std::string() : to_lower(addr.substr(at + 1));
}

bool address_matches(const std::string& stored, const std::string& filter, bool is_sender) {
  if (filter.empty()) return true;
  if (filter[0] == '@') return domain_of(stored) == to_lower(filter.substr(1));
  std::string want = is_sender ? to_lower(normalize_sender(filter)) : to_lower(filter);
  return stored == want;
}

bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return false;
  return std::all_of(d.begin(), d.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

// Runs argv without a shell and returns its standard output; a non-zero exit or a signal is a
// runtime_error carrying the program's standard error.
std::string run_capture(const std::vector<std::string>& argv) {
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  std::string out;
  std::string err;
  std::array<pollfd, 2> fds{pollfd{out_pipe[0], POLLIN, 0}, pollfd{err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (auto& p : fds) {
      if (p.fd < 0 || p.revents == 0) continue;
      ssize_t n = ::read(p.fd, buf, sizeof buf);
      if (n > 0) {
        (p.fd == out_pipe[0] ? out : err).append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(p.fd);
        p.fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
    throw std::runtime_error(argv[0] + " failed" + (err.empty() ? "" : ": " + err));
  }
  return out;
}

}  // namespace

// ---- options --------------------------------------------------------------------------------

void GreyOptions::bind(common::config::Binder& b) {
  policyd.bind(b);
  b.add("client", client, "list: only triplets whose client is in this network (CIDR)");
  b.add("sender", sender, "list: only this sender address, or @DOMAIN");
  b.add("recipient", recipient, "list: only this recipient address, or @DOMAIN");
  b.add("state", state, "list: only pending or passed triplets");
  b.add("json", json, "list, show, whitelist list, stats: print JSON");
  b.add("ttl", ttl, "whitelist add: the entry expires after this long (default: never)");
  b.add("older-than", older_than, "purge: delete triplets last seen longer ago than this");
  b.add("dry-run", dry_run, "import-postgrey: count what would be imported, write nothing");
  b.add("db-dump", db_dump, "import-postgrey: BerkeleyDB's db_dump program");
  b.add("db-recover", db_recover,
        "import-postgrey: BerkeleyDB's db_recover program (run on a copy of DIR)");
}

void GreyOptions::validate() const {
  using common::config::OptionError;
  policyd.validate();
  if (!client.empty() && !common::net::Cidr::try_parse(client)) {
    throw OptionError("client", "expected an address or network, like 198.51.100.0/24");
  }
  if (!state.empty() && state != "pending" && state != "passed") {
    throw OptionError("state", "expected pending or passed");
  }
  if (db_dump.empty()) throw OptionError("db-dump", "must name a program");
  if (db_recover.empty()) throw OptionError("db-recover", "must name a program");
}

// ---- postgrey database -------------------------------------------------------------------

std::vector<DumpRecord> parse_db_dump(std::string_view text) {
  std::vector<DumpRecord> out;
  bool in_header = true;
  bool done = false;
  bool have_key = false;
  std::string key;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    std::string where = "db_dump line " + std::to_string(line_no);
    if (done) {
      // db_dump -p of a file with several databases prints one block per database; postgrey's
      // files hold one, so anything after DATA=END is not a postgrey database.
      if (!line.empty()) throw DumpError(where + ": data after DATA=END");
      continue;
    }
    if (in_header) {
      if (line == "HEADER=END") {
        in_header = false;
      } else if (line.find('=') == std::string_view::npos) {
        throw DumpError(where + ": expected a header line (name=value)");
      } else if (line.rfind("format=", 0) == 0 && line != "format=print") {
        throw DumpError(where + ": not a printable dump (run db_dump with -p)");
      }
      continue;
    }
    if (line == "DATA=END") {
      if (have_key) throw DumpError(where + ": key without a value");
      done = true;
      continue;
    }
    if (line.empty() || line[0] != ' ') {
      throw DumpError(where + ": expected a data line starting with a space");
    }
    std::string value = unescape_dump_line(line.substr(1), line_no);
    if (!have_key) {
      key = std::move(value);
      have_key = true;
    } else {
      out.push_back(DumpRecord{std::move(key), std::move(value)});
      have_key = false;
    }
  }
  if (in_header) throw DumpError("db_dump output ends inside the header (no HEADER=END)");
  if (!done) throw DumpError("db_dump output ends without DATA=END (truncated?)");
  return out;
}

bool is_hashed_key(std::string_view key) {
  return key.size() == 40 && std::all_of(key.begin(), key.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::optional<PostgreyKey> split_postgrey_key(std::string_view key) {
  auto first = key.find('/');
  if (first == std::string_view::npos || first == 0) return std::nullopt;
  std::string_view net = key.substr(0, first);
  auto ip = common::net::IpAddress::parse(net);
  if (!ip) return std::nullopt;
  std::string_view rest = key.substr(first + 1);
  // --lookup-by-host: "ADDR/32/sender/rcpt". Only strip the length when a sender/recipient
  // boundary remains after it, so a sender that happens to be "32" is not mistaken for one.
  std::string_view host_len = ip->is_v4() ? "32/" : "128/";
  if (rest.starts_with(host_len) && rest.substr(host_len.size()).find('/') != rest.npos) {
    rest.remove_prefix(host_len.size());
  }
  auto last = rest.rfind('/');
  if (last == std::string_view::npos || last + 1 == rest.size()) return std::nullopt;
  return PostgreyKey{std::string(net), std::string(rest.substr(0, last)),
                     std::string(rest.substr(last + 1))};
}

// ---- formatting -------------------------------------------------------------------------------

std::string iso_time(std::int64_t epoch) {
  std::time_t t = static_cast<std::time_t>(epoch);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string human_duration(std::int64_t s) {
  if (s < 0) return "-" + human_duration(-s);
  if (s == 0) return "0s";
  std::string out;
  const std::pair<std::int64_t, const char*> units[] = {
      {86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  int parts = 0;
  for (const auto& [n, u] : units) {
    if (s >= n && parts < 2) {
      out += std::to_string(s / n) + u;
      s %= n;
      ++parts;
    } else if (parts > 0) {
      ++parts;  // two adjacent units at most: "3d4h", not "3d0h0m5s"
    }
  }
  return out;
}

// ---- GreyAdmin ------------------------------------------------------------------------------

GreyAdmin::GreyAdmin(const Options& options, common::redis::Pool& redis, Clock clock)
    : options_(options), redis_(redis), clock_(std::move(clock)) {}

std::string GreyAdmin::triplet_pattern() const {
  return glob_escape(redis_.options().prefix) + "gl:{*}:t:*";
}

template <class Fn>
void GreyAdmin::scan(const std::string& pattern, Fn&& on_batch) {
  std::string cursor = "0";
  do {
    Reply r =
        redis_.command({"SCAN", cursor, "MATCH", pattern, "COUNT", std::to_string(kScanCount)});
    const auto& a = r.as_array();
    if (a.size() != 2) throw common::redis::ProtocolError("SCAN returned a bad reply");
    cursor = a[0].as_string();
    std::vector<std::string> keys;
    for (const auto& k : a[1].as_array()) keys.push_back(k.as_string());
    if (!keys.empty()) on_batch(keys);
  } while (cursor != "0");
}

TripletInfo GreyAdmin::describe(const std::string& key, const std::vector<Reply>& f) {
  TripletInfo t;
  t.key = key;
  t.first = reply_int(f[0]).value_or(0);
  t.last = reply_int(f[1]).value_or(0);
  t.passed = t.last - t.first >= options_.greylist.delay.seconds().count();
  auto marker = key.find("}:t:");
  std::string tail = marker == std::string::npos ? key : key.substr(marker + 4);
  if (is_hashed_key(tail)) {
    t.hashed = true;
    return t;
  }
  auto parts = split_postgrey_key(tail);
  t.client = f.size() > 2 ? reply_str(f[2]) : "";
  t.sender = f.size() > 3 && !f[3].is_nil() ? reply_str(f[3]) : (parts ? parts->sender : "");
  t.recipient = f.size() > 4 && !f[4].is_nil() ? reply_str(f[4]) : (parts ? parts->recipient : "");
  if (t.client.empty() && parts) t.client = parts->net;  // imported: only the network is known
  return t;
}

std::vector<TripletInfo> GreyAdmin::list(const ListFilter& filter) {
  std::vector<TripletInfo> out;
  std::unordered_set<std::string> seen;  // SCAN may return a key twice
  scan(triplet_pattern(), [&](const std::vector<std::string>& keys) {
    std::vector<std::vector<std::string>> cmds;
    std::vector<std::string> batch;
    for (const auto& k : keys) {
      if (!seen.insert(k).second) continue;
      cmds.push_back({"HMGET", k, "first", "last", "c", "s", "r"});
      batch.push_back(k);
    }
    if (cmds.empty()) return;
    auto replies = redis_.pipeline(cmds);
    for (std::size_t i = 0; i < replies.size(); ++i) {
      const auto& f = replies[i].as_array();
      if (f.size() != 5 || f[0].is_nil() || f[1].is_nil()) continue;  // expired meanwhile
      TripletInfo t = describe(batch[i], f);
      if (filter.passed && t.passed != *filter.passed) continue;
      if (filter.client) {
        auto ip = common::net::IpAddress::parse(t.client);
        if (!ip || !filter.client->contains(*ip)) continue;
      }
      if (!address_matches(t.sender, filter.sender, true)) continue;
      if (!address_matches(t.recipient, filter.recipient, false)) continue;
      out.push_back(std::move(t));
    }
  });
  std::sort(out.begin(), out.end(), [](const TripletInfo& a, const TripletInfo& b) {
    return std::tie(a.first, a.key) < std::tie(b.first, b.key);
  });
  return out;
}

std::optional<TripletInfo> GreyAdmin::show(const common::net::IpAddress& client,
                                           std::string_view sender, std::string_view recipient) {
  Triplet t = make_triplet(client, sender, recipient, options_.greylist);
  GreylistKeys keys = make_keys(t, redis_.options().prefix, options_.greylist.privacy);
  auto replies = redis_.pipeline(
      {{"HMGET", keys.triplet, "first", "last", "c", "s", "r"}, {"TTL", keys.triplet}});
  const auto& f = replies[0].as_array();
  if (f.size() != 5 || f[0].is_nil() || f[1].is_nil()) return std::nullopt;
  TripletInfo info = describe(keys.triplet, f);
  if (info.hashed) {
    // We know what was hashed: show it, it is what the administrator typed.
    info.client = t.client_ip;
    info.sender = t.sender;
    info.recipient = t.recipient;
  }
  info.ttl = replies[1].as_integer();
  return info;
}

bool GreyAdmin::remove(const common::net::IpAddress& client, std::string_view sender,
                       std::string_view recipient) {
  Triplet t = make_triplet(client, sender, recipient, options_.greylist);
  GreylistKeys keys = make_keys(t, redis_.options().prefix, options_.greylist.privacy);
  return redis_.command({"DEL", keys.triplet}).as_integer() > 0;
}

namespace {
std::string whitelist_field(std::string_view kind, std::string_view value) {
  if (kind == "client") {
    auto c = common::net::Cidr::try_parse(value);
    if (!c) throw UsageError("'" + std::string(value) + "' is not an address or network");
    return "client:" + c->to_string();
  }
  if (kind == "sender") {
    std::string d = to_lower(value);
    if (!d.empty() && d[0] == '@') d.erase(0, 1);
    if (!valid_domain(d)) throw UsageError("'" + std::string(value) + "' is not a domain");
    return "sender:" + d;
  }
  throw UsageError("whitelist kind must be client or sender, not '" + std::string(kind) + "'");
}
}  // namespace

WhitelistEntry GreyAdmin::whitelist_add(std::string_view kind, std::string_view value,
                                        std::chrono::seconds ttl) {
  std::string field = whitelist_field(kind, value);
  std::int64_t expires = ttl.count() > 0 ? clock_() + ttl.count() : 0;
  redis_.command({"HSET", redis_.key("gl:wl"), field, std::to_string(expires)});
  auto colon = field.find(':');
  return WhitelistEntry{field.substr(0, colon), field.substr(colon + 1), expires};
}

bool GreyAdmin::whitelist_del(std::string_view kind, std::string_view value) {
  return redis_.command({"HDEL", redis_.key("gl:wl"), whitelist_field(kind, value)}).as_integer() >
         0;
}

std::vector<WhitelistEntry> GreyAdmin::whitelist_list() {
  std::vector<WhitelistEntry> out;
  auto reply = redis_.command({"HGETALL", redis_.key("gl:wl")});
  const auto& items = reply.as_array();
  for (std::size_t i = 0; i + 1 < items.size(); i += 2) {
    const std::string& field = items[i].as_string();
    auto colon = field.find(':');
    if (colon == std::string::npos) continue;  // not ours; the daemon ignores it too
    out.push_back(WhitelistEntry{field.substr(0, colon), field.substr(colon + 1),
                                 parse_int(items[i + 1].as_string()).value_or(0)});
  }
  std::sort(out.begin(), out.end(), [](const WhitelistEntry& a, const WhitelistEntry& b) {
    return std::tie(a.kind, a.value) < std::tie(b.kind, b.value);
  });
  return out;
}

std::uint64_t GreyAdmin::purge(std::chrono::seconds older_than) {
  std::int64_t cutoff = clock_() - older_than.count();
  std::uint64_t deleted = 0;
  const auto& script = purge_script();
  scan(triplet_pattern(), [&](const std::vector<std::string>& keys) {
    // SCRIPT LOAD in the same pipeline: EVALSHA then cannot meet NOSCRIPT on this connection's
    // server, even after a SCRIPT FLUSH or a failover.
    std::vector<std::vector<std::string>> cmds{{"SCRIPT", "LOAD", script.source()}};
    for (const auto& k : keys) {
      cmds.push_back({"EVALSHA", script.sha1(), "1", k, std::to_string(cutoff)});
    }
    auto replies = redis_.pipeline(cmds);
    for (std::size_t i = 1; i < replies.size(); ++i) deleted += replies[i].as_integer() > 0;
  });
  return deleted;
}

GreyStats GreyAdmin::stats() {
  GreyStats s;
  std::unordered_set<std::string> seen;
  std::int64_t delay = options_.greylist.delay.seconds().count();
  scan(triplet_pattern(), [&](const std::vector<std::string>& keys) {
    std::vector<std::vector<std::string>> cmds;
    for (const auto& k : keys) {
      if (seen.insert(k).second) cmds.push_back({"HMGET", k, "first", "last"});
    }
    if (cmds.empty()) return;
    for (const auto& r : redis_.pipeline(cmds)) {
      const auto& f = r.as_array();
      auto first = f.size() == 2 ? reply_int(f[0]) : std::nullopt;
      auto last = f.size() == 2 ? reply_int(f[1]) : std::nullopt;
      if (!first || !last) continue;
      (*last - *first >= delay ? s.passed : s.pending) += 1;
    }
  });
  seen.clear();
  unsigned awl_n = options_.greylist.auto_whitelist_clients;
  scan(glob_escape(redis_.options().prefix) + "gl:{*}:awl:*",
       [&](const std::vector<std::string>& keys) {
         std::vector<std::vector<std::string>> cmds;
         for (const auto& k : keys) {
           if (seen.insert(k).second) cmds.push_back({"HGET", k, "count"});
         }
         if (cmds.empty()) return;
         for (const auto& r : redis_.pipeline(cmds)) {
           auto count = reply_int(r);
           if (!count) continue;
           ++s.awl_clients;
           if (awl_n > 0 && *count >= awl_n) ++s.awl_whitelisted;
         }
       });
  std::int64_t now = clock_();
  for (const auto& e : whitelist_list()) {
    (e.expires != 0 && e.expires < now ? s.whitelist_expired : s.whitelist_active) += 1;
  }
  std::istringstream info(redis_.command({"INFO", "memory"}).as_string());
  for (std::string line; std::getline(info, line);) {
    if (line.rfind("used_memory_human:", 0) == 0) {
      s.used_memory = line.substr(18);
      while (!s.used_memory.empty() && s.used_memory.back() == '\r') s.used_memory.pop_back();
    }
  }
  return s;
}

namespace {
struct PendingWrite {
  std::string key;
  std::vector<std::string> args;  // ttl, last, field/value pairs
};

void flush_writes(common::redis::Pool& redis, std::vector<PendingWrite>& writes,
                  std::uint64_t& kept_newer) {
  if (writes.empty()) return;
  const auto& script = import_script();
  std::vector<std::vector<std::string>> cmds{{"SCRIPT", "LOAD", script.source()}};
  for (auto& w : writes) {
    std::vector<std::string> c{"EVALSHA", script.sha1(), "1", w.key};
    c.insert(c.end(), w.args.begin(), w.args.end());
    cmds.push_back(std::move(c));
  }
  auto replies = redis.pipeline(cmds);
  for (std::size_t i = 1; i < replies.size(); ++i) kept_newer += replies[i].as_integer() == 0;
  writes.clear();
}

// "first,last[,host]" or "count,last": two integers, then anything.
std::optional<std::pair<std::int64_t, std::int64_t>> two_numbers(std::string_view v) {
  auto c1 = v.find(',');
  if (c1 == std::string_view::npos) return std::nullopt;
  auto c2 = v.find(',', c1 + 1);
  auto a = parse_int(v.substr(0, c1));
  auto b = parse_int(v.substr(c1 + 1, c2 == std::string_view::npos ? v.npos : c2 - c1 - 1));
  if (!a || !b) return std::nullopt;
  return std::make_pair(*a, *b);
}
}  // namespace

ImportCounts GreyAdmin::import_triplets(const std::vector<DumpRecord>& records, bool dry_run) {
  ImportCounts n;
  const GreylistOptions& g = options_.greylist;
  const std::int64_t now = clock_();
  const std::int64_t delay = g.delay.seconds().count();
  const std::int64_t max_age = g.max_age.seconds().count();
  const std::int64_t retry_window = g.retry_window.seconds().count();
  std::vector<PendingWrite> writes;
  for (const auto& rec : records) {
    ++n.read;
    if (is_hashed_key(rec.key)) {
      ++n.hashed;
      continue;
    }
    auto parts = split_postgrey_key(rec.key);
    auto times = two_numbers(rec.value);
    auto net = parts ? daemon_net(parts->net, g) : std::nullopt;
    if (!parts || !times || !net) {
      ++n.malformed;
      continue;
    }
    auto [first, last] = *times;
    bool passed = last - first >= delay;
    // The TTL the daemon would have set at `last`, minus the time gone since.
    std::int64_t window = passed ? max_age : retry_window;
    std::int64_t ttl = std::min(window, window - (now - last));
    if (ttl <= 0) {
      ++n.expired;
      continue;
    }
    (passed ? n.passed : n.pending) += 1;
    if (dry_run) continue;
    Triplet t{*net, "", parts->sender, parts->recipient};
    PendingWrite w{make_keys(t, redis_.options().prefix, g.privacy).triplet,
                   {std::to_string(ttl), std::to_string(last), "first", std::to_string(first),
                    "last", std::to_string(last)}};
    if (!g.privacy) {
      // No "c": postgrey never stored the client address, only its network (in the key).
      w.args.insert(w.args.end(), {"s", t.sender, "r", t.recipient});
    }
    writes.push_back(std::move(w));
    if (writes.size() >= kPipelineBatch) flush_writes(redis_, writes, n.kept_newer);
  }
  flush_writes(redis_, writes, n.kept_newer);
  return n;
}

ImportCounts GreyAdmin::import_clients(const std::vector<DumpRecord>& records, bool dry_run) {
  ImportCounts n;
  const GreylistOptions& g = options_.greylist;
  const std::int64_t now = clock_();
  const std::int64_t max_age = g.max_age.seconds().count();
  std::vector<PendingWrite> writes;
  for (const auto& rec : records) {
    ++n.read;
    if (is_hashed_key(rec.key)) {
      ++n.hashed;
      continue;
    }
    auto ip = common::net::IpAddress::parse(rec.key);
    auto nums = two_numbers(rec.value);
    if (!ip || !nums) {
      ++n.malformed;
      continue;
    }
    auto [count, last] = *nums;
    std::int64_t ttl = std::min(max_age, max_age - (now - last));
    if (ttl <= 0) {
      ++n.expired;
      continue;
    }
    ++n.passed;
    if (dry_run) continue;
    int prefix = ip->is_v4() ? static_cast<int>(g.ipv4_prefix) : static_cast<int>(g.ipv6_prefix);
    Triplet t{ip->truncated(prefix).to_string(), ip->to_string(), "", ""};
    writes.push_back(PendingWrite{make_keys(t, redis_.options().prefix, g.privacy).awl,
                                  {std::to_string(ttl), std::to_string(last), "count",
                                   std::to_string(count), "last", std::to_string(last)}});
    if (writes.size() >= kPipelineBatch) flush_writes(redis_, writes, n.kept_newer);
  }
  flush_writes(redis_, writes, n.kept_newer);
  return n;
}

namespace {
// A private directory removed with everything in it when it goes out of scope.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "mxguard-grey-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
    }
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};
}  // namespace

ImportReport GreyAdmin::import_postgrey(const std::string& dir, bool dry_run,
                                        const std::string& db_dump_program,
                                        const std::string& db_recover_program) {
  namespace fs = std::filesystem;
  ImportReport report;
  // postgrey writes through a BerkeleyDB transaction log and checkpoints only hourly, so the
  // .db files alone can miss the last hour (or everything, if postgrey was killed). Recovery
  // replays the log into the files; it runs on a copy, so postgrey's own directory is never
  // written to and can be put back if the switch is abandoned.
  ScratchDir scratch;
  bool have_logs = false;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    bool is_log = name.rfind("log.", 0) == 0;
    if (name == "postgrey.db" || name == "postgrey_clients.db" || is_log) {
      fs::copy_file(e.path(), scratch.path() / name);
      have_logs = have_logs || is_log;
    }
  }
  if (have_logs) run_capture({db_recover_program, "-h", scratch.path().string()});
  fs::path db = scratch.path() / "postgrey.db";
  fs::path clients = scratch.path() / "postgrey_clients.db";
  // Dump both before writing anything, so a broken second file leaves Redis untouched.
  auto triplets = parse_db_dump(run_capture({db_dump_program, "-p", db.string()}));
  std::vector<DumpRecord> awl;
  if (fs::exists(clients)) {
    report.clients_db = true;
    awl = parse_db_dump(run_capture({db_dump_program, "-p", clients.string()}));
  }
  report.triplets = import_triplets(triplets, dry_run);
  report.clients = import_clients(awl, dry_run);
  return report;
}

// ---- the command line -------------------------------------------------------------------------

std::string grey_usage() {
  return "mxguard-grey [OPTIONS] COMMAND [ARGS...]\n"
         "Commands:\n"
         "  list [--client CIDR] [--sender ADDR|@DOMAIN] [--recipient ADDR|@DOMAIN]\n"
         "       [--state pending|passed] [--json]\n"
         "  show CLIENT-IP SENDER RECIPIENT [--json]\n"
         "  delete CLIENT-IP SENDER RECIPIENT\n"
         "  whitelist add client CIDR [--ttl DURATION]\n"
         "  whitelist add sender DOMAIN [--ttl DURATION]\n"
         "  whitelist del client|sender VALUE\n"
         "  whitelist list [--json]\n"
         "  purge --older-than DURATION\n"
         "  stats [--json]\n"
         "  import-postgrey DIR [--dry-run]\n";
}

namespace {

// The tool's own options each belong to some commands; one given to another command is a
// mistake the user should hear about, not silently ignored.
void allow_only(const GreyOptions& o, const std::string& command,
                std::initializer_list<std::string_view> allowed) {
  auto check = [&](std::string_view name, bool set) {
    if (set && std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      throw UsageError("--" + std::string(name) + " does not apply to '" + command + "'");
    }
  };
  check("client", !o.client.empty());
  check("sender", !o.sender.empty());
  check("recipient", !o.recipient.empty());
  check("state", !o.state.empty());
  check("json", o.json);
  check("ttl", o.ttl.value.count() != 0);
  check("older-than", o.older_than.value.count() != 0);
  check("dry-run", o.dry_run);
}

void want_args(const std::vector<std::string>& args, std::size_t n, const std::string& shape) {
  if (args.size() != n) throw UsageError("expected: " + shape);
}

common::net::IpAddress parse_client(const std::string& s) {
  auto ip = common::net::IpAddress::parse(s);
  if (!ip) throw UsageError("'" + s + "' is not an IP address");
  return *ip;
}

// Postfix sends the null sender as an empty string; "<>" is how people type it.
std::string sender_arg(const std::string& s) { return s == "<>" ? "" : s; }

Json triplet_json(const TripletInfo& t, std::int64_t now) {
  Json j;
  j["key"] = t.key;
  if (!t.hashed) {
    j["client"] = t.client;
    j["sender"] = t.sender;
    j["recipient"] = t.recipient;
  }
  j["state"] = t.passed ? "passed" : "pending";
  j["first"] = t.first;
  j["last"] = t.last;
  j["first_seen"] = iso_time(t.first);
  j["last_seen"] = iso_time(t.last);
  j["age"] = now - t.first;
  if (t.ttl >= 0) j["ttl"] = t.ttl;
  return j;
}

// Columns aligned like column(1), for a terminal; JSON is for scripts.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    width.resize(std::max(width.size(), r.size()));
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

std::string show_sender(const std::string& s) { return s.empty() ? "<>" : s; }

int cmd_list(GreyAdmin& admin, const GreyOptions& o, const std::vector<std::string>& args,
             std::ostream& out) {
  allow_only(o, "list", {"client", "sender", "recipient", "state", "json"});
  want_args(args, 1, "list [filters]");
  ListFilter f;
  if (!o.client.empty()) f.client = common::net::Cidr::parse(o.client);
  f.sender = sender_arg(o.sender);
  f.recipient = o.recipient;
  if (!o.state.empty()) f.passed = o.state == "passed";
  if (o.policyd.greylist.privacy && (f.client || !f.sender.empty() || !f.recipient.empty())) {
    throw UsageError(
        "with greylist-privacy the triplets are hashes: only --state can filter them "
        "(use show to look one up)");
  }
  auto rows = admin.list(f);
  std::int64_t now = admin.now();
  if (o.json) {
    Json a = Json::array();
    for (const auto& t : rows) a.push_back(triplet_json(t, now));
    out << a.dump(2) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> table{
      {"CLIENT", "SENDER", "RECIPIENT", "STATE", "FIRST-SEEN", "LAST-SEEN", "AGE"}};
  for (const auto& t : rows) {
    std::vector<std::string> row;
    if (t.hashed) {
      auto marker = t.key.find("}:t:");
      row = {"-", "-", t.key.substr(marker == std::string::npos ? 0 : marker + 4)};
    } else {
      row = {t.client, show_sender(t.sender), t.recipient};
    }
    row.insert(row.end(), {t.passed ? "passed" : "pending", iso_time(t.first), iso_time(t.last),
                           human_duration(now - t.first)});
    table.push_back(std::move(row));
  }
  if (o.policyd.greylist.privacy) table[0][2] = "TRIPLET-SHA1";
  print_table(out, table);
  return kExitOk;
}

int cmd_show(GreyAdmin& admin, const GreyOptions& o, const std::vector<std::string>& args,
             std::ostream& out, std::ostream& err) {
  allow_only(o, "show", {"json"});
  want_args(args, 4, "show CLIENT-IP SENDER RECIPIENT");
  auto t = admin.show(parse_client(args[1]), sender_arg(args[2]), args[3]);
  if (!t) {
    err << "mxguard-grey: no triplet for " << args[1] << " " << args[2] << " " << args[3] << "\n";
    return kExitNotFound;
  }
  std::int64_t now = admin.now();
  if (o.json) {
    out << triplet_json(*t, now).dump(2) << "\n";
    return kExitOk;
  }
  std::int64_t wait = admin.greylist().delay.seconds().count() - (now - t->first);
  std::string state = t->passed  ? "passed"
                      : wait > 0 ? "pending (a retry is accepted in " + human_duration(wait) + ")"
                                 : "pending (the next retry passes)";
  print_table(
      out, {{"key:", t->key},
            {"client:", t->client},
            {"sender:", show_sender(t->sender)},
            {"recipient:", t->recipient},
            {"state:", state},
            {"first seen:", iso_time(t->first) + " (" + human_duration(now - t->first) + " ago)"},
            {"last seen:", iso_time(t->last) + " (" + human_duration(now - t->last) + " ago)"},
            {"expires:", t->ttl >= 0 ? "in " + human_duration(t->ttl) : "never"}});
  return kExitOk;
}

int cmd_delete(GreyAdmin& admin, const GreyOptions& o, const std::vector<std::string>& args,
               std::ostream& out, std::ostream& err) {
  allow_only(o, "delete", {});
  want_args(args, 4, "delete CLIENT-IP SENDER RECIPIENT");
  if (!admin.remove(parse_client(args[1]), sender_arg(args[2]), args[3])) {
    err << "mxguard-grey: no triplet for " << args[1] << " " << args[2] << " " << args[3] << "\n";
    return kExitNotFound;
  }
  out << "deleted " << args[1] << " " << args[2] << " " << args[3] << "\n";
  return kExitOk;
}

std::string expiry_text(std::int64_t expires, std::int64_t now) {
  if (expires == 0) return "never expires";
  if (expires < now) return "expired " + iso_time(expires);
  return "expires " + iso_time(expires) + " (in " + human_duration(expires - now) + ")";
}

int cmd_whitelist(GreyAdmin& admin, const GreyOptions& o, const std::vector<std::string>& args,
                  std::ostream& out, std::ostream& err) {
  std::string sub = args.size() > 1 ? args[1] : "";
  std::int64_t now = admin.now();
  if (sub == "add") {
    allow_only(o, "whitelist add", {"ttl"});
    want_args(args, 4, "whitelist add client CIDR | whitelist add sender DOMAIN [--ttl DURATION]");
    auto e = admin.whitelist_add(args[2], args[3], o.ttl.seconds());
    out << "added " << e.kind << " " << e.value << ", " << expiry_text(e.expires, now) << "\n";
    return kExitOk;
  }
  if (sub == "del") {
    allow_only(o, "whitelist del", {});
    want_args(args, 4, "whitelist del client|sender VALUE");
    if (!admin.whitelist_del(args[2], args[3])) {
      err << "mxguard-grey: no whitelist entry " << args[2] << " " << args[3] << "\n";
      return kExitNotFound;
    }
    out << "deleted " << args[2] << " " << args[3] << "\n";
    return kExitOk;
  }
  if (sub == "list") {
    allow_only(o, "whitelist list", {"json"});
    want_args(args, 2, "whitelist list [--json]");
    auto entries = admin.whitelist_list();
    if (o.json) {
      Json a = Json::array();
      for (const auto& e : entries) {
        a.push_back(Json{{"kind", e.kind},
                         {"value", e.value},
                         {"expires", e.expires},
                         {"expired", e.expires != 0 && e.expires < now}});
      }
      out << a.dump(2) << "\n";
      return kExitOk;
    }
    std::vector<std::vector<std::string>> table;
    for (const auto& e : entries) table.push_back({e.kind, e.value, expiry_text(e.expires, now)});
    print_table(out, table);
    return kExitOk;
  }
  throw UsageError("whitelist needs add, del or list");
}

int cmd_purge(GreyAdmin& admin, const GreyOptions& o, const std::vector<std::string>& args,
              std::ostream& out) {
  allow_only(o, "purge", {"older-than"});
  want_args(args, 1, "purge --older-than DURATION");
  if (o.older_than.seconds().count() <= 0) {
    throw UsageError("purge needs --older-than DURATION (at least 1s)");
  }
  auto n = admin.purge(o.older_than.seconds());
  out << "purged " << n << " triplet" << (n == 1 ? "" : "s") << " last seen more than "
      << common::config::format_duration(o.older_than) << " ago\n";
  return kExitOk;
}

int cmd_stats(GreyAdmin& admin, const GreyOptions& o, const std::vector<std::string>& args,
              std::ostream& out) {
  allow_only(o, "stats", {"json"});
  want_args(args, 1, "stats [--json]");
  auto s = admin.stats();
  unsigned awl_n = admin.greylist().auto_whitelist_clients;
  if (o.json) {
    out << Json{{"triplets_pending", s.pending},
                {"triplets_passed", s.passed},
                {"awl_clients", s.awl_clients},
                {"awl_whitelisted", s.awl_whitelisted},
                {"whitelist_active", s.whitelist_active},
                {"whitelist_expired", s.whitelist_expired},
                {"redis_used_memory", s.used_memory}}
               .dump(2)
        << "\n";
    return kExitOk;
  }
  print_table(out,
              {{"triplets pending:", std::to_string(s.pending)},
               {"triplets passed:", std::to_string(s.passed)},
               {"awl clients:",
                std::to_string(s.awl_clients) + " (" + std::to_string(s.awl_whitelisted) +
                    (awl_n > 0 ? " reached " + std::to_string(awl_n) + " deliveries: whitelisted)"
                               : " whitelisted: auto-whitelisting is off)")},
               {"whitelist entries:", std::to_string(s.whitelist_active) + " active, " +
                                          std::to_string(s.whitelist_expired) + " expired"},
               {"redis used memory:", s.used_memory}});
  return kExitOk;
}

void print_counts(std::ostream& out, const std::string& file, const ImportCounts& c, bool triplets,
                  bool dry_run) {
  std::string verb = dry_run ? "would import " : "imported ";
  out << file << ": " << c.read << " entries read; " << verb;
  if (triplets) {
    out << c.passed << " passed and " << c.pending << " pending triplets";
  } else {
    out << c.passed << " auto-whitelist clients";
  }
  out << "; skipped " << c.expired << " expired";
  if (c.malformed > 0) out << ", " << c.malformed << " unreadable";
  if (c.kept_newer > 0) out << "; kept " << c.kept_newer << " newer entries already in Redis";
  out << "\n";
}

int cmd_import(GreyAdmin& admin, const GreyOptions& o, const std::vector<std::string>& args,
               std::ostream& out, std::ostream& err) {
  allow_only(o, "import-postgrey", {"dry-run"});
  want_args(args, 2, "import-postgrey DIR [--dry-run]");
  if (!std::filesystem::exists(std::filesystem::path(args[1]) / "postgrey.db")) {
    err << "mxguard-grey: " << args[1] << "/postgrey.db: no such file (is DIR postgrey's "
        << "--dbdir, usually /var/lib/postgrey?)\n";
    return kExitNoInput;
  }
  ImportReport r;
  try {
    r = admin.import_postgrey(args[1], o.dry_run, o.db_dump, o.db_recover);
  } catch (const DumpError& ex) {
    err << "mxguard-grey: " << args[1] << ": " << ex.what() << "; nothing imported\n";
    return kExitDataError;
  }
  print_counts(out, "postgrey.db", r.triplets, true, o.dry_run);
  if (r.clients_db) print_counts(out, "postgrey_clients.db", r.clients, false, o.dry_run);
  std::uint64_t hashed = r.triplets.hashed + r.clients.hashed;
  if (hashed > 0) {
    err << "mxguard-grey: warning: skipped " << hashed
        << " entries stored by postgrey --privacy: they are SHA-1 hashes, from which the client "
           "network (the first part of every mxguard key) cannot be recovered; those senders "
           "are greylisted once more\n";
  }
  if (r.triplets.malformed + r.clients.malformed > 0) {
    err << "mxguard-grey: warning: skipped " << r.triplets.malformed + r.clients.malformed
        << " entries that are not postgrey triplets or clients\n";
  }
  return kExitOk;
}

}  // namespace

int run_grey_command(const GreyOptions& o, const std::vector<std::string>& args, std::ostream& out,
                     std::ostream& err, Clock clock) {
  try {
    if (args.empty()) throw UsageError("no command given");
    common::redis::Pool pool(o.policyd.redis);
    GreyAdmin admin(o.policyd, pool, std::move(clock));
    const std::string& cmd = args[0];
    if (cmd == "list") return cmd_list(admin, o, args, out);
    if (cmd == "show") return cmd_show(admin, o, args, out, err);
    if (cmd == "delete") return cmd_delete(admin, o, args, out, err);
    if (cmd == "whitelist") return cmd_whitelist(admin, o, args, out, err);
    if (cmd == "purge") return cmd_purge(admin, o, args, out);
    if (cmd == "stats") return cmd_stats(admin, o, args, out);
    if (cmd == "import-postgrey") return cmd_import(admin, o, args, out, err);
    throw UsageError("unknown command '" + cmd + "'");
  } catch (const UsageError& ex) {
    err << "mxguard-grey: " << ex.what() << "\nUsage: " << grey_usage()
        << "Run mxguard-grey --help for every option.\n";
    return kExitUsage;
  } catch (const common::redis::IoError& ex) {
    // Not the URL: it may carry a password.
    err << "mxguard-grey: Redis unavailable: " << ex.what() << "\n";
    return kExitUnavailable;
  } catch (const std::exception& ex) {
    err << "mxguard-grey: error: " << ex.what() << "\n";
    return kExitSoftware;
  }
}

}  // namespace mxguard::policyd
