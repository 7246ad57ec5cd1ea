// The libunbound-backed resolver (see resolver.h). All ub_* calls after set-up happen on one
// background thread: callers only enqueue work and poke an eventfd, so libunbound's callbacks,
// cancellations and our deadline bookkeeping never race each other.
#include "common/dns/resolver.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unbound.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <list>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/log/log.h"
#include "common/metrics/metrics.h"

namespace mxguard::common::dns {
namespace {

using Clock = std::chrono::steady_clock;

struct UbCtxDeleter {
  void operator()(ub_ctx* ctx) const { ub_ctx_delete(ctx); }
};
struct UbResultDeleter {
  void operator()(ub_result* result) const { ub_resolve_free(result); }
};
using UbCtxPtr = std::unique_ptr<ub_ctx, UbCtxDeleter>;
using UbResultPtr = std::unique_ptr<ub_result, UbResultDeleter>;

class EventFd {
 public:
  EventFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd_ < 0) {
      throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
    }
  }
  ~EventFd() { ::close(fd_); }
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;
  int fd() const { return fd_; }
  void notify() const {
    std::uint64_t one = 1;
    // Cannot fail short of a counter overflow, which still leaves the fd readable.
    [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
  }
  void drain() const {
    std::uint64_t value = 0;
    [[maybe_unused]] auto n = ::read(fd_, &value, sizeof value);
  }

 private:
  int fd_;
};

void check(int err, const std::string& what) {
  if (err != 0) {
    throw std::runtime_error("unbound: " + what + ": " + ub_strerror(err));
  }
}

constexpr int kRcodeServFail = 2;
constexpr int kRcodeNxDomain = 3;

Answer make_answer(int err, const ub_result* result) {
  Answer answer;
  if (err != 0 || result == nullptr) {
    answer.status = err == UB_SERVFAIL ? Status::kServFail : Status::kError;
    return answer;
  }
  answer.ttl = result->ttl;
  if (result->rcode == kRcodeNxDomain || result->nxdomain) {
    answer.status = Status::kNxDomain;
  } else if (result->rcode == kRcodeServFail || result->bogus) {
    answer.status = Status::kServFail;
  } else if (result->rcode != 0) {
    answer.status = Status::kError;
  } else if (!result->havedata) {
    answer.status = Status::kNoData;
  } else {
    std::size_t malformed = 0;
    std::size_t oversized = 0;
    for (int i = 0; result->data[i] != nullptr; ++i) {
      Bytes rdata(reinterpret_cast<const std::uint8_t*>(result->data[i]),
                  static_cast<std::size_t>(result->len[i]));
      if (auto text = rdata_to_text(static_cast<std::uint16_t>(result->qtype), rdata)) {
        // No mail check needs a TXT record this long (SPF stops at 4 KB, a DKIM RSA-8192
        // key is 1.5 KB); senders choose these names, so they do not get to fill memory.
        if (text->size() > kMaxTxtBytes) {
          ++oversized;
          continue;
        }
        answer.records.push_back(std::move(*text));
      } else {
        ++malformed;
      }
    }
    if (oversized > 0) {
      metrics::Registry::global()
          .counter("mxguard_dns_oversized_records_total",
                   "DNS TXT records skipped as longer than the resolver's limit")
          .inc(oversized);
    }
    if (malformed > 0) {
      metrics::Registry::global()
          .counter("mxguard_dns_malformed_records_total", "DNS records skipped as malformed")
          .inc(malformed);
      log::warning("dns: skipped " + std::to_string(malformed) + " malformed " +
                   type_name(static_cast<std::uint16_t>(result->qtype)) + " record(s) for " +
                   result->qname);
    }
    // Data that was all garbage is not an answer a mail check may act on; records that were
    // only too long are as good as none (a verdict, not a temporary error to retry forever).
    if (!answer.records.empty()) {
      answer.status = Status::kOk;
    } else {
      answer.status = malformed > 0 ? Status::kError : Status::kNoData;
    }
  }
  return answer;
}

}  // namespace

