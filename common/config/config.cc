// Implementation of the Options-struct binder: command line via Boost.Program_options, config
// file via our own reader (Program_options' reader cannot report line numbers).
#include "common/config/config.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/util/strings.h"

namespace mxguard::common::config {
namespace po = boost::program_options;
namespace {

using util::trim;

template <class T>
void parse_integer(std::string_view text, T& out) {
  T v{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
    throw std::invalid_argument("expected a whole number, got '" + std::string(text) + "'");
  }
  out = v;
}

// Strips one pair of surrounding double quotes, so values may contain '#' and spaces.
std::string unquote(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
    return std::string(v.substr(1, v.size() - 2));
  }
  return std::string(v);
}

}  // namespace

void parse_value(std::string_view text, std::string& out) { out = std::string(text); }

void parse_value(std::string_view text, bool& out) {
  std::string t;
  for (char c : text) t.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (t == "yes" || t == "true" || t == "on" || t == "1")
    out = true;
  else if (t == "no" || t == "false" || t == "off" || t == "0")
    out = false;
  else
    throw std::invalid_argument("expected yes or no, got '" + std::string(text) + "'");
}

void parse_value(std::string_view text, int& out) { parse_integer(text, out); }
void parse_value(std::string_view text, unsigned& out) { parse_integer(text, out); }
void parse_value(std::string_view text, std::uint64_t& out) { parse_integer(text, out); }

void parse_value(std::string_view text, double& out) {
  std::string s(text);
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || s.empty() || !std::isfinite(v)) {
    throw std::invalid_argument("expected a number, got '" + s + "'");
  }
  out = v;
}

void parse_value(std::string_view text, Duration& out) { out = parse_duration(text); }
void parse_value(std::string_view text, Size& out) { out = parse_size(text); }
void parse_value(std::string_view text, std::chrono::milliseconds& out) {
  out = parse_duration(text).value;
}

std::string format_value(const std::string& v) { return v; }
std::string format_value(bool v) { return v ? "yes" : "no"; }
std::string format_value(int v) { return std::to_string(v); }
std::string format_value(unsigned v) { return std::to_string(v); }
std::string format_value(std::uint64_t v) { return std::to_string(v); }
std::string format_value(double v) {
  std::ostringstream ss;
  ss << v;
  return ss.str();
}
std::string format_value(Duration v) { return format_duration(v); }
std::string format_value(Size v) { return format_size(v); }
std::string format_value(std::chrono::milliseconds v) { return format_duration(Duration(v)); }

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

void Binder::add_entry(std::string name, std::string help, bool list, bool flag,
                       std::function<void(std::string_view)> parse,
                       std::function<std::string()> format, std::function<void()> clear) {
  if (find(name)) throw std::logic_error("option bound twice: " + name);
  entries_.push_back(Entry{std::move(name), std::move(help), list, flag, std::move(parse),
                           std::move(format), std::move(clear)});
}

