// mxguard-policy-load: a load generator for Postfix policy servers (SMTPD_POLICY_README), used
// to compare mxguard-policyd with postgrey and friends. It behaves like a busy smtpd: N
// persistent connections, each sending one RCPT-state request and waiting for the reply before
// the next. It measures throughput, latency and the server's memory, and checks every reply.
// Must never send traffic outside 127.0.0.0/8 or a local socket: it refuses other targets.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/net/socket_spec.h"
#include "common/util/asio.h"

namespace mxguard::bench {
namespace {

namespace asio = boost::asio;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;
using common::net::SocketSpec;

struct Options {
  std::string target;
  int connections = 32;
  std::uint64_t requests = 0;  // 0: use duration_s (or the default request count)
  double duration_s = 0;
  double new_ratio = 0.5;
  std::uint64_t pool = 1000;
  std::uint64_t warmup = 0;
  bool prime = false;
  double prime_wait_s = 0;
  std::vector<int> pids;
  bool json = false;
  std::uint32_t seed = 1;
  int timeout_ms = 10000;
};

// One greylisting triplet plus the attributes that go with the client in a real request.
struct Triplet {
  std::string client_address;
  std::string client_name;
  std::string helo_name;
  std::string sender;
  std::string recipient;
};

// Builds requests. Known triplets are a fixed pool, deterministic across runs so a primed
// server recognises them; new triplets carry a per-run nonce so they are new even against a
// database left over from an earlier run.
class Workload {
 public:
  explicit Workload(const Options& opts) : opts_(opts), rng_(opts.seed), nonce_(make_nonce()) {
    pool_.reserve(opts.pool);
    for (std::uint64_t i = 0; i < opts.pool; ++i) {
      pool_.push_back(known(i));
    }
  }

  std::uint64_t pool_size() const { return pool_.size(); }

  // A request for pool triplet `index` (priming) or a random mix per --new-ratio.
  std::string request_for_pool(std::uint64_t index) { return format(pool_[index]); }
  std::string next_request() {
    if (pool_.empty() || uniform_(rng_) < opts_.new_ratio) {
      return format(fresh(next_new_++));
    }
    std::uniform_int_distribution<std::uint64_t> pick(0, pool_.size() - 1);
    return format(pool_[pick(rng_)]);
  }

 private:
  static std::string make_nonce() {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    std::ostringstream out;
    out << std::hex << ::getpid() << 'x'
        << std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
    return out.str();
  }

  static std::string dotted(std::uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
           std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
  }

  // Documentation and private ranges only; these addresses never leave the request text.
  static Triplet known(std::uint64_t i) {
    Triplet t;
    // One client per /24 so servers that key by subnet (postgrey) see distinct clients.
    t.client_address = dotted(0x0a000001u + static_cast<std::uint32_t>((i % 65536) << 8));
    t.client_name = "mx" + std::to_string(i) + ".sender" + std::to_string(i % 97) + ".example";
    t.helo_name = t.client_name;
    t.sender = "list" + std::to_string(i) + "@sender" + std::to_string(i % 97) + ".example";
    t.recipient = "user" + std::to_string(i % 500) + "@dest.example";
    return t;
  }

  Triplet fresh(std::uint64_t n) const {
    Triplet t;
    t.client_address =
        dotted(0xac100001u + static_cast<std::uint32_t>((n % 4095) << 8));  // 172.16/12
    t.client_name = "unknown";
    t.helo_name = "h" + std::to_string(n) + ".spam.example";
    t.sender = "n" + nonce_ + "-" + std::to_string(n) + "@bulk.example";
    t.recipient = "user" + std::to_string(n % 500) + "@dest.example";
    return t;
  }

  std::string queue_id() {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string id(10, '0');
    for (auto& c : id) {
      c = kHex[rng_() & 15];
    }
    return id;
  }

