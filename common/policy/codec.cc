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
  while (consumed < data.size()) {
    char c = data[consumed++];
    ++total_;
    if (total_ > limits_.max_request) {
      error_ = "request larger than " + std::to_string(limits_.max_request) + " bytes";
      return Status::kError;
    }
    if (c == '\n') {
      Status s = finish_line();
      if (s != Status::kNeedMore) return s;
      continue;
    }
    if (c == '\0') {
      error_ = "NUL byte in request";
      return Status::kError;
    }
    if (line_.size() >= limits_.max_line) {
      error_ = "line longer than " + std::to_string(limits_.max_line) + " bytes";
      return Status::kError;
    }
    line_.push_back(c);
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