const Binder::Entry* Binder::find(std::string_view name) const {
  for (const auto& e : entries_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

void apply_file(const std::string& path, Binder& binder,
                std::map<std::string, std::string>* origin) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read config file");
  std::string line;
  int lineno = 0;
  std::set<std::string> lists_seen;
  while (std::getline(in, line)) {
    ++lineno;
    std::string where = path + ":" + std::to_string(lineno);
    std::string_view view = trim(line);
    if (view.empty() || view.front() == '#') continue;
    auto eq = view.find('=');
    if (eq == std::string_view::npos) {
      throw ConfigError(where + ": expected 'name = value', got '" + std::string(view) + "'");
    }
    std::string name(trim(view.substr(0, eq)));
    std::string_view raw = trim(view.substr(eq + 1));
    // A '#' after white space starts a comment, unless the value is quoted.
    if (raw.empty() || raw.front() != '"') {
      auto hash = raw.find(" #");
      if (hash != std::string_view::npos) raw = trim(raw.substr(0, hash));
    }
    const Binder::Entry* e = binder.find(name);
    if (e == nullptr) throw ConfigError(where + ": unknown option '" + name + "'");
    try {
      if (e->list && lists_seen.insert(name).second) e->clear();
      e->parse(unquote(raw));
    } catch (const std::invalid_argument& ex) {
      throw ConfigError(where + ": " + name + ": " + ex.what());
    }
    if (origin) (*origin)[name] = where;
  }
}

Request parse(const ProgramInfo& info, Binder& binder, int argc, const char* const* argv,
              const std::function<void()>& validate) {
  po::options_description desc;
  desc.add_options()("help,h", "")("version", "")("check-config", "")("dump-config", "")(
      "config,c", po::value<std::string>(), "");
  for (const auto& e : binder.entries()) {
    if (e.flag) {
      desc.add_options()(e.name.c_str(), po::value<std::string>()->implicit_value("yes"), "");
    } else {
      desc.add_options()(e.name.c_str(), po::value<std::vector<std::string>>(), "");
    }
  }
  po::options_description all;
  all.add(desc);
  po::positional_options_description pos;
  if (!info.usage_args.empty()) {
    all.add_options()("mxguard-positional", po::value<std::vector<std::string>>(), "");
    pos.add("mxguard-positional", -1);
  }

  // A flag takes its value only as "--flag=VALUE" or as a yes/no word after it: Boost gives an
  // implicit-value option the next token whatever it is, so "--json example.org" would read
  // the domain as the flag's value. Every other token after a flag is left to the others.
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string token = argv[i];
    if (token == "--") {
      args.insert(args.end(), argv + i, argv + argc);
      break;
    }
    const Binder::Entry* e = token.rfind("--", 0) == 0 && token.find('=') == std::string::npos
                                 ? binder.find(token.substr(2))
                                 : nullptr;
    if (e != nullptr && e->flag) {
      bool value_follows = false;
      if (i + 1 < argc) {
        try {
          bool ignored = false;
          parse_value(argv[i + 1], ignored);
          value_follows = true;
        } catch (const std::invalid_argument&) {
        }
      }
      token += "=" + std::string(value_follows ? argv[++i] : "yes");
    }
    args.push_back(std::move(token));
  }

  po::parsed_options parsed(nullptr);
  try {
    parsed =
        po::command_line_parser(args)
            .options(all)
            .positional(pos)
            .style(po::command_line_style::unix_style & ~po::command_line_style::allow_guessing)
            .run();
  } catch (const po::error& ex) {
    throw ConfigError(std::string("command line: ") + ex.what());
  }

  Request req;
  std::string config_arg;
  bool config_given = false;
  for (const auto& opt : parsed.options) {
    const std::string& key = opt.string_key;
    if (key == "help")
      req.action = Request::Action::kHelp;
    else if (key == "version")
      req.action = Request::Action::kVersion;
    else if (key == "check-config")
      req.action = Request::Action::kCheckConfig;
    else if (key == "dump-config")
      req.action = Request::Action::kDumpConfig;
    else if (key == "config") {
      config_arg = opt.value.empty() ? "" : opt.value.front();
      config_given = true;
    } else if (key == "mxguard-positional") {
      req.positional.insert(req.positional.end(), opt.value.begin(), opt.value.end());
    }
  }
  if (req.action == Request::Action::kHelp || req.action == Request::Action::kVersion) {
    return req;
  }

  if (config_given) {
    req.config_file = config_arg;
  } else if (!info.default_config.empty() && std::filesystem::exists(info.default_config)) {
    req.config_file = info.default_config;
  }
  if (!req.config_file.empty()) {
    apply_file(req.config_file, binder, &req.origin);
    // Drop-ins: FILE.d/*.conf in name order, each on top of what came before (a list option
    // named in a drop-in replaces the earlier list). Packages and configuration management
    // add a file there instead of editing the conffile, so upgrades do not prompt.
    std::filesystem::path dir = req.config_file + ".d";
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) {
      std::vector<std::filesystem::path> dropins;
      for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        if (entry.path().extension() == ".conf" && entry.path().filename().string()[0] != '.') {
          dropins.push_back(entry.path());
        }
      }
      if (ec) throw ConfigError(dir.string() + ": cannot read directory: " + ec.message());
      std::sort(dropins.begin(), dropins.end());
      for (const auto& f : dropins) apply_file(f.string(), binder, &req.origin);
    }
  }

  std::set<std::string> lists_seen;
  for (const auto& opt : parsed.options) {
    const Binder::Entry* e = binder.find(opt.string_key);
    if (e == nullptr) continue;
    std::string where = "--" + e->name;
    try {
      if (e->list && lists_seen.insert(e->name).second) e->clear();
      if (opt.value.empty()) e->parse("yes");
      for (const auto& v : opt.value) e->parse(v);
    } catch (const std::invalid_argument& ex) {
      throw ConfigError("command line: " + where + ": " + ex.what());
    }
    req.origin[e->name] = where;
  }

  try {
    validate();
  } catch (const OptionError& ex) {
    auto it = req.origin.find(ex.option());
    std::string where = it != req.origin.end() ? it->second : "default of --" + ex.option();
    throw ConfigError(where + ": " + ex.option() + ": " + ex.what());
  }
  return req;
}

std::string help_text(const ProgramInfo& info, const Binder& binder) {
  std::ostringstream out;
  out << "Usage: " << info.name << " [OPTIONS]" << (info.usage_args.empty() ? "" : " ")
      << info.usage_args << "\n"
      << info.summary << "\n\n"
      << "Every option can also be set in the config file as 'name = value'";
  if (!info.default_config.empty()) out << " (default " << info.default_config << ")";
  out << ".\n\n"
      << "  -c, --config FILE     read options from FILE\n"
      << "      --check-config    validate the configuration and exit\n"
      << "      --dump-config     print the effective configuration and exit\n"
      << "      --version         print the version and exit\n"
      << "  -h, --help            print this help and exit\n\n";
  for (const auto& e : binder.entries()) {
    std::string def = e.format();
    out << "      --" << e.name << (e.flag ? "" : " VALUE") << "\n          " << e.help
        << " [default: " << (def.empty() ? "(empty)" : def) << "]\n";
  }
  return out.str();
}

std::string dump_config(const Binder& binder) {
  std::string out;
  for (const auto& e : binder.entries()) {
    out += "# " + e.help + "\n";
    std::string v = e.format();
    bool quote = v.find('#') != std::string::npos ||
                 (!v.empty() && (std::isspace(static_cast<unsigned char>(v.front())) ||
                                 std::isspace(static_cast<unsigned char>(v.back()))));
    out += e.name + " = " + (quote ? "\"" + v + "\"" : v) + "\n";
  }
  return out;
}

}  // namespace mxguard::common::config
