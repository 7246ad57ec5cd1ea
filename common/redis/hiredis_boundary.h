// Internal to common/redis: the one place that touches hiredis's C types. The RAII owner of
// redisReply (Connection owns the redisContext), the redisReply -> Reply conversion, and the
// mapping of a context's error state to our typed exceptions. Must never be included outside
// common/redis (it would leak redisReply to callers).
#pragma once

#include <hiredis/hiredis.h>

#include <memory>
#include <string_view>

#include "common/redis/reply.h"

namespace mxguard::common::redis::detail {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// Converts a reply tree; throws ReplyError for an error reply anywhere in it.
Reply to_reply(const redisReply& reply);

// Throws the typed error for a context whose err is set (or nullptr: out of memory).
// saved_errno is errno right after the failing call; EAGAIN/ETIMEDOUT mean a timeout.
[[noreturn]] void throw_context_error(const redisContext* c, int saved_errno,
                                      std::string_view what);

}  // namespace mxguard::common::redis::detail
