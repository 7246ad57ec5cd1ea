// clamd connections, INSTREAM scans and the server pool (see clamd_client.h).
#include "milters/av/clamd_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log/log.h"
#include "common/metrics/metrics.h"

namespace mxguard::milter::av {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

// Waits for `events` on fd until the deadline; throws kTimeout when it passes.
void wait_for(int fd, short events, Clock::time_point deadline, const char* what) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      throw ClamdError(ClamdError::Kind::kTimeout, std::string("timeout ") + what);
    }
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
    if (rc > 0) return;  // readiness or an error condition: the next call reports it
    if (rc < 0 && errno != EINTR) {
      throw ClamdError(ClamdError::Kind::kIo, errno_text("poll", errno));
    }
  }
}

common::metrics::Gauge& up_gauge(const std::string& server) {
  return common::metrics::Registry::global().gauge(
      "mxguard_av_clamd_up", "1 while a clamd server is considered up", {{"server", server}});
}

}  // namespace

std::string_view error_kind_name(ClamdError::Kind k) {
  switch (k) {
    case ClamdError::Kind::kConnect:
      return "connect";
    case ClamdError::Kind::kTimeout:
      return "timeout";
    case ClamdError::Kind::kIo:
      return "io";
    case ClamdError::Kind::kProtocol:
      return "protocol";
    case ClamdError::Kind::kSizeLimit:
      return "size_limit";
  }
  return "io";
}

ClamdConnection::ClamdConnection(const common::net::SocketSpec& spec,
                                 std::chrono::milliseconds connect_timeout) {
  auto deadline = Clock::now() + connect_timeout;
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_UNIX;
  if (spec.kind == common::net::SocketSpec::Kind::kUnix) {
    auto* un = reinterpret_cast<sockaddr_un*>(&addr);
    if (spec.path.size() >= sizeof un->sun_path) {
      throw ClamdError(ClamdError::Kind::kConnect, "socket path too long: " + spec.path);
    }
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, spec.path.c_str(), spec.path.size() + 1);
    len = sizeof(sockaddr_un);
  } else {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = spec.kind == common::net::SocketSpec::Kind::kInet6 ? AF_INET6 : AF_UNSPEC;
    addrinfo* res = nullptr;
    std::string port = std::to_string(spec.port);
    if (int rc = ::getaddrinfo(spec.host.c_str(), port.c_str(), &hints, &res); rc != 0 || !res) {
      throw ClamdError(ClamdError::Kind::kConnect, spec.to_string() + ": " + ::gai_strerror(rc));
    }
    std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
    len = res->ai_addrlen;
    family = res->ai_family;
    ::freeaddrinfo(res);
  }
  // A non-blocking connect on a unix socket fails with EAGAIN when clamd's backlog is full
  // (it never goes "in progress"): connect those blocking, bounded by SO_SNDTIMEO, which
  // Linux applies to unix stream connects.
  bool unix_socket = family == AF_UNIX;
  fd_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | (unix_socket ? 0 : SOCK_NONBLOCK), 0);
  if (fd_ < 0) throw ClamdError(ClamdError::Kind::kConnect, errno_text("socket", errno));
  if (unix_socket) {
    timeval tv{static_cast<time_t>(connect_timeout.count() / 1000),
               static_cast<suseconds_t>(connect_timeout.count() % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  } else {
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), len);
  if (unix_socket) {
    int err = errno;
    if (rc != 0) {
      ::close(fd_);
      fd_ = -1;
      throw ClamdError(ClamdError::Kind::kConnect,
                       errno_text("connect " + spec.to_string(), err == EAGAIN ? ETIMEDOUT : err));
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    return;
  }
  if (rc < 0 && errno != EINPROGRESS && errno != EAGAIN) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw ClamdError(ClamdError::Kind::kConnect, errno_text("connect " + spec.to_string(), err));
  }
  if (rc < 0) {
    try {
      wait_for(fd_, POLLOUT, deadline, ("connecting to " + spec.to_string()).c_str());
    } catch (const ClamdError& ex) {
      ::close(fd_);
      fd_ = -1;
      throw ClamdError(ClamdError::Kind::kConnect, ex.what());
    }
    int err = 0;
    socklen_t elen = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) {
      ::close(fd_);
      fd_ = -1;
      throw ClamdError(ClamdError::Kind::kConnect, errno_text("connect " + spec.to_string(), err));
    }
  }
}