std::string_view status_name(Status status) {
  switch (status) {
    case Status::kOk:
      return "ok";
    case Status::kNxDomain:
      return "nxdomain";
    case Status::kNoData:
      return "nodata";
    case Status::kServFail:
      return "servfail";
    case Status::kTimeout:
      return "timeout";
    case Status::kError:
      return "error";
  }
  return "error";
}

MxAnswer to_mx(const Answer& answer) {
  MxAnswer mx{answer.status, {}, answer.ttl};
  for (const auto& text : answer.records) {
    auto space = text.find(' ');
    if (space == std::string::npos) {
      continue;  // not from rdata_to_text; cannot happen
    }
    mx.records.push_back(
        {static_cast<std::uint16_t>(std::stoul(text.substr(0, space))), text.substr(space + 1)});
  }
  std::stable_sort(mx.records.begin(), mx.records.end(), [](const MxRecord& a, const MxRecord& b) {
    return a.preference < b.preference;
  });
  return mx;
}

class Resolver::Impl {
 public:
  explicit Impl(ResolverOptions options);
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void submit(std::string name, std::uint16_t rrtype, Callback callback);
  std::optional<Answer> cached(std::string_view name, std::uint16_t rrtype);
  bool on_loop_thread() const { return std::this_thread::get_id() == thread_.get_id(); }
  std::chrono::milliseconds timeout() const { return options_.timeout; }

 private:
  struct Query {
    std::string name;
    std::uint16_t rrtype = 0;
    Callback callback;
    Clock::time_point started;
    Clock::time_point deadline;
    int async_id = 0;
  };

  void run();
  bool start_queued();  // false once stopping
  void expire(Clock::time_point now);
  void finish(std::uint64_t serial, Answer answer);
  void deliver(Query& query, Answer answer);
  static void on_result(void* mydata, int err, ub_result* result);

  // The Impl whose loop runs on this thread, for on_result: the query's serial is all we hand
  // unbound as mydata, so a late callback for a query we already timed out finds nothing.
  static thread_local Impl* loop_owner_;

  ResolverOptions options_;
  UbCtxPtr ctx_;
  EventFd wakeup_;

  // Answers by "type/lower-case name", until their TTL runs out: the warm path of an SPF check
  // then needs no thread hop at all. Bounded; cleared of expired entries when full.
  struct Cached {
    Answer answer;
    Clock::time_point expires;
    std::size_t bytes = 0;
    std::list<std::string>::iterator order;  // position in insertion_order_
  };
  static constexpr std::size_t kMaxCached = 50000;
  static std::string cache_key(std::string_view name, std::uint16_t rrtype);
  static std::size_t cost(const std::string& key, const Answer& answer);
  void remember(const Query& query, const Answer& answer);
  void forget(std::unordered_map<std::string, Cached>::iterator it);  // cache_mutex_ held
  std::mutex cache_mutex_;
  std::unordered_map<std::string, Cached> cache_;  // guarded by cache_mutex_
  std::list<std::string> insertion_order_;         // oldest first; guarded by cache_mutex_
  std::size_t cache_bytes_ = 0;                    // guarded by cache_mutex_

  std::mutex mutex_;
  std::vector<Query> queued_;  // guarded by mutex_
  bool stopping_ = false;      // guarded by mutex_

  // Loop thread only.
  std::uint64_t next_serial_ = 1;
  std::unordered_map<std::uint64_t, Query> in_flight_;
  std::set<std::pair<Clock::time_point, std::uint64_t>> deadlines_;

  std::thread thread_;  // last: starts after everything above exists
};

thread_local Resolver::Impl* Resolver::Impl::loop_owner_ = nullptr;

