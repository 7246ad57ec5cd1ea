// Implementation of Url::parse (see url.h). Must never log or echo a password.
#include "common/redis/url.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace mxguard::common::redis {
namespace {

[[noreturn]] void fail(std::string_view text, const std::string& reason) {
  // The password may be in text; show only the scheme and what follows the last '@'.
  std::string shown(text);
  if (auto at = shown.rfind('@'); at != std::string::npos) {
    auto scheme_end = shown.find("://");
    shown = shown.substr(0, scheme_end == std::string::npos ? 0 : scheme_end + 3) + "***" +
            shown.substr(at);
  }
  // ...and in query parameters (password=, sentinel-password=).
  for (auto pos = shown.find("password="); pos != std::string::npos;
       pos = shown.find("password=", pos + 1)) {
    auto value = pos + 9;
    auto end = std::min(shown.find('&', value), shown.size());
    shown.replace(value, end - value, "***");
  }
  throw std::invalid_argument("invalid redis url '" + shown + "': " + reason);
}

int parse_int(std::string_view text, std::string_view digits, int min, int max, const char* what) {
  int value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || value < min ||
      value > max) {
    fail(text, std::string(what) + " must be a number from " + std::to_string(min) + " to " +
                   std::to_string(max) + ", got '" + std::string(digits) + "'");
  }
  return value;
}

// Percent-decoding, so that passwords may contain '@', ':' or '/' (as %40, %3A, %2F).
std::string decode(std::string_view text, std::string_view part) {
  std::string out;
  for (std::size_t i = 0; i < part.size(); ++i) {
    if (part[i] != '%') {
      out += part[i];
      continue;
    }
    int value = 0;
    if (i + 2 >= part.size() ||
        std::from_chars(part.data() + i + 1, part.data() + i + 3, value, 16).ptr !=
            part.data() + i + 3) {
      fail(text, "bad percent-escape");
    }
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

// "user:password" before the '@' of an authority; the user may be empty, the password not.
void parse_userinfo(std::string_view text, std::string_view userinfo, Url& url) {
  auto colon = userinfo.find(':');
  if (colon == std::string_view::npos) {
    fail(text, "user without password (use user:password@)");
  }
  url.user = decode(text, userinfo.substr(0, colon));
  url.password = decode(text, userinfo.substr(colon + 1));
  if (url.password.empty()) {
    fail(text, "empty password");
  }
}

// host[:port], host an IPv6 literal in [brackets] or a name/IPv4 address.
Url::Endpoint parse_endpoint(std::string_view text, std::string_view authority, int default_port) {
  Url::Endpoint endpoint{.host = "", .port = default_port};
  std::string_view port;
  if (authority.starts_with('[')) {  // IPv6 literal
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      fail(text, "unterminated [ipv6] host");
    }
    endpoint.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) {
      fail(text, "garbage after ]");
    }
    if (!after.empty()) {
      port = after.substr(1);
    }
    if (!after.empty() && port.empty()) {
      fail(text, "empty port");
    }
  } else {
    auto colon = authority.find(':');
    endpoint.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) {
        fail(text, "empty port");
      }
    }
  }
  if (endpoint.host.empty()) {
    fail(text, "missing host");
  }
  if (!port.empty()) {
    endpoint.port = parse_int(text, port, 1, 65535, "port");
  }
  return endpoint;
}

// Calls on_pair(key, value) for each key=value of a query string.
template <typename OnPair>
void parse_query(std::string_view text, std::string_view query, OnPair on_pair) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    auto eq = pair.find('=');
    if (eq == std::string_view::npos) {
      fail(text, "query parameter without '='");
    }
    on_pair(pair.substr(0, eq), pair.substr(eq + 1));
  }
}

Url parse_tcp(std::string_view text, std::string_view rest) {
  Url url;
  if (rest.find_first_of("?#") != std::string_view::npos) {
    fail(text, "unexpected query");
  }
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos && slash + 1 < rest.size()) {
    url.db = parse_int(text, rest.substr(slash + 1), 0, 1'000'000, "db");
  }
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    parse_userinfo(text, authority.substr(0, at), url);
    authority = authority.substr(at + 1);
  }
  Url::Endpoint endpoint = parse_endpoint(text, authority, 6379);
  url.host = endpoint.host;
  url.port = endpoint.port;
  return url;
}

