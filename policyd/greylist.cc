// Implementation of greylisting (see greylist.h).
#include "policyd/greylist.h"

#include <unistd.h>

#include <cctype>
#include <ctime>

#include "common/config/config.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/redis/errors.h"
#include "common/util/host.h"
#include "common/version.h"

namespace mxguard::policyd {
namespace {

// KEYS[1] triplet hash {first,last[,c,s,r]}, KEYS[2] client AWL hash {count,last}.
// ARGV: now, delay, max_age, retry_window, awl_clients, then client, sender, recipient ("" in
// privacy mode). Returns {verdict, wait_seconds, age, was_successful, awl_reached}.
// The logic is postgrey 1.37's smtpd_access_policy(), with its maintenance job replaced by TTLs.
constexpr const char* kScript = R"lua(
local now = tonumber(ARGV[1])
local delay = tonumber(ARGV[2])
local max_age = tonumber(ARGV[3])
local retry_window = tonumber(ARGV[4])
local awl_n = tonumber(ARGV[5])
local cawl_count, cawl_last
if awl_n > 0 then
  local c = redis.call('HMGET', KEYS[2], 'count', 'last')
  cawl_count = tonumber(c[1])
  cawl_last = tonumber(c[2])
  if cawl_count and cawl_count >= awl_n then
    if now >= cawl_last + 3600 or cawl_last > now then
      redis.call('HSET', KEYS[2], 'count', cawl_count + 1, 'last', now)
    end
    redis.call('EXPIRE', KEYS[2], max_age)
    return {'awl', 0, -1, 1, 0}
  end
end
local t = redis.call('HMGET', KEYS[1], 'first', 'last')
local first = tonumber(t[1])
local last = tonumber(t[2])
local was_ok = 0
if last and now - last > max_age then
  first = nil  -- normally gone by TTL already; this keeps the rule exact under clock skew
end
if first and last then
  if last - first >= delay then
    was_ok = 1
  elseif now - first > retry_window then
    first = now
  end
  if first > now then first = now end
else
  first = now
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'first', first, 'last', now, 'c', ARGV[6], 's', ARGV[7], 'r', ARGV[8])
else
  redis.call('HSET', KEYS[1], 'first', first, 'last', now)
end
local diff = delay - (now - first)
if diff <= 0 then
  redis.call('EXPIRE', KEYS[1], max_age)
else
  redis.call('EXPIRE', KEYS[1], retry_window)
end
local reached = 0
if awl_n > 0 and diff <= 0 and was_ok == 0 then
  if not cawl_last or now >= cawl_last + 3600 then
    cawl_count = (cawl_count or 0) + 1
    redis.call('HSET', KEYS[2], 'count', cawl_count, 'last', now)
    redis.call('EXPIRE', KEYS[2], max_age)
    if cawl_count == awl_n then reached = 1 end
  end
end
if diff > 0 then
  return {'greylist', diff, now - first, was_ok, 0}
end
return {'pass', 0, now - first, was_ok, reached}
)lua";

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool all_lower_alnum10(std::string_view s) {
  if (s.size() < 10) return false;
  for (std::size_t i = 0; i < 10; ++i) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return false;
  }
  return true;
}

// Perl's split: trailing empty fields are dropped (postgrey relies on that for BATV).
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    auto p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string_view::npos ? s.npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  while (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

std::string sha1(std::string_view s) { return common::redis::sha1_hex(s); }

common::metrics::Counter& store_errors() {
  return common::metrics::Registry::global().counter(
      "mxguard_greylist_store_errors_total",
      "Greylist decisions that could not reach Redis and used --greylist-on-store-error");
}

}  // namespace

