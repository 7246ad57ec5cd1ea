// Tag-list parsing (see tag_list.h).
#include "milters/arc/tag_list.h"

namespace mxguard::milter::arc {
namespace {

bool is_fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim_fws(std::string_view s) {
  while (!s.empty() && is_fws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_fws(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view tag_error_name(TagError e) {
  switch (e) {
    case TagError::kNone:
      return "ok";
    case TagError::kTooLong:
      return "tag-list too long";
    case TagError::kTooManyTags:
      return "too many tags";
    case TagError::kBadName:
      return "bad tag name";
    case TagError::kMissingEquals:
      return "tag without '='";
    case TagError::kDuplicate:
      return "duplicate tag";
    case TagError::kBadValue:
      return "bad character in tag value";
  }
  return "bad tag-list";
}

const std::string* TagList::get(std::string_view name) const {
  for (const auto& [n, v] : tags) {
    if (n == name) return &v;
  }
  return nullptr;
}

TagListParse parse_tag_list(std::string_view text) {
  TagListParse out;
  if (text.size() > kMaxTagListBytes) {
    out.error = TagError::kTooLong;
    return out;
  }
  TagList list;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find(';', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view spec = trim_fws(text.substr(pos, end - pos));
    pos = end + 1;
    if (spec.empty()) continue;
    if (list.tags.size() >= kMaxTags) {
      out.error = TagError::kTooManyTags;
      return out;
    }
    std::size_t eq = spec.find('=');
    if (eq == std::string_view::npos) {
      out.error = TagError::kMissingEquals;
      return out;
    }
    std::string_view name = trim_fws(spec.substr(0, eq));
    std::string_view value = trim_fws(spec.substr(eq + 1));
    if (name.empty() || !is_alpha(name.front())) {
      out.error = TagError::kBadName;
      return out;
    }
    for (char c : name) {
      if (!is_alpha(c) && !is_digit(c) && c != '_') {
        out.error = TagError::kBadName;
        return out;
      }
    }
    for (char c : value) {
      auto u = static_cast<unsigned char>(c);
      if (!is_fws(c) && (u < 0x21 || u > 0x7e)) {
        out.error = TagError::kBadValue;
        return out;
      }
    }
    if (list.get(name)) {
      out.error = TagError::kDuplicate;
      return out;
    }
    list.tags.emplace_back(std::string(name), std::string(value));
  }
  out.list = std::move(list);
  return out;
}

}  // namespace mxguard::milter::arc