Resolver::Impl::Impl(ResolverOptions options) : options_(std::move(options)) {
  auto servers = validate(options_);
  ctx_.reset(ub_ctx_create());
  if (!ctx_) {
    throw std::runtime_error("unbound: cannot create a context");
  }
  // A thread, not the default forked process: daemons are multi-threaded and drop privileges.
  check(ub_ctx_async(ctx_.get(), 1), "async mode");
  auto set_option = [this](const char* name, const char* value) {
    check(ub_ctx_set_option(ctx_.get(), name, value), std::string("option ") + name);
  };
  // Local forwarders (systemd-resolved, a test server) are refused without this.
  set_option("do-not-query-localhost:", "no");
  if (!options_.cache) {
    // unbound has no switch to turn its cache off; a zero TTL cap expires every entry at once.
    set_option("cache-max-ttl:", "0");
    set_option("cache-max-negative-ttl:", "0");
  }
  if (servers.empty()) {
    check(ub_ctx_resolvconf(ctx_.get(), nullptr), "reading /etc/resolv.conf");
  }
  for (const auto& server : servers) {
    check(ub_ctx_set_fwd(ctx_.get(), server.unbound_form().c_str()),
          "forwarder " + server.unbound_form());
  }
  // unbound serves the special-use test. zone itself (NXDOMAIN) unless removed. Removing it
  // finalizes the context, so it must come after every option and forwarder.
  check(ub_ctx_zone_remove(ctx_.get(), "test."), "removing local zone test.");
  // We always forward (configured servers or resolv.conf), so the forwarder is authoritative
  // for the admin's view: unbound must not answer NXDOMAIN itself for private and
  // documentation reverse zones (a 10.x client's PTR, SPF "ptr" against TEST-NET addresses).
  static constexpr const char* kReverseZones[] = {
      "10.in-addr.arpa.",          "168.192.in-addr.arpa.",
      "254.169.in-addr.arpa.",     "2.0.192.in-addr.arpa.",
      "100.51.198.in-addr.arpa.",  "113.0.203.in-addr.arpa.",
      "8.b.d.0.1.0.0.2.ip6.arpa.", "d.f.ip6.arpa.",
      "8.e.f.ip6.arpa.",           "9.e.f.ip6.arpa.",
      "a.e.f.ip6.arpa.",           "b.e.f.ip6.arpa."};
  for (const char* zone : kReverseZones) ub_ctx_zone_remove(ctx_.get(), zone);
  for (int i = 16; i <= 31; ++i) {
    ub_ctx_zone_remove(ctx_.get(), (std::to_string(i) + ".172.in-addr.arpa.").c_str());
  }
  thread_ = std::thread([this] { run(); });
}

Resolver::Impl::~Impl() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wakeup_.notify();
  thread_.join();
  // ctx_ goes last (member order): ub_ctx_delete stops unbound's own worker thread.
}

std::string Resolver::Impl::cache_key(std::string_view name, std::uint16_t rrtype) {
  std::string key = std::to_string(rrtype) + "/";
  for (char c : name) key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (key.size() > 1 && key.back() == '.') key.pop_back();
  return key;
}

// Bytes an entry holds, roughly: the strings plus the containers' own overhead.
std::size_t Resolver::Impl::cost(const std::string& key, const Answer& answer) {
  std::size_t bytes = 2 * key.size() + sizeof(Cached) + 64;
  for (const auto& r : answer.records) bytes += r.size() + sizeof(std::string);
  return bytes;
}

void Resolver::Impl::forget(std::unordered_map<std::string, Cached>::iterator it) {
  cache_bytes_ -= it->second.bytes;
  insertion_order_.erase(it->second.order);
  cache_.erase(it);
}