ClamdConnection::~ClamdConnection() {
  if (fd_ >= 0) ::close(fd_);
}

void ClamdConnection::send_all(std::string_view data, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      wait_for(fd_, POLLOUT, deadline, "sending to clamd");
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    throw ClamdError(ClamdError::Kind::kIo, errno_text("send", errno));
  }
}

std::string ClamdConnection::read_reply(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string out;
  char buf[512];
  while (out.size() < kMaxReplyBytes) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      if (auto nul = out.find('\0'); nul != std::string::npos) {
        out.resize(nul);
        return out;
      }
      continue;
    }
    if (n == 0) {
      if (out.empty()) throw ClamdError(ClamdError::Kind::kIo, "clamd closed without a reply");
      return out;  // no NUL; the parser judges what we got
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait_for(fd_, POLLIN, deadline, "waiting for clamd's reply");
      continue;
    }
    if (errno == EINTR) continue;
    throw ClamdError(ClamdError::Kind::kIo, errno_text("recv", errno));
  }
  throw ClamdError(ClamdError::Kind::kProtocol, "reply longer than 4096 bytes");
}

InstreamScan::InstreamScan(std::unique_ptr<ClamdConnection> conn, std::size_t chunk_size,
                           std::chrono::milliseconds timeout)
    : conn_(std::move(conn)), chunk_size_(std::max<std::size_t>(chunk_size, 1)), timeout_(timeout) {
  buffer_.reserve(chunk_size_ + 4);
  conn_->send_all(kInstreamCommand, timeout_);
}

void InstreamScan::write(std::string_view data) {
  while (!data.empty()) {
    if (buffer_.empty()) buffer_ = chunk_header(0);  // placeholder, filled in flush()
    std::size_t take = std::min(data.size(), chunk_size_ + 4 - buffer_.size());
    buffer_.append(data.substr(0, take));
    data.remove_prefix(take);
    if (buffer_.size() == chunk_size_ + 4) flush();
  }
}

void InstreamScan::flush() {
  if (buffer_.size() <= 4) return;
  std::string head = chunk_header(static_cast<std::uint32_t>(buffer_.size() - 4));
  buffer_.replace(0, 4, head);
  try {
    conn_->send_all(buffer_, timeout_);
  } catch (const ClamdError& ex) {
    fail_after_send_error(ex);
  }
  bytes_ += buffer_.size() - 4;
  buffer_.clear();
}

void InstreamScan::fail_after_send_error(const ClamdError& ex) {
  if (ex.kind() == ClamdError::Kind::kIo) {
    try {
      ClamdReply r = parse_instream_reply(conn_->read_reply(std::chrono::milliseconds(200)));
      if (r.kind == ClamdReply::Kind::kSizeLimit) {
        throw ClamdError(ClamdError::Kind::kSizeLimit, "clamd: " + r.detail);
      }
      if (r.kind == ClamdReply::Kind::kError) {
        throw ClamdError(ClamdError::Kind::kProtocol, "clamd: " + r.detail);
      }
    } catch (const ClamdError& inner) {
      if (inner.kind() == ClamdError::Kind::kProtocol ||
          inner.kind() == ClamdError::Kind::kSizeLimit) {
        throw;
      }
    }
  }
  throw ex;
}

ClamdReply InstreamScan::finish() {
  flush();
  try {
    conn_->send_all(kStreamTerminator, timeout_);
  } catch (const ClamdError& ex) {
    fail_after_send_error(ex);
  }
  return parse_instream_reply(conn_->read_reply(timeout_));
}

ClamdPool::ClamdPool(PoolOptions options) : options_(std::move(options)) {
  for (const auto& spec : options_.servers) {
    servers_.push_back(Server{spec, spec.to_string()});
    up_gauge(servers_.back().name).set(1);
  }
}

ClamdPool::~ClamdPool() { stop_health_checks(); }