  // The attributes Postfix 3.x sends in the RCPT state of a plain (non-TLS, non-SASL) session.
  std::string format(const Triplet& t) {
    std::string qid = queue_id();
    std::string r;
    r.reserve(640);
    r += "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n";
    r += "client_address=" + t.client_address + "\n";
    r += "client_name=" + t.client_name + "\n";
    r += "client_port=" + std::to_string(1024 + rng_() % 60000) + "\n";
    r += "reverse_client_name=" + t.client_name + "\n";
    r += "server_address=127.0.0.1\nserver_port=25\n";
    r += "helo_name=" + t.helo_name + "\n";
    r += "sender=" + t.sender + "\n";
    r += "recipient=" + t.recipient + "\n";
    r += "recipient_count=0\n";
    r += "queue_id=" + qid + "\n";
    r += "instance=" + qid.substr(0, 4) + "." + std::to_string(++instance_) + ".0\n";
    r += "size=" + std::to_string(2000 + rng_() % 50000) + "\n";
    r += "etrn_domain=\nstress=\nsasl_method=\nsasl_username=\nsasl_sender=\n";
    r += "ccert_subject=\nccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\n";
    r += "encryption_protocol=\nencryption_cipher=\nencryption_keysize=0\n";
    r += "policy_context=\ncompatibility_level=3.6\nmail_version=3.7.11\n\n";
    return r;
  }

  const Options& opts_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  std::string nonce_;
  std::vector<Triplet> pool_;
  std::uint64_t next_new_ = 0;
  std::uint64_t instance_ = 0;
};

struct Stats {
  std::vector<std::uint32_t> latency_us;
  std::map<std::string, std::uint64_t> actions;
  std::map<std::string, std::uint64_t> errors;
  std::uint64_t error_count() const {
    std::uint64_t n = 0;
    for (const auto& [_, c] : errors) {
      n += c;
    }
    return n;
  }
};

// One stage of a run: how many requests it may issue, until when, and where they come from.
struct Phase {
  std::uint64_t limit = 0;  // 0: unlimited (deadline only)
  std::optional<Clock::time_point> deadline;
  bool from_pool = false;  // priming: each pool triplet once, in order
  Stats* stats = nullptr;  // null: not measured
  std::uint64_t issued = 0;
  Clock::time_point last_done{};

  bool take(Clock::time_point now) {
    if (limit != 0 && issued >= limit) {
      return false;
    }
    if (deadline && now >= *deadline) {
      return false;
    }
    ++issued;
    return true;
  }
};

// The action keyword that classifies a reply: "DEFER_IF_PERMIT", "PREPEND", "DUNNO", or the
// SMTP code for "450 4.7.1 …". Returns empty when the reply is not one well-formed action line.
std::string classify(std::string_view reply) {
  constexpr std::string_view kPrefix = "action=";
  if (reply.size() < kPrefix.size() + 2 || reply.substr(0, kPrefix.size()) != kPrefix) {
    return {};
  }
  if (reply.substr(reply.size() - 2) != "\n\n") {
    return {};
  }
  std::string_view action = reply.substr(kPrefix.size(), reply.size() - kPrefix.size() - 2);
  // Exactly one line, non-empty, no control characters.
  if (action.empty() || std::any_of(action.begin(), action.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 && c != '\t';
      })) {
    return {};
  }
  std::string_view word = action.substr(0, action.find_first_of(" \t"));
  std::string out(word);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

asio::generic::stream_protocol::endpoint resolve(const SocketSpec& spec) {
  if (spec.kind == SocketSpec::Kind::kUnix) {
    return asio::local::stream_protocol::endpoint(spec.path);
  }
  std::string host = spec.host == "localhost" ? "127.0.0.1" : spec.host;
  auto addr = asio::ip::make_address(host);  // literal only: no DNS for a load generator
  if (!addr.is_loopback()) {
    throw std::invalid_argument("target " + spec.to_string() + " is not a loopback address");
  }
  return asio::ip::tcp::endpoint(addr, static_cast<unsigned short>(spec.port));
}

// One smtpd-like policy client connection: strictly one request in flight, reused across
// requests, reconnected after any error.
class Client : public std::enable_shared_from_this<Client> {
 public:
  Client(asio::io_context& io, asio::generic::stream_protocol::endpoint endpoint,
         Workload& workload, const Options& opts)
      : io_(io),
        socket_(io),
        timer_(io),
        endpoint_(std::move(endpoint)),
        workload_(workload),
        opts_(opts) {}

  void start(Phase& phase) {
    phase_ = &phase;
    next();
  }

 private:
  void next() {
    auto now = Clock::now();
    if (!phase_->take(now)) {
      return;  // idle: io_context::run returns once all clients are
    }
    request_ = phase_->from_pool ? workload_.request_for_pool(phase_->issued - 1)
                                 : workload_.next_request();
    ++seq_;
    arm_timer();
    if (socket_.is_open()) {
      send();
      return;
    }
    socket_ = asio::generic::stream_protocol::socket(io_);
    socket_.async_connect(endpoint_, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) {
        return self->fail("connect", ec, true);
      }
      if (self->endpoint_.protocol().family() != AF_UNIX) {
        int one = 1;  // one small write per request; never wait for Nagle
        ::setsockopt(self->socket_.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      self->send();
    });
  }

