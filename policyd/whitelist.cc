// Implementation of the postgrey-format whitelists (see whitelist.h).
#include "policyd/whitelist.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace mxguard::policyd {
namespace {

bool all_digits_and_dots(std::string_view s, int dots) {
  int seen = 0;
  for (char c : s) {
    if (c == '.')
      ++seen;
    else if (!std::isdigit(static_cast<unsigned char>(c)))
      return false;
  }
  return seen == dots;
}

std::regex compile(std::string_view pattern, const std::string& where) {
  try {
    return std::regex(std::string(pattern),
                      std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
  } catch (const std::regex_error& ex) {
    throw std::runtime_error(where + ": bad regular expression /" + std::string(pattern) +
                             "/: " + ex.what());
  }
}

bool is_regex_entry(std::string_view e) {
  return e.size() >= 3 && e.front() == '/' && e.back() == '/';
}

template <class List>
WhitelistLoad load_file(List& list, const WhitelistFile& file) {
  const std::string& path = file.path;
  std::ifstream in(path);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) && !ec) {
      if (path.size() > 6 && path.ends_with(".local")) return WhitelistLoad::kMissingLocal;
      if (file.is_default) return WhitelistLoad::kMissingDefault;
      throw std::runtime_error(path + ": cannot read whitelist: no such file");
    }
    throw std::runtime_error(path + ": cannot read whitelist");
  }
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string_view e = clean_whitelist_line(line);
    if (e.empty()) continue;
    list.add_entry(e, path + ":" + std::to_string(n));
  }
  return WhitelistLoad::kLoaded;
}

}  // namespace

void parse_value(std::string_view text, WhitelistFile& out) {
  out = WhitelistFile(std::string(text));
}

std::string format_value(const WhitelistFile& v) { return v.path; }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view clean_whitelist_line(std::string_view line) {
  if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) {
    line.remove_prefix(1);
  }
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
    line.remove_suffix(1);
  }
  return line;
}

WhitelistLoad ClientWhitelist::load(const WhitelistFile& file) { return load_file(*this, file); }

void ClientWhitelist::add_entry(std::string_view e, const std::string& where) {
  if (is_regex_entry(e)) {
    regexes_.push_back(compile(e.substr(1, e.size() - 2), where));
    return;
  }
  if (auto net = common::net::Cidr::try_parse(e)) {
    networks_.push_back(*net);
    return;
  }
  // Partial IPv4: "a.b.c" is the /24, "a.b" the /16. "192.2." has the dots but no third
  // number: a bad line with its place, like any other (found by fuzz_whitelist; it escaped
  // as an std::invalid_argument without file:line).
  for (auto [dots, suffix] : {std::pair{2, ".0/24"}, std::pair{1, ".0.0/16"}}) {
    if (!all_digits_and_dots(e, dots)) continue;
    auto net = common::net::Cidr::try_parse(std::string(e) + suffix);
    if (!net) throw std::runtime_error(where + ": not an IPv4 prefix: " + std::string(e));
    networks_.push_back(*net);
    return;
  }
  for (char c : e) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == '/' || c == ':') {
      throw std::runtime_error(
          where + ": doesn't look like a host name, address or /regex/: " + std::string(e));
    }
  }
  domains_.insert(to_lower(e));
}

bool ClientWhitelist::matches(std::string_view client_name,
                              const common::net::IpAddress& addr) const {
  for (const auto& n : networks_) {
    if (n.contains(addr)) return true;
  }
  if (client_name.empty()) return false;
  std::string name = to_lower(client_name);
  // The name itself, then each parent domain: "a.b.example.com" → "b.example.com" → …
  for (std::string_view rest = name;;) {
    if (domains_.count(std::string(rest))) return true;
    auto dot = rest.find('.');
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  for (const auto& re : regexes_) {
    if (std::regex_search(name, re)) return true;
  }
  return false;
}

WhitelistLoad RecipientWhitelist::load(const WhitelistFile& file) { return load_file(*this, file); }

void RecipientWhitelist::add_entry(std::string_view e, const std::string& where) {
  if (is_regex_entry(e)) {
    regexes_.push_back(compile(e.substr(1, e.size() - 2), where));
    return;
  }
  for (char c : e) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      throw std::runtime_error(where + ": doesn't look like an address: " + std::string(e));
    }
  }
  std::string entry = to_lower(e);
  auto at = entry.find('@');
  if (at == std::string::npos) {
    domains_.insert(entry);
  } else if (at + 1 == entry.size()) {
    locals_.insert(entry.substr(0, at));
  } else {
    addresses_.insert(entry);
  }
}

bool RecipientWhitelist::matches(std::string_view recipient) const {
  std::string r = to_lower(recipient);
  auto at = r.rfind('@');
  if (at != std::string::npos) {
    std::string local = r.substr(0, at);
    std::string domain = r.substr(at + 1);
    // user+ext@domain matches the entry user@domain, as in postgrey.
    std::string base = local.substr(0, local.find('+'));
    if (addresses_.count(local + "@" + domain) || addresses_.count(base + "@" + domain)) {
      return true;
    }
    if (locals_.count(local) || locals_.count(base)) return true;
    for (std::string_view rest = domain;;) {
      if (domains_.count(std::string(rest))) return true;
      auto dot = rest.find('.');
      if (dot == std::string_view::npos) break;
      rest.remove_prefix(dot + 1);
    }
  }
  for (const auto& re : regexes_) {
    if (std::regex_search(r, re)) return true;
  }
  return false;
}

}  // namespace mxguard::policyd
