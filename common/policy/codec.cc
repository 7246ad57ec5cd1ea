// Implementation of the policy protocol codec (see codec.h).
#include "common/policy/codec.h"

namespace mxguard::common::policy {
namespace {

bool valid_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

}  // namespace

std::string_view Request::get(std::string_view name) const {
  auto it = attrs_.find(name);
  return it == attrs_.end() ? std::string_view() : std::string_view(it->second);
}

bool Request::has(std::string_view name) const { return attrs_.find(name) != attrs_.end(); }

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
  std::string name = line_.substr(0, eq);
  if (request_.has(name)) {
    error_ = "duplicate attribute " + name;
    return Status::kError;
  }
  if (request_.size() >= limits_.max_attributes) {
    error_ = "more than " + std::to_string(limits_.max_attributes) + " attributes";
    return Status::kError;
  }
  request_.set(std::move(name), line_.substr(eq + 1));
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