void GreylistOptions::bind(common::config::Binder& b) {
  b.add("greylist-delay", delay, "minimum time before a retry is accepted (postgrey --delay)");
  b.add("greylist-max-age", max_age,
        "passed triplets are forgotten this long after last seen (postgrey --max-age)");
  b.add("greylist-retry-window", retry_window,
        "the first retry must come within this time (postgrey --retry-window)");
  b.add("greylist-ipv4-prefix", ipv4_prefix,
        "greylist IPv4 clients by this network size; 32 = by host (postgrey --ipv4cidr)");
  b.add("greylist-ipv6-prefix", ipv6_prefix,
        "greylist IPv6 clients by this network size; 128 = by host (postgrey --ipv6cidr)");
  b.add("greylist-privacy", privacy,
        "store SHA-1 hashes instead of addresses (postgrey --privacy)");
  b.add("greylist-auto-whitelist-clients", auto_whitelist_clients,
        "whitelist a client after this many passed deliveries; 0 = off "
        "(postgrey --auto-whitelist-clients)");
  b.add("greylist-action", action, "action for a greylisted request (postgrey --greylist-action)");
  b.add("greylist-text", text,
        "reply text; %s = seconds left, %r = recipient domain (postgrey --greylist-text)");
  b.add("greylist-header", header, "prepend X-Greylist: to mail that passed after a delay");
  b.add("greylist-whitelist-clients", whitelist_clients,
        "client whitelist files in postgrey format (postgrey --whitelist-clients)");
  b.add("greylist-whitelist-recipients", whitelist_recipients,
        "recipient whitelist files in postgrey format (postgrey --whitelist-recipients)");
  b.add("greylist-on-store-error", on_store_error,
        "when Redis fails: dunno (mail flows ungreylisted) or defer");
  b.add("greylist-hostname", hostname, "host name in the X-Greylist header (empty: this host)");
  b.add("greylist-spf-pass-by-domain", spf_pass_by_domain,
        "key the triplet by the sender domain when the client passes SPF for it, so retries "
        "from another address of the sender's pool pass (needs the spf check before greylist)");
}

void GreylistOptions::validate() const {
  using common::config::OptionError;
  if (delay.value.count() < 1000) throw OptionError("greylist-delay", "must be at least 1s");
  if (max_age.value <= delay.value) {
    throw OptionError("greylist-max-age", "must be longer than greylist-delay");
  }
  if (retry_window.value <= delay.value) {
    throw OptionError("greylist-retry-window", "must be longer than greylist-delay");
  }
  if (ipv4_prefix < 1 || ipv4_prefix > 32) throw OptionError("greylist-ipv4-prefix", "1 to 32");
  if (ipv6_prefix < 1 || ipv6_prefix > 128) {
    throw OptionError("greylist-ipv6-prefix", "1 to 128");
  }
  if (on_store_error != "dunno" && on_store_error != "defer") {
    throw OptionError("greylist-on-store-error", "expected dunno or defer");
  }
  if (action.empty() || action.find_first_of("\r\n") != std::string::npos) {
    throw OptionError("greylist-action", "must be one non-empty line");
  }
  if (text.find_first_of("\r\n") != std::string::npos) {
    throw OptionError("greylist-text", "must be one line");
  }
  // Load the whitelists now, so --check-config reports a bad line as file:line. A missing
  // built-in default is not an error; the Greylister warns about it when it loads the files.
  try {
    ClientWhitelist c;
    for (const auto& f : whitelist_clients) c.load(f);
  } catch (const std::runtime_error& ex) {
    throw OptionError("greylist-whitelist-clients", ex.what());
  }
  try {
    RecipientWhitelist r;
    for (const auto& f : whitelist_recipients) r.load(f);
  } catch (const std::runtime_error& ex) {
    throw OptionError("greylist-whitelist-recipients", ex.what());
  }
}