std::optional<Answer> Resolver::Impl::cached(std::string_view name, std::uint16_t rrtype) {
  if (!options_.cache) return std::nullopt;
  std::string key = cache_key(name, rrtype);
  std::lock_guard lock(cache_mutex_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  if (it->second.expires <= Clock::now()) {
    forget(it);
    return std::nullopt;
  }
  static metrics::Counter& hits = metrics::Registry::global().counter(
      "mxguard_dns_cache_hits_total", "DNS answers served from mxguard's own cache");
  hits.inc();
  return it->second.answer;
}

void Resolver::Impl::remember(const Query& query, const Answer& answer) {
  // Only real answers, and only for as long as DNS says: never failures or timeouts.
  bool cacheable = answer.status == Status::kOk || answer.status == Status::kNxDomain ||
                   answer.status == Status::kNoData;
  if (!options_.cache || !cacheable || answer.ttl <= 0) return;
  std::string key = cache_key(query.name, query.rrtype);
  std::size_t bytes = cost(key, answer);
  // Names are chosen by senders (fresh DKIM selectors, SPF includes): the cache is bounded
  // in bytes, and a single large answer is not worth keeping at all (unbound has its own).
  if (bytes > options_.cache_max_answer_bytes) return;
  auto now = Clock::now();
  std::lock_guard lock(cache_mutex_);
  if (auto old = cache_.find(key); old != cache_.end()) forget(old);
  // Oldest first: with one TTL cap for everything, insertion order is close to expiry order.
  while (!insertion_order_.empty() &&
         (cache_bytes_ + bytes > options_.cache_max_bytes || cache_.size() >= kMaxCached)) {
    forget(cache_.find(insertion_order_.front()));
  }
  if (bytes > options_.cache_max_bytes) return;
  insertion_order_.push_back(key);
  auto order = std::prev(insertion_order_.end());
  cache_.emplace(
      std::move(key),
      Cached{answer, now + std::chrono::seconds(std::min(answer.ttl, 86400)), bytes, order});
  cache_bytes_ += bytes;
}

void Resolver::Impl::submit(std::string name, std::uint16_t rrtype, Callback callback) {
  auto now = Clock::now();
  Query query{std::move(name), rrtype, std::move(callback), now, now + options_.timeout, 0};
  {
    std::unique_lock lock(mutex_);
    if (!stopping_) {
      queued_.push_back(std::move(query));
      lock.unlock();
      wakeup_.notify();
      return;
    }
  }
  deliver(query, Answer{Status::kError, {}, 0});
}

void Resolver::Impl::run() {
  loop_owner_ = this;
  pollfd fds[2] = {{ub_fd(ctx_.get()), POLLIN, 0}, {wakeup_.fd(), POLLIN, 0}};
  while (start_queued()) {
    int wait_ms = -1;
    if (!deadlines_.empty()) {
      auto left = deadlines_.begin()->first - Clock::now();
      // Round up so we do not wake a hair early and spin until the deadline.
      wait_ms = static_cast<int>(
          std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(left).count()));
    }
    int n = ::poll(fds, 2, wait_ms);
    if (n < 0 && errno != EINTR) {
      log::error(std::string("dns: poll: ") + std::strerror(errno));
    }
    if (n > 0 && (fds[1].revents & POLLIN)) {
      wakeup_.drain();
    }
    if (n > 0 && fds[0].revents != 0) {
      if (int err = ub_process(ctx_.get()); err != 0) {
        log::error(std::string("dns: ub_process: ") + ub_strerror(err));
      }
    }
    expire(Clock::now());
  }
  // Shutting down: every query still in flight gets its one callback now.
  while (!in_flight_.empty()) {
    auto serial = in_flight_.begin()->first;
    ub_cancel(ctx_.get(), in_flight_.begin()->second.async_id);
    finish(serial, Answer{Status::kError, {}, 0});
  }
}

