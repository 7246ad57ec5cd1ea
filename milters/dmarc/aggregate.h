// Aggregate report data in Redis (RFC 7489 §7.2): every evaluated message adds one to a row
// counter of its policy domain and report period, with ONE Lua script call (one round trip;
// every key gets a TTL). Several MX hosts sharing one Redis therefore count into the same rows
// and the reporter sends one report per domain and period. Schema in docs/ARCHITECTURE.md:
//   <prefix>{dmarc}:agg:<domain>:<begin>   hash  row → count
//   <prefix>{dmarc}:meta:<domain>:<begin>  hash  the published policy (last seen)
//   <prefix>{dmarc}:pending                set   "<domain> <begin> <end>" with unsent data
// One hash tag for all three, so the script's keys share a Redis Cluster slot.
// Must never lose counts on a failed send: data is removed only by remove() after success.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/redis/pool.h"
#include "milters/dmarc/evaluate.h"

namespace mxguard::milter::dmarc {

struct Row {
  std::string source_ip;
  std::string disposition = "none";  // none|quarantine|reject (what we applied)
  std::string dkim_eval = "fail";    // aligned DKIM pass: pass|fail
  std::string spf_eval = "fail";
  std::string override_type;     // "", sampled_out, mailing_list, local_policy, …
  std::string override_comment;  // the reason's comment (a trusted ARC chain), usually empty
  std::string header_from;
  std::string envelope_from;
  std::vector<AuthResult> dkim;     // domain, selector, result
  AuthResult spf;                   // domain, result
  std::string spf_scope = "mfrom";  // mfrom|helo
  friend bool operator==(const Row&, const Row&) = default;
};

// Version 1 rows have no override comment; a row with one is written as version 2, so hosts
// that share a Redis during an upgrade still read each other's plain rows.
std::string encode_row(const Row& row);
// Throws std::invalid_argument on a field that is not one of ours.
Row decode_row(const std::string& field);

struct Published {
  std::string domain;
  std::string adkim = "r", aspf = "r", p = "none", sp = "none", fo = "0";
  int pct = 100;
  std::string rua;  // the rua= URIs as "mailto:a!10m,mailto:b"
};
Published published_from(const Evaluation& e);

struct Period {
  std::string domain;
  std::int64_t begin = 0;
  std::int64_t end = 0;  // exclusive: begin + interval
};

struct PeriodData {
  Period period;
  Published published;
  std::vector<std::pair<Row, std::uint64_t>> rows;
};

class AggregateStore {
 public:
  AggregateStore(common::redis::Pool& pool, std::chrono::seconds interval,
                 std::chrono::seconds retention);
  // One EVALSHA. Throws common::redis::Error.
  void record(const Published& policy, const Row& row, std::int64_t now);
  // Periods with data (pending set), sorted by begin.
  std::vector<Period> pending();
  // The rows and policy of one period; rows empty when its data already expired.
  PeriodData load(const Period& period);
  void remove(const Period& period);

 private:
  std::string agg_key(const Period& p) const;
  std::string meta_key(const Period& p) const;

  common::redis::Pool& pool_;
  std::chrono::seconds interval_;
  std::chrono::seconds retention_;
};

}  // namespace mxguard::milter::dmarc
