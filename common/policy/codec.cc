// Implementation of the policy protocol codec (see codec.h).
#include "common/policy/codec.h"

namespace mxguard::common::policy {
namespace {

bool valid_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

}  // namespace

const Request::Entry* Request::find(std::string_view name) const {
  for (const Entry& e : entries_) {
    if (name_of(e) == name) return &e;
  }
  return nullptr;
}

std::string_view Request::get(std::string_view name) const {
  const Entry* e = find(name);
  return e ? value_of(*e) : std::string_view();
}

bool Request::has(std::string_view name) const { return find(name) != nullptr; }

void Request::set(std::string_view name, std::string_view value) {
  // A replaced value's old text stays in the buffer: only tests set an attribute twice, and
  // the parser's limits bound what a request can hold.
  if (entries_.empty()) text_.reserve(1024);
  auto at = static_cast<std::uint32_t>(text_.size());
  text_.append(name);
  text_.append(value);
  Entry fresh{at, static_cast<std::uint32_t>(name.size()),
              static_cast<std::uint32_t>(at + name.size()),
              static_cast<std::uint32_t>(value.size())};
  for (Entry& e : entries_) {
    if (name_of(e) == name) {
      e = fresh;
      return;
    }
  }
  entries_.push_back(fresh);
}

Parser::Status Parser::feed(std::string_view data, std::size_t& consumed) {
  consumed = 0;
  if (!error_.empty()) return Status::kError;
  // Works a line segment at a time (memchr), not a byte at a time: this is the hot path of
  // every policy request.
  while (consumed < data.size()) {
    std::string_view rest = data.substr(consumed);
    auto nl = rest.find('\n');
    std::string_view seg = rest.substr(0, nl);  // bytes before the newline (or all)
    std::size_t room = limits_.max_request - total_;
    if (seg.size() + (nl != std::string_view::npos ? 1 : 0) > room) {
      error_ = "request larger than " + std::to_string(limits_.max_request) + " bytes";
      return Status::kError;
    }
    if (seg.find('\0') != std::string_view::npos) {
      error_ = "NUL byte in request";
      return Status::kError;
    }
    if (line_.size() + seg.size() > limits_.max_line) {
      error_ = "line longer than " + std::to_string(limits_.max_line) + " bytes";
      return Status::kError;
    }
    line_.append(seg);
    total_ += seg.size();
    consumed += seg.size();
    if (nl == std::string_view::npos) break;
    ++consumed;
    ++total_;
    Status s = finish_line();
    if (s != Status::kNeedMore) return s;
  }
  return Status::kNeedMore;
}

Parser::Status Parser::finish_line() {
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  if (line_.empty()) {
    if (request_.size() == 0) {
      // An empty line before any attribute: Postfix never sends that.
      error_ = "empty request";
      return Status::kError;
    }
    return Status::kComplete;
  }
  auto eq = line_.find('=');
  if (eq == std::string::npos || eq == 0) {
    error_ = "not a name=value line";
    return Status::kError;
  }
  for (std::size_t i = 0; i < eq; ++i) {
    if (!valid_name_char(line_[i])) {
      error_ = "invalid attribute name";
      return Status::kError;
    }
  }
  std::string_view line(line_);
  std::string_view name = line.substr(0, eq);
  if (request_.has(name)) {
    error_ = "duplicate attribute " + std::string(name);
    return Status::kError;
  }
  if (request_.size() >= limits_.max_attributes) {
    error_ = "more than " + std::to_string(limits_.max_attributes) + " attributes";
    return Status::kError;
  }
  request_.set(name, line.substr(eq + 1));
  line_.clear();
  return Status::kNeedMore;
}

Request Parser::take() {
  Request out = std::move(request_);
  request_ = Request();
  line_.clear();
  total_ = 0;
  return out;
}

std::string format_reply(std::string_view action) {
  std::string out = "action=";
  for (char c : action) out.push_back(c == '\n' || c == '\r' || c == '\0' ? ' ' : c);
  out += "\n\n";
  return out;
}

}  // namespace mxguard::common::policy
