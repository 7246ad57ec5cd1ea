// Postfix policy-delegation protocol codec (SMTPD_POLICY_README): a request is "name=value"
// lines ended by an empty line; the reply is "action=…" and an empty line. Incremental and
// bounded: the parser never holds more than the request-size limit, and rejects anything that
// is not the protocol (NUL bytes, lines without '=', bad names, oversized lines) with a reason.
// Must never interpret attribute values; that is the checks' job.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxguard::common::policy {

struct Limits {
  std::size_t max_line = 4096;          // one attribute line, without the newline
  std::size_t max_request = 32 * 1024;  // all lines of one request
  std::size_t max_attributes = 128;
};

// The attributes of one request, flat: their text in one buffer and a small table of where each
// name and value is, in arrival order. A request is some 25 short attributes read once or twice
// each, so a linear search beats a map, and two allocations replace some fifty (this is every
// policy request's path).
class Request {
 public:
  // The value of an attribute, or empty when absent (Postfix sends empty values too).
  std::string_view get(std::string_view name) const;
  bool has(std::string_view name) const;
  // Sets an attribute (replacing the value of one already there). Neither view may point into
  // this Request.
  void set(std::string_view name, std::string_view value);
  std::size_t size() const { return entries_.size(); }

  // Frequently used attributes, named as Postfix names them.
  std::string_view queue_id() const { return get("queue_id"); }
  std::string_view protocol_state() const { return get("protocol_state"); }
  std::string_view client_address() const { return get("client_address"); }
  std::string_view sender() const { return get("sender"); }
  std::string_view recipient() const { return get("recipient"); }
  std::string_view instance() const { return get("instance"); }

 private:
  struct Entry {
    std::uint32_t name, name_size, value, value_size;  // offsets and sizes in text_
  };
  const Entry* find(std::string_view name) const;
  std::string_view name_of(const Entry& e) const { return {text_.data() + e.name, e.name_size}; }
  std::string_view value_of(const Entry& e) const { return {text_.data() + e.value, e.value_size}; }

  std::string text_;
  std::vector<Entry> entries_;
};

class Parser {
 public:
  enum class Status { kNeedMore, kComplete, kError };
  explicit Parser(Limits limits = {}) : limits_(limits) {}

  // Consumes bytes from `data` up to the end of one request, an error, or the end of data.
  // Sets `consumed` to the number of bytes used; on kComplete, take() yields the request and
  // the caller feeds the rest (pipelined requests) again.
  Status feed(std::string_view data, std::size_t& consumed);
  Request take();
  const std::string& error() const { return error_; }
  // True when no byte of a new request has been seen (the connection is idle between requests).
  bool idle() const { return line_.empty() && request_.size() == 0 && total_ == 0; }

 private:
  Status finish_line();

  Limits limits_;
  std::string line_;
  std::size_t total_ = 0;
  Request request_;
  std::string error_;
};

// "action=<action>\n\n"; newlines in the action are replaced so a reply is always one line.
std::string format_reply(std::string_view action);

}  // namespace mxguard::common::policy