  void arm_timer() {
    timer_.expires_after(std::chrono::milliseconds(opts_.timeout_ms));
    timer_.async_wait([self = shared_from_this(), seq = seq_](boost::system::error_code ec) {
      // The seq check ignores a timer that fired just as its request completed.
      if (!ec && seq == self->seq_) {
        self->timed_out_ = true;
        boost::system::error_code ignored;
        self->socket_.close(ignored);
      }
    });
  }

  void send() {
    started_ = Clock::now();
    buffer_.clear();
    asio::async_write(socket_, asio::buffer(request_),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (ec) {
                          return self->fail("write", ec, false);
                        }
                        self->receive();
                      });
  }

  void receive() {
    asio::async_read_until(
        socket_, asio::dynamic_buffer(buffer_), "\n\n",
        [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
          if (ec) {
            return self->fail("read", ec, false);
          }
          self->done(n);
        });
  }

  void done(std::size_t n) {
    auto end = Clock::now();
    ++seq_;  // disarms the timer for this request
    timer_.cancel();
    phase_->last_done = end;
    std::string action = classify(std::string_view(buffer_).substr(0, n));
    bool extra = buffer_.size() != n;  // bytes after the reply: the server spoke out of turn
    if (Stats* stats = phase_->stats) {
      if (action.empty() || extra) {
        ++stats->errors[action.empty() ? "malformed reply" : "unsolicited bytes"];
      } else {
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(end - started_).count();
        stats->latency_us.push_back(
            static_cast<std::uint32_t>(std::min<long long>(us, UINT32_MAX)));
        ++stats->actions[action];
      }
    }
    if (action.empty() || extra) {
      boost::system::error_code ignored;
      socket_.close(ignored);
    }
    next();
  }

  void fail(const char* what, boost::system::error_code ec, bool backoff) {
    ++seq_;
    timer_.cancel();
    phase_->last_done = Clock::now();
    if (Stats* stats = phase_->stats) {
      std::string kind = timed_out_ ? std::string("timeout") : what + (": " + ec.message());
      ++stats->errors[kind];
    }
    timed_out_ = false;
    boost::system::error_code ignored;
    socket_.close(ignored);
    if (!backoff) {
      return next();
    }
    // A refused connect fails instantly; pause so a dead server is not a busy loop.
    timer_.expires_after(std::chrono::milliseconds(100));
    timer_.async_wait([self = shared_from_this()](boost::system::error_code) { self->next(); });
  }

  asio::io_context& io_;
  asio::generic::stream_protocol::socket socket_;
  asio::steady_timer timer_;
  asio::generic::stream_protocol::endpoint endpoint_;
  Workload& workload_;
  const Options& opts_;
  Phase* phase_ = nullptr;
  std::string request_;
  std::string buffer_;
  Clock::time_point started_{};
  std::uint64_t seq_ = 0;
  bool timed_out_ = false;
};

struct Memory {
  std::uint64_t hwm_kb = 0;
  std::uint64_t rss_kb = 0;
  bool ok = true;
};

Memory read_memory(const std::vector<int>& pids) {
  Memory m;
  for (int pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    if (!in) {
      m.ok = false;
      continue;
    }
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string key;
      std::uint64_t kb = 0;
      fields >> key >> kb;
      if (key == "VmHWM:") {
        m.hwm_kb += kb;
      }
      if (key == "VmRSS:") {
        m.rss_kb += kb;
      }
    }
  }
  return m;
}

// utime+stime of the server processes in seconds, so the report can show CPU per request.
double read_cpu_s(const std::vector<int>& pids) {
  double total = 0;
  long ticks = ::sysconf(_SC_CLK_TCK);
  for (int pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto paren = stat.rfind(')');  // comm may contain spaces
    if (paren == std::string::npos) {
      continue;
    }
    std::istringstream fields(stat.substr(paren + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14) {
        utime = std::stoull(field);
      }
      if (i == 15) {
        stime = std::stoull(field);
      }
    }
    total += static_cast<double>(utime + stime) / static_cast<double>(ticks);
  }
  return total;
}

