// Implementation of the shared rate limiter (see ratelimit.h).
#include "common/ratelimit/ratelimit.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "common/config/units.h"
#include "common/redis/errors.h"

namespace mxguard::common::ratelimit {
namespace {

// KEYS: one hash per subject. ARGV: now_ms, cost, mode (peek|count|consume), then per subject:
// number of limits, block_ms, then per limit: max, window_ms, blocks (0|1).
// Mode countnew: the first subject is always counted, the others only if the first one's first
// limit had no events (current or previous window).
// Hash fields: s:W / c:W / p:W = start, current and previous count of the fixed windows of
// length W ms; b = blocked until (ms). The estimate of a sliding window of length W is
// prev * (W - elapsed) / W + cur.
// Several hosts share the keys and their clocks differ a little: a stored window that starts
// later than ours is another host's current window, so we count into it (elapsed 0) instead of
// overwriting its counts with an empty window of our own.
// Returns {counted, {blocked_remaining_ms, newly_blocked, est1_milli, est2_milli, ...}, ...}.
constexpr const char* kScript = R"lua(
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local mode = ARGV[3]
local pos = 4
local subjects = {}
local fits = true
for i = 1, #KEYS do
  local n = tonumber(ARGV[pos])
  local s = {block = tonumber(ARGV[pos + 1]), lim = {}, maxw = 0}
  pos = pos + 2
  -- One HMGET per subject: b, then s:W c:W p:W per limit.
  local fields = {'b'}
  for j = 1, n do
    local w = ARGV[pos + (j - 1) * 3 + 1]
    fields[#fields + 1] = 's:' .. w
    fields[#fields + 1] = 'c:' .. w
    fields[#fields + 1] = 'p:' .. w
  end
  local st = redis.call('HMGET', KEYS[i], unpack(fields))
  s.b = tonumber(st[1]) or 0
  if s.b <= now then s.b = 0 end
  if s.b > 0 then fits = false end
  for j = 1, n do
    local max = tonumber(ARGV[pos])
    local w = tonumber(ARGV[pos + 1])
    local blocks = ARGV[pos + 2] == '1'
    pos = pos + 3
    local start = now - (now % w)
    local k = (j - 1) * 3 + 2
    local ss = tonumber(st[k])
    local cur, prev = 0, 0
    if ss and ss > start then start = ss end  -- a host whose clock is ahead opened it
    if ss == start then
      cur, prev = tonumber(st[k + 1]) or 0, tonumber(st[k + 2]) or 0
    elseif ss == start - w then
      prev = tonumber(st[k + 1]) or 0
    end
    local elapsed = now - start
    if elapsed < 0 then elapsed = 0 end
    local l = {max = max, w = w, start = start, cur = cur, prev = prev, blocks = blocks}
    l.est = prev * (w - elapsed) / w + cur
    if l.est + cost > max then fits = false end
    if w > s.maxw then
      s.maxw = w
      s.rolled = ss ~= start  -- first count in the longest window: the TTL must be renewed
    end
    s.lim[j] = l
  end
  subjects[i] = s
end
local counted = 0
local last = #KEYS
local repeated = 0
if mode == 'countnew' and #KEYS > 0 then
  local l = subjects[1].lim[1]
  if l and (l.cur > 0 or l.prev > 0) then
    repeated = 1
    last = 1
  end
end
if mode == 'count' or mode == 'countnew' or (mode == 'consume' and fits) then
  counted = 1
  for i = 1, last do
    local s = subjects[i]
    s.counted = true
    s.set = {}
    for j, l in ipairs(s.lim) do
      l.cur = l.cur + cost
      l.est = l.est + cost
      local t = s.set
      t[#t + 1] = 's:' .. l.w
      t[#t + 1] = l.start
      t[#t + 1] = 'c:' .. l.w
      t[#t + 1] = l.cur
      t[#t + 1] = 'p:' .. l.w
      t[#t + 1] = l.prev
    end
  end
end
local out = {counted, repeated}
for i = 1, #KEYS do
  local s = subjects[i]
  local newly = 0
  if s.counted and s.block > 0 and s.b == 0 then
    for j, l in ipairs(s.lim) do
      if l.blocks and l.est > l.max then
        s.b = now + s.block
        newly = 1
        s.set[#s.set + 1] = 'b'
        s.set[#s.set + 1] = s.b
        break
      end
    end
  end
  if s.counted then
    if #s.set > 0 then redis.call('HSET', KEYS[i], unpack(s.set)) end
    -- Counts matter until the end of the window after theirs: a TTL of 2 x the longest window,
    -- set at the first count of each of its windows, covers that (and saves a call per hit).
    if s.rolled or newly == 1 then
      local ttl = 2 * s.maxw
      if s.b - now > ttl then ttl = s.b - now end
      if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
    end
  end
  local r = {s.b > 0 and (s.b - now) or 0, newly}
  for j, l in ipairs(s.lim) do r[#r + 1] = math.floor(l.est * 1000) end
  out[#out + 1] = r
end
return out
)lua";

// KEYS[1]: a subject. Deletes its counters, keeps a block that is still in force (ARGV[1]: now).
constexpr const char* kResetScript = R"lua(
local b = tonumber(redis.call('HGET', KEYS[1], 'b') or '0') or 0
redis.call('DEL', KEYS[1])
local now = tonumber(ARGV[1])
if b > now then
  redis.call('HSET', KEYS[1], 'b', b)
  redis.call('PEXPIRE', KEYS[1], b - now)
  return 1
end
return 0
)lua";

const redis::Script& reset_script() {
  static const redis::Script script("ratelimit-reset", kResetScript);
  return script;
}

std::string format_window(std::chrono::milliseconds w) {
  return config::format_duration(config::Duration(w));
}

}  // namespace

Limit Limit::parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    throw std::invalid_argument("'" + std::string(text) + "': expected COUNT/WINDOW, e.g. 10/1m");
  }
  Limit l;
  std::string_view count = text.substr(0, slash);
  auto [p, ec] = std::from_chars(count.data(), count.data() + count.size(), l.max);
  if (ec != std::errc() || p != count.data() + count.size() || l.max == 0) {
    throw std::invalid_argument("'" + std::string(text) + "': count must be a positive number");
  }
  try {
    l.window = config::parse_duration(text.substr(slash + 1)).value;
  } catch (const std::invalid_argument& ex) {
    throw std::invalid_argument("'" + std::string(text) + "': " + ex.what());
  }
  if (l.window.count() < 1000) {
    throw std::invalid_argument("'" + std::string(text) + "': window must be at least 1s");
  }
  return l;
}

std::string Limit::to_string() const { return std::to_string(max) + "/" + format_window(window); }

bool Result::blocked() const {
  return std::any_of(subjects.begin(), subjects.end(),
                     [](const SubjectState& s) { return s.blocked_for.count() > 0; });
}

std::int64_t system_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string key_part(std::string_view id) {
  bool plain = !id.empty() && id.size() <= 128;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '@' || c == '.' || c == '_' ||
          c == '+' || c == '-' || c == ':' || c == '/')) {
      plain = false;
      break;
    }
  }
  return plain ? std::string(id) : "h:" + redis::sha1_hex(id);
}

const redis::Script& ratelimit_script() {
  static const redis::Script script("ratelimit", kScript);
  return script;
}

Limiter::Limiter(redis::Pool& redis, Clock clock) : redis_(redis), clock_(std::move(clock)) {}

std::string Limiter::redis_key(std::string_view subject_key) const {
  return redis_.key("rl:{" + std::string(subject_key) + "}");
}

namespace {

std::int64_t to_int(const std::optional<std::string>& v) {
  if (!v) return 0;
  std::int64_t out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc()) return 0;
  (void)p;
  return out;
}

// The script's arithmetic for a peek, on the HMGET replies of peek_commands() (same order).
Result peek_result(const std::vector<Subject>& subjects, const std::vector<redis::Reply>& replies,
                   std::int64_t now) {
  Result result;
  for (std::size_t i = 0; i < subjects.size(); ++i) {
    const auto& fields = replies.at(i).as_array();
    const auto& limits = subjects[i].limits;
    if (fields.size() != 1 + 3 * limits.size()) throw std::runtime_error("ratelimit: bad reply");
    SubjectState st;
    std::int64_t b = to_int(fields[0].as_optional_string());
    if (b > now) st.blocked_for = std::chrono::milliseconds(b - now);
    for (std::size_t j = 0; j < limits.size(); ++j) {
      std::int64_t w = std::max<long long>(limits[j].window.count(), 1);
      std::int64_t start = now - now % w;
      std::int64_t stored = to_int(fields[1 + 3 * j].as_optional_string());
      start = std::max(start, stored);  // as the script: a later window is the current one
      double cur = 0, prev = 0;
      if (stored == start) {
        cur = static_cast<double>(to_int(fields[2 + 3 * j].as_optional_string()));
        prev = static_cast<double>(to_int(fields[3 + 3 * j].as_optional_string()));
      } else if (stored == start - w) {
        prev = static_cast<double>(to_int(fields[2 + 3 * j].as_optional_string()));
      }
      std::int64_t elapsed = std::max<std::int64_t>(now - start, 0);
      double est = prev * static_cast<double>(w - elapsed) / static_cast<double>(w) + cur;
      est = std::floor(est * 1000) / 1000;  // as the script returns it
      st.counts.push_back(est);
      auto max = static_cast<double>(limits[j].max);
      if (!st.exceeded && est > max) st.exceeded = j;
      if (!st.reached && est >= max) st.reached = j;
    }
    result.subjects.push_back(std::move(st));
  }
  return result;
}

}  // namespace

std::vector<std::vector<std::string>> Limiter::peek_commands(
    const std::vector<Subject>& subjects) const {
  std::vector<std::vector<std::string>> commands;
  for (const auto& s : subjects) {
    std::vector<std::string> c{"HMGET", redis_key(s.key), "b"};
    for (const auto& l : s.limits) {
      std::string w = std::to_string(std::max<long long>(l.window.count(), 1));
      c.push_back("s:" + w);
      c.push_back("c:" + w);
      c.push_back("p:" + w);
    }
    commands.push_back(std::move(c));
  }
  return commands;
}

// Read only, so no script: one pipelined HMGET per subject, and the script's arithmetic here.
// A peek is the most frequent call (authpolicy's allow) and Lua's per-call overhead dominated
// it (docs/BENCHMARKS.md).
Result Limiter::peek(const std::vector<Subject>& subjects) {
  std::int64_t now = clock_();
  return peek_result(subjects, redis_.pipeline(peek_commands(subjects)), now);
}

void Limiter::peek_async(redis::Batcher& batcher, std::vector<Subject> subjects, HitCallback done) {
  if (subjects.empty()) throw std::invalid_argument("peek_async: needs subjects");
  // The HMGETs go out as separate batcher calls (usually in one pipeline); the last reply to
  // arrive computes the result.
  struct Join {
    std::vector<Subject> subjects;
    std::int64_t now = 0;
    HitCallback done;
    std::mutex mutex;
    std::vector<redis::Batcher::Result> replies;
    std::size_t left = 0;
  };
  auto join = std::make_shared<Join>();
  join->now = clock_();
  auto commands = peek_commands(subjects);
  join->subjects = std::move(subjects);
  join->done = std::move(done);
  join->replies.resize(commands.size());
  join->left = commands.size();
  for (std::size_t i = 0; i < commands.size(); ++i) {
    batcher.command(std::move(commands[i]), [join, i](redis::Batcher::Result r) {
      {
        std::lock_guard lock(join->mutex);
        join->replies[i] = std::move(r);
        if (--join->left > 0) return;
      }
      std::optional<Result> result;
      std::exception_ptr error;
      std::vector<redis::Reply> replies;
      for (auto& reply : join->replies) {
        if (!reply.reply) {
          error = reply.error ? reply.error
                              : std::make_exception_ptr(std::runtime_error("ratelimit: no reply"));
          break;
        }
        replies.push_back(std::move(*reply.reply));
      }
      if (!error) {
        try {
          result = peek_result(join->subjects, replies, join->now);
        } catch (const std::exception&) {
          error = std::current_exception();
        }
      }
      join->done(std::move(result), error);
    });
  }
}

namespace {

std::string_view mode_name(Mode mode) {
  switch (mode) {
    case Mode::kPeek:
      return "peek";
    case Mode::kCount:
      return "count";
    case Mode::kCountNew:
      return "countnew";
    case Mode::kConsume:
      return "consume";
  }
  return "peek";
}

Result parse_result(const redis::Reply& reply, const std::vector<Subject>& subjects) {
  Result result;
  const auto& top = reply.as_array();
  if (top.size() != subjects.size() + 2) throw std::runtime_error("ratelimit: unexpected reply");
  result.counted = top[0].as_integer() == 1;
  result.repeat = top[1].as_integer() == 1;
  for (std::size_t i = 0; i < subjects.size(); ++i) {
    const auto& r = top[i + 2].as_array();
    const auto& limits = subjects[i].limits;
    if (r.size() != limits.size() + 2) throw std::runtime_error("ratelimit: unexpected reply");
    SubjectState st;
    st.blocked_for = std::chrono::milliseconds(r[0].as_integer());
    st.newly_blocked = r[1].as_integer() == 1;
    for (std::size_t j = 0; j < limits.size(); ++j) {
      double est = static_cast<double>(r[j + 2].as_integer()) / 1000.0;
      st.counts.push_back(est);
      double max = static_cast<double>(limits[j].max);
      if (!st.exceeded && est > max) st.exceeded = j;
      if (!st.reached && est >= max) st.reached = j;
    }
    result.subjects.push_back(std::move(st));
  }
  return result;
}

}  // namespace

void Limiter::script_call(const Hit& hit, std::int64_t now, std::vector<std::string>& keys,
                          std::vector<std::string>& args) const {
  args = {std::to_string(now), std::to_string(hit.cost), std::string(mode_name(hit.mode))};
  for (const auto& s : hit.subjects) {
    keys.push_back(redis_key(s.key));
    args.push_back(std::to_string(s.limits.size()));
    args.push_back(std::to_string(s.block_for.count()));
    for (const auto& l : s.limits) {
      args.push_back(std::to_string(l.max));
      args.push_back(std::to_string(std::max<long long>(l.window.count(), 1)));
      args.push_back(l.blocks ? "1" : "0");
    }
  }
}

Result Limiter::hit(const std::vector<Subject>& subjects, Mode mode, std::uint64_t cost) {
  if (subjects.empty()) return {};
  if (mode == Mode::kPeek) return peek(subjects);
  std::vector<std::string> keys, args;
  script_call(Hit{subjects, mode, cost}, clock_(), keys, args);
  return parse_result(redis_.eval(ratelimit_script(), keys, args), subjects);
}

void Limiter::hit_async(redis::Batcher& batcher, std::vector<Subject> subjects, Mode mode,
                        std::uint64_t cost, HitCallback done) {
  if (subjects.empty() || mode == Mode::kPeek) {
    throw std::invalid_argument("hit_async: needs subjects and a counting mode");
  }
  std::vector<std::string> keys, args;
  script_call(Hit{subjects, mode, cost}, clock_(), keys, args);
  batcher.eval(ratelimit_script(), keys, args,
               [subjects = std::move(subjects), done = std::move(done)](redis::Batcher::Result r) {
                 if (!r.reply) return done(std::nullopt, r.error);
                 std::optional<Result> result;
                 std::exception_ptr error;
                 try {
                   result = parse_result(*r.reply, subjects);
                 } catch (const std::exception&) {
                   error = std::current_exception();
                 }
                 done(std::move(result), error);
               });
}

std::vector<Result> Limiter::hit_batch(const std::vector<Hit>& hits) {
  std::vector<Result> out(hits.size());
  std::vector<std::vector<std::string>> commands;
  std::vector<std::size_t> index;  // command → hit
  std::int64_t now = clock_();
  const auto& script = ratelimit_script();
  for (std::size_t i = 0; i < hits.size(); ++i) {
    if (hits[i].subjects.empty()) continue;
    if (hits[i].mode == Mode::kPeek) throw std::invalid_argument("hit_batch: no peeks");
    std::vector<std::string> keys, args;
    script_call(hits[i], now, keys, args);
    std::vector<std::string> c{"EVALSHA", script.sha1(), std::to_string(keys.size())};
    c.insert(c.end(), keys.begin(), keys.end());
    c.insert(c.end(), args.begin(), args.end());
    commands.push_back(std::move(c));
    index.push_back(i);
  }
  if (commands.empty()) return out;
  auto lease = redis_.borrow();
  std::vector<redis::Reply> replies;
  try {
    replies = lease->pipeline(commands);
  } catch (const redis::ReplyError& ex) {
    if (std::string_view(ex.what()).find("NOSCRIPT") == std::string_view::npos) throw;
    // A restarted or flushed Redis: load once, then the whole batch again (the script did
    // not run for any NOSCRIPT reply; a batch is all NOSCRIPT or none, bar a SCRIPT FLUSH
    // racing it, after which counts may be short by one batch).
    lease->command({"SCRIPT", "LOAD", script.source()});
    replies = lease->pipeline(commands);
  }
  for (std::size_t k = 0; k < replies.size(); ++k) {
    out[index[k]] = parse_result(replies[k], hits[index[k]].subjects);
  }
  return out;
}

void Limiter::reset(std::string_view subject_key) {
  redis_.command({"DEL", redis_key(subject_key)});
}

void Limiter::reset_counts(std::string_view subject_key) {
  redis_.eval(reset_script(), {redis_key(subject_key)}, {std::to_string(clock_())});
}

void Limiter::block(std::string_view subject_key, std::chrono::milliseconds duration) {
  std::string key = redis_key(subject_key);
  std::int64_t until = clock_() + duration.count();
  auto replies = redis_.pipeline({{"HSET", key, "b", std::to_string(until)}, {"PTTL", key}});
  long long ttl = replies[1].as_integer();
  if (ttl < duration.count()) redis_.command({"PEXPIRE", key, std::to_string(duration.count())});
}

void Limiter::unblock(std::string_view subject_key) {
  redis_.command({"HDEL", redis_key(subject_key), "b"});
}

std::vector<std::pair<std::string, std::chrono::milliseconds>> Limiter::blocked(
    std::string_view key_prefix) {
  std::string head = redis_.key("rl:{");
  std::string pattern = head + std::string(key_prefix) + "*";
  std::vector<std::string> keys;
  std::string cursor = "0";
  do {
    auto r = redis_.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    const auto& a = r.as_array();
    cursor = a.at(0).as_string();
    for (const auto& k : a.at(1).as_array()) keys.push_back(k.as_string());
  } while (cursor != "0");
  std::sort(keys.begin(), keys.end());
  std::vector<std::pair<std::string, std::chrono::milliseconds>> out;
  if (keys.empty()) return out;
  std::vector<std::vector<std::string>> cmds;
  for (const auto& k : keys) cmds.push_back({"HGET", k, "b"});
  auto replies = redis_.pipeline(cmds);
  std::int64_t now = clock_();
  for (std::size_t i = 0; i < keys.size(); ++i) {
    auto v = replies[i].as_optional_string();
    if (!v) continue;
    std::int64_t until = 0;
    std::from_chars(v->data(), v->data() + v->size(), until);
    if (until <= now) continue;
    std::string subject = keys[i].substr(head.size());
    if (!subject.empty() && subject.back() == '}') subject.pop_back();
    out.emplace_back(subject, std::chrono::milliseconds(until - now));
  }
  return out;
}

}  // namespace mxguard::common::ratelimit