// sentinel://[[user]:password@]host[:port][,host[:port]...]/master-name[/db][?query]
Url parse_sentinel(std::string_view text, std::string_view rest) {
  Url url;
  url.transport = Url::Transport::kSentinel;
  if (rest.find('#') != std::string_view::npos) {
    fail(text, "unexpected fragment");
  }
  auto question = rest.find('?');
  std::string_view query =
      question == std::string_view::npos ? std::string_view() : rest.substr(question + 1);
  rest = rest.substr(0, question);
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash + 1 >= rest.size()) {
    fail(text, "missing master name (sentinel://host:port,host:port/master-name)");
  }
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = rest.substr(slash + 1);
  auto db_slash = path.find('/');
  url.master_name = decode(text, path.substr(0, db_slash));
  if (url.master_name.empty()) {
    fail(text, "missing master name");
  }
  if (db_slash != std::string_view::npos && db_slash + 1 < path.size()) {
    url.db = parse_int(text, path.substr(db_slash + 1), 0, 1'000'000, "db");
  }
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    parse_userinfo(text, authority.substr(0, at), url);
    authority = authority.substr(at + 1);
  }
  while (true) {
    // A comma inside [ipv6] brackets cannot occur, so the first comma ends an endpoint.
    auto comma = authority.find(',');
    url.sentinels.push_back(parse_endpoint(text, authority.substr(0, comma), 26379));
    if (comma == std::string_view::npos) {
      break;
    }
    authority = authority.substr(comma + 1);
  }
  if (url.sentinels.size() > 16) {
    fail(text, "more than 16 sentinels");
  }
  parse_query(text, query, [&](std::string_view key, std::string_view value) {
    if (key == "sentinel-password") {
      url.sentinel_password = decode(text, value);
    } else if (key == "sentinel-user") {
      url.sentinel_user = decode(text, value);
    } else {
      fail(text, "unknown parameter '" + std::string(key) +
                     "' (expected sentinel-password, sentinel-user)");
    }
  });
  if (!url.sentinel_user.empty() && url.sentinel_password.empty()) {
    fail(text, "sentinel-user without sentinel-password");
  }
  url.host.clear();
  url.port = 0;
  return url;
}

Url parse_unix(std::string_view text, std::string_view rest) {
  Url url;
  url.transport = Url::Transport::kUnix;
  auto question = rest.find('?');
  url.path = std::string(rest.substr(0, question));
  if (!url.path.starts_with('/')) {
    fail(text, "socket path must be absolute (unix:///path)");
  }
  if (url.path.size() < 2) {
    fail(text, "missing socket path");
  }
  if (question == std::string_view::npos) {
    return url;
  }
  parse_query(text, rest.substr(question + 1), [&](std::string_view key, std::string_view value) {
    if (key == "db") {
      url.db = parse_int(text, value, 0, 1'000'000, "db");
    } else if (key == "password") {
      url.password = decode(text, value);
    } else if (key == "user") {
      url.user = decode(text, value);
    } else {
      fail(text, "unknown parameter '" + std::string(key) + "' (expected db, password, user)");
    }
  });
  if (!url.user.empty() && url.password.empty()) {
    fail(text, "user without password");
  }
  return url;
}

}  // namespace

Url Url::parse(std::string_view text) {
  if (text.starts_with("redis://")) {
    return parse_tcp(text, text.substr(8));
  }
  if (text.starts_with("unix://")) {
    return parse_unix(text, text.substr(7));
  }
  if (text.starts_with("sentinel://")) {
    return parse_sentinel(text, text.substr(11));
  }
  if (text.starts_with("rediss://")) {
    fail(text,
         "TLS is not supported (hiredis 0.14); reach a remote Redis through a local tunnel "
         "(stunnel, spiped) or a private network, see docs/redis.md");
  }
  fail(text,
       "expected redis://host:port/db, unix:///path?db=N or sentinel://host:port,.../master-name");
}

Url Url::with_master(std::string master_host, int master_port) const {
  Url master = *this;
  if (transport == Transport::kSentinel) {
    master.transport = Transport::kTcp;
    master.host = std::move(master_host);
    master.port = master_port;
    master.sentinels.clear();
    master.sentinel_user.clear();
    master.sentinel_password.clear();
  }
  return master;
}

namespace {

std::string bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

std::string Url::redacted() const {
  std::string db_text = std::to_string(db);
  if (transport == Transport::kSentinel) {
    std::string out = "sentinel://";
    if (!password.empty()) {
      out += user + ":***@";
    }
    for (std::size_t i = 0; i < sentinels.size(); ++i) {
      out +=
          (i ? "," : "") + bracketed(sentinels[i].host) + ":" + std::to_string(sentinels[i].port);
    }
    out += "/" + master_name + "/" + db_text;
    if (!sentinel_password.empty()) {
      out += "?sentinel-password=***";
    }
    return out;
  }
  if (transport == Transport::kUnix) {
    std::string out = "unix://" + path + "?db=" + db_text;
    if (!user.empty()) {
      out += "&user=" + user;
    }
    if (!password.empty()) {
      out += "&password=***";
    }
    return out;
  }
  std::string out = "redis://";
  if (!password.empty()) {
    out += user + ":***@";
  }
  out += bracketed(host);
  return out + ":" + std::to_string(port) + "/" + db_text;
}

}  // namespace mxguard::common::redis
