// clamd INSTREAM framing and reply parsing (see clamd_protocol.h).
#include "milters/av/clamd_protocol.h"

#include <cstdio>

namespace mxguard::milter::av {
namespace {

std::string_view strip_terminator(std::string_view s) {
  while (!s.empty() && (s.back() == '\0' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A signature name as clamd prints them: printable ASCII without spaces (e.g.
// "Win.Test.EICAR_HDB-1", "Heuristics.Phishing.Email.SpoofedDomain", "Foo.UNOFFICIAL").
bool valid_virus_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxVirusName) return false;
  for (unsigned char c : name) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace

std::string chunk_header(std::uint32_t length) {
  std::string out(4, '\0');
  out[0] = static_cast<char>((length >> 24) & 0xff);
  out[1] = static_cast<char>((length >> 16) & 0xff);
  out[2] = static_cast<char>((length >> 8) & 0xff);
  out[3] = static_cast<char>(length & 0xff);
  return out;
}

std::string frame_chunk(std::string_view data) {
  std::string out = chunk_header(static_cast<std::uint32_t>(data.size()));
  out.append(data);
  return out;
}

std::string escape_for_log(std::string_view text, std::size_t limit) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= limit) {
      out += "...";
      break;
    }
    if (c < 0x20 || c >= 0x7f || c == '\\') {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

ClamdReply parse_instream_reply(std::string_view reply) {
  ClamdReply r;
  std::string_view s = strip_terminator(reply);
  if (s.empty()) {
    r.detail = "empty reply";
    return r;
  }
  if (s.find('\0') != std::string_view::npos) {
    r.detail = "NUL inside reply: " + escape_for_log(s);
    return r;
  }
  constexpr std::string_view kPrefix = "stream: ";
  constexpr std::string_view kSizeLimit = "INSTREAM size limit exceeded";
  if (s.substr(0, kSizeLimit.size()) == kSizeLimit && ends_with(s, " ERROR")) {
    r.kind = ClamdReply::Kind::kSizeLimit;
    r.detail = escape_for_log(s);
    return r;
  }
  if (ends_with(s, " ERROR") || s == "ERROR") {
    r.detail = escape_for_log(s);
    return r;
  }
  if (s.substr(0, kPrefix.size()) != kPrefix) {
    r.detail = "unexpected reply: " + escape_for_log(s);
    return r;
  }
  std::string_view rest = s.substr(kPrefix.size());
  if (rest == "OK") {
    r.kind = ClamdReply::Kind::kClean;
    return r;
  }
  constexpr std::string_view kFound = " FOUND";
  if (ends_with(rest, kFound)) {
    std::string_view name = rest.substr(0, rest.size() - kFound.size());
    if (valid_virus_name(name)) {
      r.kind = ClamdReply::Kind::kInfected;
      r.virus = std::string(name);
      return r;
    }
    r.detail = "malformed virus name: " + escape_for_log(s);
    return r;
  }
  r.detail = "unexpected reply: " + escape_for_log(s);
  return r;
}

bool is_pong(std::string_view reply) { return strip_terminator(reply) == "PONG"; }

}  // namespace mxguard::milter::av