void ClamdPool::mark_down(Server& s, const std::string& why) {
  s.backoff = s.up ? options_.min_backoff : std::min(s.backoff * 2, options_.max_backoff);
  s.retry_at = Clock::now() + s.backoff;
  s.why_down = why;
  if (s.up) {
    common::log::warning("clamd " + s.name + " is down: " + why);
    up_gauge(s.name).set(0);
  }
  s.up = false;
}

void ClamdPool::mark_up(Server& s) {
  if (!s.up) {
    common::log::info("clamd " + s.name + " is up again");
    up_gauge(s.name).set(1);
  }
  s.up = true;
  s.backoff = std::chrono::milliseconds(0);
}

ClamdPool::Started ClamdPool::start_scan() {
  // Up servers in order first, then down ones (their state may be stale): never give up
  // while one configured server might answer.
  std::vector<std::size_t> order;
  {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (servers_[i].up) order.push_back(i);
    }
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (!servers_[i].up) order.push_back(i);
    }
  }
  std::string errors;
  for (std::size_t i : order) {
    const auto& spec = options_.servers[i];
    try {
      auto conn = std::make_unique<ClamdConnection>(spec, options_.connect_timeout);
      auto scan = std::make_unique<InstreamScan>(std::move(conn), options_.chunk_size,
                                                 options_.scan_timeout);
      {
        std::lock_guard lock(mutex_);
        mark_up(servers_[i]);
      }
      return {std::move(scan), spec.to_string()};
    } catch (const ClamdError& ex) {
      std::lock_guard lock(mutex_);
      mark_down(servers_[i], ex.what());
      if (!errors.empty()) errors += "; ";
      errors += ex.what();
    }
  }
  throw ClamdError(ClamdError::Kind::kConnect, "no clamd reachable: " + errors);
}

void ClamdPool::report_failure(const std::string& server) {
  std::lock_guard lock(mutex_);
  for (auto& s : servers_) {
    if (s.name == server) mark_down(s, "scan failed");
  }
  cv_.notify_all();
}

bool ClamdPool::ping(const common::net::SocketSpec& spec) const {
  try {
    ClamdConnection c(spec, options_.connect_timeout);
    c.send_all(kPingCommand, options_.connect_timeout);
    return is_pong(c.read_reply(options_.connect_timeout));
  } catch (const ClamdError&) {
    return false;
  }
}

bool ClamdPool::is_up(const std::string& server) const {
  std::lock_guard lock(mutex_);
  for (const auto& s : servers_) {
    if (s.name == server) return s.up;
  }
  return false;
}

std::string ClamdPool::all_down() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& s : servers_) {
    if (s.up) return "";
    out += (out.empty() ? "every clamd is down: " : "; ") + s.name + " (" + s.why_down + ")";
  }
  return out;
}

void ClamdPool::start_health_checks() {
  std::lock_guard lock(mutex_);
  if (health_.joinable()) return;
  stopping_ = false;
  health_ = std::thread([this] { health_loop(); });
}

void ClamdPool::stop_health_checks() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (health_.joinable()) health_.join();
}

void ClamdPool::health_loop() {
  auto next_round = Clock::now();
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto now = Clock::now();
    std::vector<std::size_t> due;
    bool round = now >= next_round;
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (round || (!servers_[i].up && now >= servers_[i].retry_at)) due.push_back(i);
    }
    if (round) next_round = now + options_.health_interval;
    lock.unlock();
    std::vector<std::pair<std::size_t, bool>> results;
    results.reserve(due.size());
    for (std::size_t i : due) results.emplace_back(i, ping(options_.servers[i]));
    lock.lock();
    for (auto [i, ok] : results) {
      if (ok) {
        mark_up(servers_[i]);
      } else if (servers_[i].up || Clock::now() >= servers_[i].retry_at) {
        mark_down(servers_[i], "no PONG to zPING");
      }
    }
    auto wake = next_round;
    for (const auto& s : servers_) {
      if (!s.up) wake = std::min(wake, s.retry_at);
    }
    cv_.wait_until(lock, std::max(wake, Clock::now() + std::chrono::milliseconds(50)),
                   [this] { return stopping_; });
  }
}

}  // namespace mxguard::milter::av