double self_cpu_s() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

std::uint32_t percentile(const std::vector<std::uint32_t>& sorted, double p) {
  if (sorted.empty()) {
    return 0;
  }
  auto rank = static_cast<std::size_t>(std::lround(p * static_cast<double>(sorted.size() - 1)));
  return sorted[std::min(rank, sorted.size() - 1)];
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<Options> parse_options(int argc, char** argv) {
  Options o;
  po::options_description desc(
      "mxguard-policy-load: drive a Postfix policy server like a busy smtpd\nOptions");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help")
    ("target", po::value(&o.target)->required(), "inet:127.0.0.1:PORT or unix:/path")
    ("connections", po::value(&o.connections)->default_value(o.connections),
     "concurrent connections, one request in flight on each")
    ("requests", po::value(&o.requests),
     "measured requests in total (default 20000 without --duration)")
    ("duration", po::value(&o.duration_s),
     "measure for S seconds (with --requests: whichever ends first)")
    ("new-ratio", po::value(&o.new_ratio)->default_value(o.new_ratio),
     "fraction of requests with a never-seen triplet; the rest reuse the known pool")
    ("pool", po::value(&o.pool)->default_value(o.pool), "size of the pool of known triplets")
    ("warmup", po::value(&o.warmup)->default_value(o.warmup),
     "unmeasured requests before measuring")
    ("prime", po::bool_switch(&o.prime), "first send every pool triplet once (unmeasured)")
    ("prime-wait", po::value(&o.prime_wait_s)->default_value(o.prime_wait_s),
     "seconds to wait after priming, e.g. the greylist delay + 1")
    ("pid", po::value(&o.pids)->composing(),
     "server pid for RSS and CPU from /proc (repeatable; summed)")
    ("timeout-ms", po::value(&o.timeout_ms)->default_value(o.timeout_ms), "per-request timeout")
    ("seed", po::value(&o.seed)->default_value(o.seed), "random seed for the request mix")
    ("json", po::bool_switch(&o.json), "print the report as one JSON object");
  // clang-format on
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return std::nullopt;
  }
  po::notify(vm);
  if (o.connections < 1) {
    throw std::invalid_argument("--connections must be at least 1");
  }
  if (o.new_ratio < 0 || o.new_ratio > 1) {
    throw std::invalid_argument("--new-ratio is 0..1");
  }
  if (o.new_ratio < 1 && o.pool == 0) {
    throw std::invalid_argument("--pool must be > 0");
  }
  if (o.timeout_ms < 1) {
    throw std::invalid_argument("--timeout-ms must be positive");
  }
  if (o.requests == 0 && o.duration_s <= 0) {
    o.requests = 20000;
  }
  return o;
}