bool Resolver::Impl::start_queued() {
  std::vector<Query> batch;
  bool stopping;
  {
    std::lock_guard lock(mutex_);
    batch.swap(queued_);
    stopping = stopping_;
  }
  for (auto& query : batch) {
    if (stopping) {
      deliver(query, Answer{Status::kError, {}, 0});
      continue;
    }
    auto serial = next_serial_++;
    int err = ub_resolve_async(
        ctx_.get(), query.name.c_str(), query.rrtype, 1 /* IN */,
        // NOLINTNEXTLINE(performance-no-int-to-ptr): a serial number, never dereferenced
        reinterpret_cast<void*>(static_cast<std::uintptr_t>(serial)), &Impl::on_result,
        &query.async_id);
    if (err != 0) {  // e.g. a syntactically bad name
      log::warning("dns: cannot query " + query.name + ": " + ub_strerror(err));
      deliver(query, Answer{Status::kError, {}, 0});
      continue;
    }
    deadlines_.emplace(query.deadline, serial);
    in_flight_.emplace(serial, std::move(query));
  }
  return !stopping;
}

void Resolver::Impl::expire(Clock::time_point now) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    auto serial = deadlines_.begin()->second;
    if (auto it = in_flight_.find(serial); it != in_flight_.end()) {
      ub_cancel(ctx_.get(), it->second.async_id);
    }
    finish(serial, Answer{Status::kTimeout, {}, 0});
  }
}

void Resolver::Impl::on_result(void* mydata, int err, ub_result* result) {
  UbResultPtr owned(result);
  auto serial = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(mydata));
  loop_owner_->finish(serial, make_answer(err, owned.get()));
}

void Resolver::Impl::finish(std::uint64_t serial, Answer answer) {
  auto it = in_flight_.find(serial);
  if (it == in_flight_.end()) {
    return;  // already timed out or cancelled
  }
  Query query = std::move(it->second);
  in_flight_.erase(it);
  deadlines_.erase({query.deadline, serial});
  deliver(query, std::move(answer));
}

void Resolver::Impl::deliver(Query& query, Answer answer) {
  remember(query, answer);
  auto& registry = metrics::Registry::global();
  auto type = type_name(query.rrtype);
  registry
      .counter("mxguard_dns_lookups_total", "DNS lookups by type and outcome",
               {{"type", type}, {"status", std::string(status_name(answer.status))}})
      .inc();
  registry
      .histogram("mxguard_dns_lookup_duration_seconds", "DNS lookup latency",
                 metrics::latency_buckets(), {{"type", type}})
      .observe(std::chrono::duration<double>(Clock::now() - query.started).count());
  try {
    query.callback(std::move(answer));
  } catch (const std::exception& e) {
    // The resolver thread must survive a caller's bug; the caller's own barrier owns the outcome.
    log::error("dns: callback for " + query.name + " threw: " + e.what());
  }
}

Resolver::Resolver(ResolverOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Resolver::~Resolver() = default;

void Resolver::resolve_async(std::string name, std::uint16_t rrtype, Callback callback) {
  impl_->submit(std::move(name), rrtype, std::move(callback));
}

std::optional<Answer> Resolver::cached(std::string_view name, std::uint16_t rrtype) {
  return impl_->cached(name, rrtype);
}

Answer Resolver::lookup(std::string_view name, std::uint16_t rrtype) {
  if (auto hit = impl_->cached(name, rrtype)) return *hit;
  if (impl_->on_loop_thread()) {
    throw std::logic_error("dns: blocking lookup from a resolver callback would deadlock");
  }
  // Shared, not on our stack: the resolver thread may still be inside set_value when we return.
  auto promise = std::make_shared<std::promise<Answer>>();
  auto future = promise->get_future();
  resolve_async(std::string(name), rrtype,
                [promise](Answer answer) { promise->set_value(std::move(answer)); });
  // The loop enforces the deadline; the grace period only guards against a bug there turning
  // into a hung SMTP session.
  if (future.wait_for(impl_->timeout() + std::chrono::seconds(1)) != std::future_status::ready) {
    return Answer{Status::kTimeout, {}, 0};
  }
  return future.get();
}

}  // namespace mxguard::common::dns
