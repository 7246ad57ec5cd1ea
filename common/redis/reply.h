// A Redis reply as a plain C++ value, converted once from hiredis's redisReply at the C
// boundary so that no caller ever holds (or frees) a redisReply. Error replies never become a
// Reply: they are thrown as ReplyError during conversion.
// Must never expose hiredis types.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxguard::common::redis {

class Reply {
 public:
  enum class Type { kNil, kInteger, kString, kStatus, kArray };

  Reply() = default;  // nil
  static Reply integer(long long value);
  static Reply string(std::string value);
  static Reply status(std::string value);
  static Reply array(std::vector<Reply> elements);

  Type type() const { return type_; }
  bool is_nil() const { return type_ == Type::kNil; }
  bool is_integer() const { return type_ == Type::kInteger; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_status() const { return type_ == Type::kStatus; }
  bool is_array() const { return type_ == Type::kArray; }

  // The accessors throw ProtocolError when the reply has another type: the server answered
  // something the caller's command cannot produce.
  long long as_integer() const;
  // A bulk string or a status ("OK", "PONG"); binary safe.
  const std::string& as_string() const;
  const std::vector<Reply>& as_array() const;
  // nil -> nullopt, string -> value (e.g. GET on a missing key).
  std::optional<std::string> as_optional_string() const;

  bool operator==(const Reply& other) const = default;

 private:
  Type type_ = Type::kNil;
  long long integer_ = 0;
  std::string string_;
  std::vector<Reply> array_;
};

std::string_view type_name(Reply::Type type);

// Parses complete RESP2 replies from raw protocol bytes with hiredis's reader. The same
// conversion serves every command; exposed so the conversion can be tested without a server.
// Throws ReplyError for an error reply (also nested), ProtocolError for malformed or
// incomplete input.
std::vector<Reply> parse_resp(std::string_view bytes);

}  // namespace mxguard::common::redis
