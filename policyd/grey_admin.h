// mxguard-grey's logic, separate from its main() so that tests drive it without a process:
// listing, showing, deleting and purging greylist triplets, the shared admin whitelist, stats,
// and the migration of a postgrey database. It reads and writes exactly the keys the daemon
// uses (docs/ARCHITECTURE.md, "Redis keys"), computing them with the daemon's own functions.
// Must never use KEYS (it blocks a production Redis), never write a key the daemon would not
// write, and never make an already-expired postgrey entry live again.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/config/units.h"
#include "common/net/ip.h"
#include "common/redis/pool.h"
#include "policyd/greylist.h"
#include "policyd/options.h"

namespace mxguard::common::config {
class Binder;
}

namespace mxguard::policyd {

// Exit codes (sysexits.h, as Postfix's tools use them).
constexpr int kExitOk = 0;
constexpr int kExitNotFound = 1;  // show/delete/whitelist del: no such entry
constexpr int kExitUsage = 64;
constexpr int kExitDataError = 65;  // import-postgrey: db_dump printed something unparsable
constexpr int kExitNoInput = 66;    // import-postgrey: no postgrey.db in DIR
constexpr int kExitUnavailable = 69;
constexpr int kExitSoftware = 70;

// The daemon's options (same config file, so keys, prefix and timings agree) plus the tool's
// own. The tool's options are command-line flags of individual commands; they are bound like
// every option so --help lists them with the rest.
struct GreyOptions {
  Options policyd;
  std::string client;     // list --client CIDR
  std::string sender;     // list --sender ADDR | @DOMAIN
  std::string recipient;  // list --recipient ADDR | @DOMAIN
  std::string state;      // list --state pending|passed
  bool json = false;
  common::config::Duration ttl{};            // whitelist add --ttl (0: never expires)
  common::config::Duration older_than{};     // purge --older-than
  bool dry_run = false;                      // import-postgrey --dry-run
  std::string db_dump = "db5.3_dump";        // BerkeleyDB's dump tool, for import-postgrey
  std::string db_recover = "db5.3_recover";  // replays postgrey's transaction log

  void bind(common::config::Binder& b);
  void validate() const;
};

// A command-line mistake: reported with the usage line, exit 64.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// ---- postgrey's database, as printed by `db_dump -p` -------------------------------------

class DumpError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DumpRecord {
  std::string key;
  std::string value;
};

// Parses db_dump's printable format: header lines up to HEADER=END, then key and value lines
// (each with a leading space; '\\' is a backslash, '\hh' a byte in hex) up to DATA=END.
// Throws DumpError naming the line for anything else, including a missing DATA=END (a dump that
// was cut short must not be imported as if it were complete).
std::vector<DumpRecord> parse_db_dump(std::string_view text);

// A postgrey key lc("NET/SENDER/RECIPIENT") taken apart. NET never contains '/', but postgrey
// --lookup-by-host writes the network as "ADDR/32" (or "/128"); the recipient is what follows
// the last '/', and the sender everything in between (it may contain '/' or be empty).
struct PostgreyKey {
  std::string net;
  std::string sender;
  std::string recipient;
};
// nullopt when the key cannot be a postgrey triplet (no address before the first '/', no
// recipient).
std::optional<PostgreyKey> split_postgrey_key(std::string_view key);
// A --privacy postgrey key: a SHA-1 in hex, from which no network can be recovered.
bool is_hashed_key(std::string_view key);

// ---- what the commands return ---------------------------------------------------------------

struct TripletInfo {
  std::string key;      // the Redis key
  bool hashed = false;  // privacy mode: client/sender/recipient unknown
  std::string client;   // client address, or the network when only that is known
  std::string sender;
  std::string recipient;
  std::int64_t first = 0;
  std::int64_t last = 0;
  bool passed = false;    // last - first >= greylist-delay, postgrey's rule
  std::int64_t ttl = -1;  // seconds until Redis forgets it (show only; -1 unknown)
};

struct ListFilter {
  std::optional<common::net::Cidr> client;
  std::string sender;     // "a@b" exact (normalised as the daemon does) or "@domain"
  std::string recipient;  // "a@b" exact or "@domain"
  std::optional<bool> passed;
};

struct WhitelistEntry {
  std::string kind;  // "client" or "sender"
  std::string value;
  std::int64_t expires = 0;  // epoch seconds, 0 = never
};

struct GreyStats {
  std::uint64_t pending = 0;
  std::uint64_t passed = 0;
  std::uint64_t awl_clients = 0;
  std::uint64_t awl_whitelisted = 0;  // count >= --greylist-auto-whitelist-clients
  std::uint64_t whitelist_active = 0;
  std::uint64_t whitelist_expired = 0;
  std::string used_memory;  // INFO memory used_memory_human
};

struct ImportCounts {
  std::uint64_t read = 0;
  std::uint64_t passed = 0;   // imported (or, with --dry-run, would be)
  std::uint64_t pending = 0;  // imported (or would be)
  std::uint64_t expired = 0;  // skipped: their TTL has run out already
  std::uint64_t hashed = 0;   // skipped: --privacy database
  std::uint64_t malformed = 0;
  std::uint64_t kept_newer = 0;  // Redis already held a newer entry for the key
};

struct ImportReport {
  ImportCounts triplets;
  ImportCounts clients;     // passed = AWL entries written
  bool clients_db = false;  // postgrey_clients.db was present
};

class GreyAdmin {
 public:
  GreyAdmin(const Options& options, common::redis::Pool& redis, Clock clock);

