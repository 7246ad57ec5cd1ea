// Implementation of Connection (see connection.h). Must never return a raw redisReply or leave
// one unfreed: each is owned by a ReplyPtr and converted to Reply at once.
#include "common/redis/connection.h"

#include <sys/time.h>

#include <cerrno>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "common/redis/errors.h"
#include "common/redis/hiredis_boundary.h"

namespace mxguard::common::redis {
namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  // A zero timeval means "no timeout" to the kernel; never let a bad setting turn into that.
  if (ms.count() <= 0) {
    ms = std::chrono::milliseconds(1);
  }
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

struct Args {
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  explicit Args(const std::vector<std::string>& argv) {
    for (const auto& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
  }
  int argc() const { return static_cast<int>(ptrs.size()); }
};

// to_reply, except that a READONLY refusal breaks the connection: a master demoted to replica
// (failover) refuses writes, and the pool must find the new master rather than keep this
// connection (scripts report it as "... READONLY ...").
Reply convert(const redisReply& raw, Connection::Health& health) {
  try {
    return detail::to_reply(raw);
  } catch (const ReplyError& e) {
    if (std::string_view(e.what()).find("READONLY ") != std::string_view::npos) {
      health = Connection::Health::kLost;
      detail::throw_io(std::string("redis server is a read-only replica now: ") + e.what());
    }
    throw;
  }
}

}  // namespace

void Connection::ContextDeleter::operator()(redisContext* c) const { redisFree(c); }

Connection::Connection(const Url& url, const ClientOptions& options) {
  if (url.transport == Url::Transport::kSentinel) {
    throw std::invalid_argument("a sentinel:// url names no server; connect through Sentinel");
  }
  timeval connect_tv = to_timeval(options.connect_timeout);
  errno = 0;
  redisContext* raw = url.transport == Url::Transport::kUnix
                          ? redisConnectUnixWithTimeout(url.path.c_str(), connect_tv)
                          : redisConnectWithTimeout(url.host.c_str(), url.port, connect_tv);
  int saved_errno = errno;
  context_.reset(raw);
  std::string where = "connect to " + url.redacted();
  if (raw == nullptr || raw->err != 0) {
    health_ = Health::kLost;
    detail::throw_context_error(raw, saved_errno, where);
  }
  if (redisSetTimeout(raw, to_timeval(options.command_timeout)) != REDIS_OK) {
    fail(errno, "set timeout");
  }
  if (!url.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!url.user.empty()) {
      auth.push_back(url.user);
    }
    auth.push_back(url.password);
    command(auth);
  }
  if (url.db != 0) {
    command({"SELECT", std::to_string(url.db)});
  }
}

Connection::~Connection() = default;
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;

void Connection::fail(int saved_errno, const char* what) {
  health_ = Health::kLost;
  try {
    detail::throw_context_error(context_.get(), saved_errno, what);
  } catch (const TimeoutError&) {
    health_ = Health::kTimedOut;
    throw;
  }
}

Reply Connection::command(const std::vector<std::string>& argv) {
  if (broken()) {
    detail::throw_io("command on a broken connection");
  }
  if (argv.empty()) {
    throw std::invalid_argument("redis command without arguments");
  }
  Args args(argv);
  errno = 0;
  void* raw = redisCommandArgv(context_.get(), args.argc(), args.ptrs.data(), args.lens.data());
  if (raw == nullptr) {
    fail(errno, argv.front().c_str());
  }
  detail::ReplyPtr reply(static_cast<redisReply*>(raw));
  return convert(*reply, health_);
}

std::vector<Connection::Outcome> Connection::pipeline_outcomes(
    const std::vector<std::vector<std::string>>& commands) {
  if (broken()) {
    detail::throw_io("pipeline on a broken connection");
  }
  for (const auto& argv : commands) {
    if (argv.empty()) {
      throw std::invalid_argument("redis command without arguments");
    }
  }
  for (const auto& argv : commands) {
    Args args(argv);
    if (redisAppendCommandArgv(context_.get(), args.argc(), args.ptrs.data(), args.lens.data()) !=
        REDIS_OK) {
      fail(errno, "pipeline");
    }
  }
  std::vector<Outcome> outcomes(commands.size());
  for (auto& outcome : outcomes) {
    void* raw = nullptr;
    errno = 0;
    if (redisGetReply(context_.get(), &raw) != REDIS_OK || raw == nullptr) {
      fail(errno, "pipeline");
    }
    detail::ReplyPtr reply(static_cast<redisReply*>(raw));
    try {
      outcome.reply = convert(*reply, health_);
    } catch (const Error&) {
      outcome.error = std::current_exception();
    }
  }
  return outcomes;
}

std::vector<Reply> Connection::pipeline(const std::vector<std::vector<std::string>>& commands) {
  // Every reply is read before the first error is thrown, so an error reply cannot leave unread
  // replies behind to answer the next command.
  auto outcomes = pipeline_outcomes(commands);
  std::vector<Reply> replies;
  replies.reserve(outcomes.size());
  for (auto& outcome : outcomes) {
    if (outcome.error) {
      std::rethrow_exception(outcome.error);
    }
    replies.push_back(std::move(*outcome.reply));
  }
  return replies;
}

Reply Connection::eval(const Script& script, const std::vector<std::string>& keys,
                       const std::vector<std::string>& args) {
  std::vector<std::string> argv{"EVALSHA", script.sha1(), std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  try {
    return command(argv);
  } catch (const ReplyError& e) {
    if (std::string_view(e.what()).rfind("NOSCRIPT", 0) != 0) {
      throw;
    }
  }
  // Not cached on this server (restart, failover, SCRIPT FLUSH): load it and retry once.
  std::string sha = command({"SCRIPT", "LOAD", script.source()}).as_string();
  if (sha != script.sha1()) {
    detail::throw_protocol("SCRIPT LOAD of " + script.name() + " returned sha " + sha);
  }
  return command(argv);
}

}  // namespace mxguard::common::redis
