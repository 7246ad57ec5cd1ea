// Implementation of Reply and of the C boundary (see reply.h and hiredis_boundary.h).
// Must never let a redisReply outlive the function that received it.
#include "common/redis/reply.h"

#include <cerrno>
#include <string>

#include "common/redis/errors.h"
#include "common/redis/hiredis_boundary.h"

namespace mxguard::common::redis {
namespace {

[[noreturn]] void wrong_type(Reply::Type want, Reply::Type got) {
  detail::throw_protocol("expected " + std::string(type_name(want)) + " reply, got " +
                         std::string(type_name(got)));
}

struct ReaderDeleter {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};

}  // namespace

Reply Reply::integer(long long value) {
  Reply r;
  r.type_ = Type::kInteger;
  r.integer_ = value;
  return r;
}

Reply Reply::string(std::string value) {
  Reply r;
  r.type_ = Type::kString;
  r.string_ = std::move(value);
  return r;
}

Reply Reply::status(std::string value) {
  Reply r;
  r.type_ = Type::kStatus;
  r.string_ = std::move(value);
  return r;
}

Reply Reply::array(std::vector<Reply> elements) {
  Reply r;
  r.type_ = Type::kArray;
  r.array_ = std::move(elements);
  return r;
}

long long Reply::as_integer() const {
  if (type_ != Type::kInteger) {
    wrong_type(Type::kInteger, type_);
  }
  return integer_;
}

const std::string& Reply::as_string() const {
  if (type_ != Type::kString && type_ != Type::kStatus) {
    wrong_type(Type::kString, type_);
  }
  return string_;
}

const std::vector<Reply>& Reply::as_array() const {
  if (type_ != Type::kArray) {
    wrong_type(Type::kArray, type_);
  }
  return array_;
}

std::optional<std::string> Reply::as_optional_string() const {
  if (type_ == Type::kNil) {
    return std::nullopt;
  }
  return as_string();
}

std::string_view type_name(Reply::Type type) {
  switch (type) {
    case Reply::Type::kNil:
      return "nil";
    case Reply::Type::kInteger:
      return "integer";
    case Reply::Type::kString:
      return "string";
    case Reply::Type::kStatus:
      return "status";
    case Reply::Type::kArray:
      return "array";
  }
  return "unknown";
}

std::vector<Reply> parse_resp(std::string_view bytes) {
  std::unique_ptr<redisReader, ReaderDeleter> reader(redisReaderCreate());
  if (!reader) {
    detail::throw_protocol("out of memory creating a RESP reader");
  }
  if (redisReaderFeed(reader.get(), bytes.data(), bytes.size()) != REDIS_OK) {
    detail::throw_protocol(reader->errstr);
  }
  std::vector<Reply> replies;
  for (;;) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader.get(), &raw) != REDIS_OK) {
      detail::throw_protocol(std::string("malformed reply: ") + reader->errstr);
    }
    if (raw == nullptr) {
      break;
    }
    detail::ReplyPtr reply(static_cast<redisReply*>(raw));
    replies.push_back(detail::to_reply(*reply));
  }
  // Unconsumed bytes in hiredis's buffer are a truncated reply.
  // ridx > 0 means an array is half read (hiredis leaves ridx at 0 after probing for more).
  if (reader->pos < reader->len || reader->ridx > 0) {
    detail::throw_protocol("incomplete reply");
  }
  return replies;
}

namespace detail {

Reply to_reply(const redisReply& reply) {
  switch (reply.type) {
    case REDIS_REPLY_NIL:
      return Reply();
    case REDIS_REPLY_INTEGER:
      return Reply::integer(reply.integer);
    case REDIS_REPLY_STRING:
      return Reply::string(std::string(reply.str, reply.len));
    case REDIS_REPLY_STATUS:
      return Reply::status(std::string(reply.str, reply.len));
    case REDIS_REPLY_ERROR:
      throw_reply(std::string(reply.str, reply.len));
    case REDIS_REPLY_ARRAY: {
      std::vector<Reply> elements;
      elements.reserve(reply.elements);
      for (std::size_t i = 0; i < reply.elements; ++i) {
        elements.push_back(to_reply(*reply.element[i]));
      }
      return Reply::array(std::move(elements));
    }
  }
  throw_protocol("unknown reply type " + std::to_string(reply.type));
}

void throw_context_error(const redisContext* c, int saved_errno, std::string_view what) {
  std::string prefix = std::string(what) + ": ";
  if (c == nullptr) {
    throw_io(prefix + "out of memory");
  }
  std::string detail_text = c->errstr;
  switch (c->err) {
    case REDIS_ERR_PROTOCOL:
    case REDIS_ERR_OOM:
      throw_protocol(prefix + detail_text);
    case REDIS_ERR_EOF:
      throw_io(prefix + "connection closed by server");
    default:
      break;
  }
  // hiredis reports a receive timeout (SO_RCVTIMEO) as an I/O error with errno EAGAIN, and a
  // connect timeout with ETIMEDOUT; only errno tells them apart from a lost connection.
  if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT ||
      saved_errno == EINPROGRESS) {
    throw_timeout(prefix + "timed out (" + detail_text + ")");
  }
  throw_io(prefix + detail_text);
}

}  // namespace detail
}  // namespace mxguard::common::redis