  std::vector<TripletInfo> list(const ListFilter& filter);
  std::optional<TripletInfo> show(const common::net::IpAddress& client, std::string_view sender,
                                  std::string_view recipient);
  bool remove(const common::net::IpAddress& client, std::string_view sender,
              std::string_view recipient);
  // kind is "client" (value a CIDR or address) or "sender" (a domain); ttl 0: no expiry.
  // Returns the stored entry (value normalised). Throws UsageError for a bad value.
  WhitelistEntry whitelist_add(std::string_view kind, std::string_view value,
                               std::chrono::seconds ttl);
  bool whitelist_del(std::string_view kind, std::string_view value);
  std::vector<WhitelistEntry> whitelist_list();
  // Deletes the triplets last seen more than older_than ago; returns how many.
  std::uint64_t purge(std::chrono::seconds older_than);
  GreyStats stats();
  // Copies dir/postgrey.db, dir/postgrey_clients.db and dir/log.* to a scratch directory,
  // replays the log there with db_recover, and reads the databases with db_dump -p. Throws
  // std::runtime_error when a database cannot be read, DumpError for unparsable output.
  ImportReport import_postgrey(const std::string& dir, bool dry_run,
                               const std::string& db_dump_program,
                               const std::string& db_recover_program);
  // Import from already-dumped records (what import_postgrey does after running db_dump).
  ImportCounts import_triplets(const std::vector<DumpRecord>& records, bool dry_run);
  ImportCounts import_clients(const std::vector<DumpRecord>& records, bool dry_run);

  std::int64_t now() const { return clock_(); }
  const GreylistOptions& greylist() const { return options_.greylist; }

 private:
  template <class Fn>
  void scan(const std::string& pattern, Fn&& on_batch);
  TripletInfo describe(const std::string& key, const std::vector<common::redis::Reply>& fields);
  std::string triplet_pattern() const;

  Options options_;
  common::redis::Pool& redis_;
  Clock clock_;
};

// Epoch seconds as "2026-11-22T01:26:35Z".
std::string iso_time(std::int64_t epoch);
// "3d4h", "5m10s", "0s".
std::string human_duration(std::int64_t seconds);

// The whole CLI after option parsing: runs `args` (command and its arguments) and writes to
// out/err. Returns the exit code. Redis is reached through a Pool built from o.policyd.redis.
int run_grey_command(const GreyOptions& o, const std::vector<std::string>& args, std::ostream& out,
                     std::ostream& err, Clock clock = system_clock_seconds);

// The usage text that follows "Usage:" on errors (the commands and their arguments).
std::string grey_usage();

}  // namespace mxguard::policyd