std::string normalize_sender(std::string_view sender) {
  auto at = sender.find('@');
  if (at == std::string_view::npos) return std::string(sender);
  std::string user(sender.substr(0, at));
  std::string domain(sender.substr(at + 1));

  // SRS (mxguard addition): SRS0=HHH=TT=orig-domain=orig-user@forwarder and
  // SRS1=HHH=fwd-domain==SRS0-rest@forwarder; hash and timestamp change per message.
  std::string lower_user = to_lower(user);
  if (lower_user.rfind("srs0=", 0) == 0 || lower_user.rfind("srs0+", 0) == 0 ||
      lower_user.rfind("srs0-", 0) == 0) {
    auto parts = split(std::string_view(user).substr(5), '=');
    if (parts.size() >= 4) {
      std::string orig_user;
      for (std::size_t i = 3; i < parts.size(); ++i) {
        if (i > 3) orig_user += "=";
        orig_user += parts[i];
      }
      return normalize_sender(orig_user + "@" + std::string(parts[2]));
    }
  }

  // BATV, exactly as postgrey: prvs=tag-val=loc-core or prvs=loc-core=tag-val.
  if (user.rfind("prvs=", 0) == 0) {
    auto a = split(user, '=');
    if (a.size() == 3) {
      bool t1 = all_lower_alnum10(a[1]);
      bool t2 = all_lower_alnum10(a[2]);
      user = std::string(t1 && !t2 ? a[2] : (t2 && !t1 ? a[1] : a[2]));
    }
  }
  // +extension (VERP for mailing lists).
  if (auto plus = user.find('+'); plus != std::string::npos) user.erase(plus);
  // Numeric words → '#', so VERP bounce addresses do not create a triplet per message.
  std::string out;
  for (std::size_t i = 0; i < user.size();) {
    if (std::isdigit(static_cast<unsigned char>(user[i])) &&
        (i == 0 || !is_word_char(user[i - 1]))) {
      std::size_t j = i;
      while (j < user.size() && std::isdigit(static_cast<unsigned char>(user[j]))) ++j;
      if (j == user.size() || !is_word_char(user[j])) {
        out.push_back('#');
        i = j;
        continue;
      }
    }
    out.push_back(user[i++]);
  }
  return out + "@" + domain;
}

std::string Triplet::postgrey_key() const {
  return to_lower(client_net + "/" + sender + "/" + recipient);
}

Triplet make_triplet(const common::net::IpAddress& client, std::string_view sender,
                     std::string_view recipient, const GreylistOptions& o,
                     std::string_view spf_passed_domain) {
  Triplet t;
  int prefix = client.is_v4() ? static_cast<int>(o.ipv4_prefix) : static_cast<int>(o.ipv6_prefix);
  t.client_net = client.truncated(prefix).to_string();
  if (o.spf_pass_by_domain && !spf_passed_domain.empty()) {
    t.client_net = "spf:" + to_lower(spf_passed_domain);
  }
  t.client_ip = client.to_string();
  // Senders choose these strings (up to the policy protocol's line limit): a part longer than
  // any real address is kept as its hash, so a key never grows past a few hundred bytes.
  auto bounded = [](std::string part) {
    return part.size() > kMaxKeyPart ? "sha1:" + sha1(part) : part;
  };
  t.sender = bounded(to_lower(normalize_sender(sender)));
  t.recipient = bounded(to_lower(recipient));
  return t;
}

GreylistKeys make_keys(const Triplet& t, const std::string& prefix, bool privacy) {
  std::string tag = privacy ? sha1(t.client_net) : t.client_net;
  std::string base = prefix + "gl:{" + tag + "}:";
  return GreylistKeys{base + "t:" + (privacy ? sha1(t.postgrey_key()) : t.postgrey_key()),
                      base + "awl:" + (privacy ? sha1(t.client_ip) : t.client_ip)};
}

std::int64_t system_clock_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const common::redis::Script& greylist_script() {
  static const common::redis::Script script("greylist", kScript);
  return script;
}

Greylister::Greylister(GreylistOptions options, common::redis::Pool& redis, Clock clock)
    : options_(std::move(options)), redis_(redis), clock_(std::move(clock)) {
  // One warning per missing default file per load (start and each reload), never per request.
  auto warn_if_missing = [](WhitelistLoad result, const WhitelistFile& f, std::string_view what) {
    if (result != WhitelistLoad::kMissingDefault) return;
    common::log::warning("greylist: " + f.path + " does not exist (a built-in default of " +
                         std::string(what) + "): not used; create it or set " + std::string(what) +
                         " to the files you want");
  };
  for (const auto& f : options_.whitelist_clients) {
    warn_if_missing(clients_.load(f), f, "greylist-whitelist-clients");
  }
  for (const auto& f : options_.whitelist_recipients) {
    warn_if_missing(recipients_.load(f), f, "greylist-whitelist-recipients");
  }
  hostname_ = options_.hostname.empty() ? common::util::host_name() : options_.hostname;
}

