// The DKIM tag-list syntax (RFC 6376 §3.2) that ARC-Seal and ARC-Message-Signature reuse
// (RFC 8617 §4.1), with limits: a header longer than kMaxTagListBytes or with more than
// kMaxTags tags is refused before anything is copied. Must never throw on bad input (an error
// value says what is wrong) and never keep a view into text it did not receive.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mxguard::milter::arc {

inline constexpr std::size_t kMaxTagListBytes = 16384;
inline constexpr std::size_t kMaxTags = 64;

enum class TagError {
  kNone,
  kTooLong,      // more than kMaxTagListBytes
  kTooManyTags,  // more than kMaxTags
  kBadName,      // not ALPHA *(ALPHA / DIGIT / "_")
  kMissingEquals,
  kDuplicate,  // a tag name twice (§3.2: the whole list is invalid)
  kBadValue,   // a character outside %x21-3A / %x3C-7E and folding white space
};
std::string_view tag_error_name(TagError e);

// Tag names keep their case (they are case-sensitive); values have folding white space at
// both ends removed, inner white space kept (b=, bh= and h= strip it where they need to).
struct TagList {
  std::vector<std::pair<std::string, std::string>> tags;
  const std::string* get(std::string_view name) const;
};

struct TagListParse {
  std::optional<TagList> list;
  TagError error = TagError::kNone;
};

// Empty elements (";;", a trailing ";") are tolerated, as DKIM verifiers do.
TagListParse parse_tag_list(std::string_view text);

}  // namespace mxguard::milter::arc