int run(const Options& opts) {
  auto spec = SocketSpec::parse(opts.target);
  auto endpoint = resolve(spec);
  Workload workload(opts);
  asio::io_context io(1);  // single-threaded: the generator uses one core, the server the rest
  std::vector<std::shared_ptr<Client>> clients;
  clients.reserve(opts.connections);
  for (int i = 0; i < opts.connections; ++i) {
    clients.push_back(std::make_shared<Client>(io, endpoint, workload, opts));
  }
  auto run_phase = [&](Phase& phase) {
    for (auto& c : clients) {
      c->start(phase);
    }
    io.run();
    io.restart();
  };

  Stats discard;  // priming and warmup errors still matter: report them separately
  if (opts.prime) {
    Phase prime{.limit = workload.pool_size(), .from_pool = true, .stats = &discard};
    run_phase(prime);
    if (opts.prime_wait_s > 0) {
      asio::steady_timer wait(io, std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(opts.prime_wait_s)));
      wait.wait();
    }
  }
  if (opts.warmup > 0) {
    Phase warmup{.limit = opts.warmup, .stats = &discard};
    run_phase(warmup);
  }

  Stats stats;
  Phase measure{.limit = opts.requests, .stats = &stats};
  auto start = Clock::now();
  if (opts.duration_s > 0) {
    measure.deadline = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(opts.duration_s));
  }
  double server_cpu0 = read_cpu_s(opts.pids);
  double self_cpu0 = self_cpu_s();
  run_phase(measure);
  double self_cpu = self_cpu_s() - self_cpu0;
  double server_cpu = read_cpu_s(opts.pids) - server_cpu0;
  Memory mem = read_memory(opts.pids);

  double elapsed = std::chrono::duration<double>(measure.last_done - start).count();
  auto& lat = stats.latency_us;
  std::sort(lat.begin(), lat.end());
  std::uint64_t ok = lat.size();
  double rps = elapsed > 0 ? static_cast<double>(ok) / elapsed : 0;
  double mean = 0;
  for (auto v : lat) {
    mean += v;
  }
  if (ok) {
    mean /= static_cast<double>(ok);
  }

  if (opts.json) {
    std::ostringstream o;
    o.setf(std::ios::fixed);
    o.precision(1);
    o << "{\"target\":\"" << json_escape(spec.to_string())
      << "\",\"connections\":" << opts.connections << ",\"new_ratio\":" << opts.new_ratio
      << ",\"requests\":" << ok << ",\"errors\":" << stats.error_count()
      << ",\"warmup_errors\":" << discard.error_count() << ",\"elapsed_s\":" << elapsed
      << ",\"requests_per_s\":" << rps << ",\"latency_us\":{\"mean\":" << mean
      << ",\"p50\":" << percentile(lat, 0.50) << ",\"p90\":" << percentile(lat, 0.90)
      << ",\"p99\":" << percentile(lat, 0.99) << ",\"max\":" << (ok ? lat.back() : 0)
      << "},\"actions\":{";
    const char* sep = "";
    for (const auto& [a, n] : stats.actions) {
      o << sep << "\"" << json_escape(a) << "\":" << n;
      sep = ",";
    }
    o << "},\"error_kinds\":{";
    sep = "";
    for (const auto& [e, n] : stats.errors) {
      o << sep << "\"" << json_escape(e) << "\":" << n;
      sep = ",";
    }
    o.precision(3);  // CPU seconds: enough digits for microseconds per request
    o << "},\"generator_cpu_s\":" << self_cpu;
    if (!opts.pids.empty()) {
      o << ",\"server_cpu_s\":" << server_cpu << ",\"server_rss_kb\":" << mem.rss_kb
        << ",\"server_hwm_kb\":" << mem.hwm_kb
        << ",\"server_proc_ok\":" << (mem.ok ? "true" : "false");
    }
    o << "}\n";
    std::cout << o.str();
  } else {
    std::printf("target            %s, %d connections, new-ratio %.2f\n", spec.to_string().c_str(),
                opts.connections, opts.new_ratio);
    std::printf("requests          %llu ok, %llu errors in %.2f s (warmup/prime errors: %llu)\n",
                static_cast<unsigned long long>(ok),
                static_cast<unsigned long long>(stats.error_count()), elapsed,
                static_cast<unsigned long long>(discard.error_count()));
    std::printf("throughput        %.0f requests/s\n", rps);
    std::printf("latency (us)      mean %.0f  p50 %u  p90 %u  p99 %u  max %u\n", mean,
                percentile(lat, 0.50), percentile(lat, 0.90), percentile(lat, 0.99),
                ok ? lat.back() : 0);
    for (const auto& [a, n] : stats.actions) {
      std::printf("action %-16s %llu\n", a.c_str(), static_cast<unsigned long long>(n));
    }
    for (const auto& [e, n] : stats.errors) {
      std::printf("error  %-16s %llu\n", e.c_str(), static_cast<unsigned long long>(n));
    }
    std::printf("generator CPU     %.2f s (%.0f%% of one core)\n", self_cpu,
                elapsed > 0 ? 100 * self_cpu / elapsed : 0);
    if (!opts.pids.empty()) {
      std::printf("server CPU        %.2f s (%.0f us/request)\n", server_cpu,
                  ok ? 1e6 * server_cpu / static_cast<double>(ok) : 0);
      std::printf("server RSS        %llu kB now, %llu kB peak (VmHWM)%s\n",
                  static_cast<unsigned long long>(mem.rss_kb),
                  static_cast<unsigned long long>(mem.hwm_kb),
                  mem.ok ? "" : " [some pids were gone]");
    }
  }
  return stats.error_count() == 0 && ok > 0 ? 0 : 1;
}

}  // namespace
}  // namespace mxguard::bench

int main(int argc, char** argv) {
  try {
    auto opts = mxguard::bench::parse_options(argc, argv);
    if (!opts) {
      return 0;
    }
    return mxguard::bench::run(*opts);
  } catch (const std::exception& e) {
    std::cerr << "mxguard-policy-load: " << e.what() << "\n";
    return 2;
  }
}