bool Greylister::first_time_for_instance(std::string_view instance) {
  if (instance.empty()) return true;  // no instance attribute: every request is new
  std::lock_guard lock(mutex_);
  for (const auto& i : instances_) {
    if (i == instance) return false;
  }
  instances_.emplace_front(instance);
  if (instances_.size() > 64) instances_.pop_back();
  return true;
}

bool Greylister::dynamic_whitelisted(const common::net::IpAddress& client,
                                     std::string_view sender) {
  std::int64_t now = clock_();
  std::unique_lock lock(mutex_);
  if (dynamic_loaded_at_ < 0 || now - dynamic_loaded_at_ >= kDynamicWhitelistRefresh.count()) {
    dynamic_loaded_at_ = now;  // also on failure: never one Redis round trip per request
    lock.unlock();
    std::vector<common::net::Cidr> nets;
    std::vector<std::string> domains;
    try {
      auto reply = redis_.command({"HGETALL", redis_.key("gl:wl")});
      const auto& items = reply.as_array();
      for (std::size_t i = 0; i + 1 < items.size(); i += 2) {
        const std::string& field = items[i].as_string();
        long long expires = std::atoll(items[i + 1].as_string().c_str());
        if (expires != 0 && expires < now) continue;
        if (field.rfind("client:", 0) == 0) {
          if (auto c = common::net::Cidr::try_parse(field.substr(7))) nets.push_back(*c);
        } else if (field.rfind("sender:", 0) == 0) {
          domains.push_back(to_lower(field.substr(7)));
        }
      }
      lock.lock();
      dynamic_clients_ = std::move(nets);
      dynamic_sender_domains_ = std::move(domains);
    } catch (const common::redis::Error& ex) {
      // Keep the last list we had; the pool logs the outage once.
      lock.lock();
    }
  }
  for (const auto& n : dynamic_clients_) {
    if (n.contains(client)) return true;
  }
  auto at = sender.rfind('@');
  if (at != std::string_view::npos && !dynamic_sender_domains_.empty()) {
    std::string domain = to_lower(sender.substr(at + 1));
    for (const auto& d : dynamic_sender_domains_) {
      if (domain == d || (domain.size() > d.size() && domain.ends_with("." + d))) return true;
    }
  }
  return false;
}

std::string Greylister::format_text(long wait, std::string_view recipient, bool etrn) const {
  // postgrey's rules exactly: the 4.2.0 prefix is decided on the configured text (Exchange
  // workaround; Postfix >= 2.3 always sends etrn_domain), and only the first %s and the
  // first %r are replaced.
  std::string msg = options_.text;
  if (etrn && (msg.empty() || !std::isdigit(static_cast<unsigned char>(msg[0])))) {
    msg = "4.2.0 " + msg;
  }
  if (auto p = msg.find("%s"); p != std::string::npos) msg.replace(p, 2, std::to_string(wait));
  auto at = recipient.rfind('@');
  std::string domain(at == std::string_view::npos ? recipient : recipient.substr(at + 1));
  if (auto p = msg.find("%r"); p != std::string::npos) msg.replace(p, 2, domain);
  return msg;
}

std::string Greylister::header_value(long delay) const {
  std::time_t t = static_cast<std::time_t>(clock_());
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char date[64];
  std::strftime(date, sizeof date, "%a, %d %b %Y %T %Z", &tm);
  return "X-Greylist: delayed " + std::to_string(delay) + " seconds by mxguard-policyd-" +
         mxguard::kVersion + " at " + hostname_ + "; " + date;
}

std::optional<Decision> Greylister::whitelisted(const common::policy::Request& req,
                                                const common::net::IpAddress& client) {
  if (clients_.matches(req.get("client_name"), client)) {
    return Decision{Decision::Kind::kWhitelisted, "DUNNO", "client whitelist", -1};
  }
  if (recipients_.matches(req.recipient())) {
    return Decision{Decision::Kind::kWhitelisted, "DUNNO", "recipient whitelist", -1};
  }
  if (dynamic_whitelisted(client, req.sender())) {
    return Decision{Decision::Kind::kWhitelisted, "DUNNO", "admin whitelist", -1};
  }
  return std::nullopt;
}

