// Aggregate report data in Redis (see aggregate.h).
#include "milters/dmarc/aggregate.h"

#include <algorithm>
#include <stdexcept>

#include "common/redis/script.h"

namespace mxguard::milter::dmarc {
namespace {

// KEYS: agg, meta, pending. ARGV: row, ttl seconds, pending member, then meta field/value pairs.
constexpr const char* kRecordScript = R"lua(
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
if #ARGV > 3 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 4))
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])
return 1
)lua";

const common::redis::Script& record_script() {
  static const common::redis::Script script("dmarc-aggregate", kRecordScript);
  return script;
}

constexpr char kSep = '\t';

// Fields are domains, addresses and result words; anything that could break the encoding
// (separators, control bytes) becomes '?'.
std::string clean(std::string_view v, std::size_t max = 255) {
  std::string out(v.substr(0, max));
  for (auto& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ',' || c == '/') c = '?';
  }
  return out;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos == s.npos ? s.npos : pos - start));
    if (pos == s.npos) break;
    start = pos + 1;
  }
  return out;
}

}  // namespace

std::string encode_row(const Row& r) {
  std::string dkim;
  for (std::size_t i = 0; i < r.dkim.size() && i < 8; ++i) {
    if (i) dkim += ',';
    dkim += clean(r.dkim[i].domain) + "/" + clean(r.dkim[i].selector, 63) + "/" +
            clean(r.dkim[i].result, 16);
  }
  std::string out = r.override_comment.empty() ? "1" : "2";  // encoding version
  for (const std::string& f :
       {clean(r.source_ip, 64), clean(r.disposition, 16), clean(r.dkim_eval, 8),
        clean(r.spf_eval, 8), clean(r.override_type, 32), clean(r.header_from),
        clean(r.envelope_from), dkim, clean(r.spf.domain), clean(r.spf.result, 16),
        clean(r.spf_scope, 8)}) {
    out += kSep;
    out += f;
  }
  if (!r.override_comment.empty()) {
    out += kSep;
    out += clean(r.override_comment, 1024);
  }
  return out;
}

Row decode_row(const std::string& field) {
  auto f = split(field, kSep);
  if (!(f.size() == 12 && f[0] == "1") && !(f.size() == 13 && f[0] == "2")) {
    throw std::invalid_argument("not an aggregate row");
  }
  Row r;
  r.source_ip = f[1];
  r.disposition = f[2];
  r.dkim_eval = f[3];
  r.spf_eval = f[4];
  r.override_type = f[5];
  r.header_from = f[6];
  r.envelope_from = f[7];
  if (!f[8].empty()) {
    for (const auto& item : split(f[8], ',')) {
      auto parts = split(item, '/');
      if (parts.size() != 3) throw std::invalid_argument("bad DKIM item in aggregate row");
      r.dkim.push_back(AuthResult{parts[0], parts[2], parts[1]});
    }
  }
  r.spf.domain = f[9];
  r.spf.result = f[10];
  r.spf_scope = f[11];
  if (f.size() == 13) r.override_comment = f[12];
  return r;
}

Published published_from(const Evaluation& e) {
  Published p;
  p.domain = e.policy_domain;
  if (!e.record) return p;
  const Record& r = *e.record;
  p.adkim = r.adkim == Alignment::kStrict ? "s" : "r";
  p.aspf = r.aspf == Alignment::kStrict ? "s" : "r";
  p.p = std::string(policy_name(r.p));
  p.sp = std::string(policy_name(r.sp.value_or(r.p)));
  p.pct = r.pct;
  p.fo = r.fo;
  for (const auto& u : r.rua) {
    if (!p.rua.empty()) p.rua += ',';
    p.rua += clean(u.encode());
  }
  return p;
}

AggregateStore::AggregateStore(common::redis::Pool& pool, std::chrono::seconds interval,
                               std::chrono::seconds retention)
    : pool_(pool), interval_(interval), retention_(retention) {}

std::string AggregateStore::agg_key(const Period& p) const {
  return pool_.key("{dmarc}:agg:" + p.domain + ":" + std::to_string(p.begin));
}

std::string AggregateStore::meta_key(const Period& p) const {
  return pool_.key("{dmarc}:meta:" + p.domain + ":" + std::to_string(p.begin));
}

void AggregateStore::record(const Published& policy, const Row& row, std::int64_t now) {
  std::int64_t len = interval_.count();
  Period period{policy.domain, now - (now % len), now - (now % len) + len};
  std::int64_t ttl = period.end - now + retention_.count();
  std::vector<std::string> args{
      encode_row(row),
      std::to_string(ttl),
      period.domain + " " + std::to_string(period.begin) + " " + std::to_string(period.end),
      "adkim",
      policy.adkim,
      "aspf",
      policy.aspf,
      "p",
      policy.p,
      "sp",
      policy.sp,
      "pct",
      std::to_string(policy.pct),
      "fo",
      policy.fo,
      "rua",
      policy.rua};
  pool_.eval(record_script(), {agg_key(period), meta_key(period), pool_.key("{dmarc}:pending")},
             args);
}

std::vector<Period> AggregateStore::pending() {
  std::vector<Period> out;
  auto reply = pool_.command({"SMEMBERS", pool_.key("{dmarc}:pending")});
  for (const auto& m : reply.as_array()) {
    auto parts = split(m.as_string(), ' ');
    if (parts.size() != 3) continue;
    try {
      out.push_back(Period{parts[0], std::stoll(parts[1]), std::stoll(parts[2])});
    } catch (const std::exception&) {
      continue;
    }
  }
  std::sort(out.begin(), out.end(), [](const Period& a, const Period& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.domain < b.domain;
  });
  return out;
}

PeriodData AggregateStore::load(const Period& period) {
  PeriodData d;
  d.period = period;
  d.published.domain = period.domain;
  auto replies = pool_.pipeline({{"HGETALL", agg_key(period)}, {"HGETALL", meta_key(period)}});
  const auto& rows = replies.at(0).as_array();
  for (std::size_t i = 0; i + 1 < rows.size(); i += 2) {
    try {
      d.rows.emplace_back(decode_row(rows[i].as_string()), std::stoull(rows[i + 1].as_string()));
    } catch (const std::exception&) {
      continue;  // not ours: never let one bad field stop a report
    }
  }
  const auto& meta = replies.at(1).as_array();
  for (std::size_t i = 0; i + 1 < meta.size(); i += 2) {
    const std::string& k = meta[i].as_string();
    const std::string& v = meta[i + 1].as_string();
    if (k == "adkim")
      d.published.adkim = v;
    else if (k == "aspf")
      d.published.aspf = v;
    else if (k == "p")
      d.published.p = v;
    else if (k == "sp")
      d.published.sp = v;
    else if (k == "fo")
      d.published.fo = v;
    else if (k == "rua")
      d.published.rua = v;
    else if (k == "pct") {
      try {
        d.published.pct = std::stoi(v);
      } catch (const std::exception&) {
      }
    }
  }
  std::sort(d.rows.begin(), d.rows.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  return d;
}

void AggregateStore::remove(const Period& period) {
  pool_.pipeline(
      {{"DEL", agg_key(period), meta_key(period)},
       {"SREM", pool_.key("{dmarc}:pending"),
        period.domain + " " + std::to_string(period.begin) + " " + std::to_string(period.end)}});
}

}  // namespace mxguard::milter::dmarc