Greylister::Call Greylister::prepare(const common::policy::Request& req,
                                     const common::net::IpAddress& client,
                                     std::string_view spf_passed_domain) const {
  Call call;
  Triplet t = make_triplet(client, req.sender(), req.recipient(), options_, spf_passed_domain);
  GreylistKeys keys = make_keys(t, redis_.options().prefix, options_.privacy);
  call.keys = {keys.triplet, keys.awl};
  call.args = {std::to_string(clock_()),
               std::to_string(options_.delay.seconds().count()),
               std::to_string(options_.max_age.seconds().count()),
               std::to_string(options_.retry_window.seconds().count()),
               std::to_string(options_.auto_whitelist_clients),
               options_.privacy ? "" : t.client_ip,
               options_.privacy ? "" : t.sender,
               options_.privacy ? "" : t.recipient};
  call.client_ip = t.client_ip;
  call.recipient = std::string(req.recipient());
  call.etrn = req.has("etrn_domain");
  call.instance = std::string(req.instance());
  return call;
}

Decision Greylister::store_error(const std::string& what) const {
  store_errors().inc();
  bool defer = options_.on_store_error == "defer";
  return Decision{Decision::Kind::kError,
                  defer ? "DEFER_IF_PERMIT 4.3.0 Greylisting temporarily unavailable" : "DUNNO",
                  "store error: " + what, -1};
}

Decision Greylister::decide(const Call& call, const common::redis::Reply& reply) {
  const auto& r = reply.as_array();
  if (r.size() != 5) throw common::redis::ProtocolError("greylist script returned a bad reply");
  const std::string& verdict = r[0].as_string();
  long wait = static_cast<long>(r[1].as_integer());
  long age = static_cast<long>(r[2].as_integer());
  bool was_ok = r[3].as_integer() == 1;
  if (r[4].as_integer() == 1) {
    common::log::info("greylist: client " + call.client_ip + " auto-whitelisted after " +
                      std::to_string(options_.auto_whitelist_clients) + " deliveries");
  }
  if (verdict == "awl") return Decision{Decision::Kind::kWhitelisted, "DUNNO", "client AWL", -1};
  if (verdict == "greylist") {
    std::string action = options_.action + " " + format_text(wait, call.recipient, call.etrn);
    return Decision{Decision::Kind::kGreylist, action, age == 0 ? "new" : "early-retry", age};
  }
  if (!was_ok && options_.header && first_time_for_instance(call.instance)) {
    return Decision{Decision::Kind::kPass, "PREPEND " + header_value(age), "triplet passed", age};
  }
  return Decision{Decision::Kind::kPass, "DUNNO", "triplet found", age};
}

Decision Greylister::check(const common::policy::Request& req, const common::net::IpAddress& client,
                           std::string_view spf_passed_domain) {
  if (auto d = whitelisted(req, client)) return *d;
  Call call = prepare(req, client, spf_passed_domain);
  common::redis::Reply reply;
  try {
    reply = redis_.eval(greylist_script(), call.keys, call.args);
  } catch (const common::redis::Error& ex) {
    return store_error(ex.what());
  }
  return decide(call, reply);
}

void Greylister::check_async(const common::policy::Request& req,
                             const common::net::IpAddress& client,
                             std::string_view spf_passed_domain, common::redis::Batcher& batcher,
                             std::function<void(Decision)> done) {
  if (auto d = whitelisted(req, client)) return done(std::move(*d));
  auto call = std::make_shared<Call>(prepare(req, client, spf_passed_domain));
  batcher.eval(greylist_script(), call->keys, call->args,
               [this, call, done = std::move(done)](common::redis::Batcher::Result result) {
                 Decision d;
                 try {
                   if (result.error) std::rethrow_exception(result.error);
                   d = decide(*call, *result.reply);
                 } catch (const std::exception& ex) {
                   d = store_error(ex.what());
                 }
                 done(std::move(d));
               });
}

}  // namespace mxguard::policyd
