// DMARC record parsing (see record.h).
#include "milters/dmarc/record.h"

#include <strings.h>

#include <cctype>
#include <utility>

#include "common/mail/from.h"
#include "common/util/strings.h"

namespace mxguard::milter::dmarc {

using common::mail::valid_domain;
namespace {

using common::util::trim;

using mxguard::common::util::iequals;

using mxguard::common::util::lower;

std::optional<Alignment> parse_alignment(std::string_view v) {
  if (iequals(v, "r")) return Alignment::kRelaxed;
  if (iequals(v, "s")) return Alignment::kStrict;
  return std::nullopt;
}

bool parse_uint(std::string_view v, std::uint64_t max, std::uint64_t& out) {
  if (v.empty() || v.size() > 10) return false;
  std::uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  if (n > max) return false;
  out = n;
  return true;
}

// %-decoding of a mailto address; false on a bad escape.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

bool report_local_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '+' || c == '=';
}

}  // namespace

std::string ReportUri::encode() const {
  std::string out = "mailto:" + address;  // a strict address: nothing to percent-encode
  if (max_size == 0) return out;
  // The largest unit that keeps the number exact (the parser takes at most 2^32 of a unit).
  static constexpr std::pair<char, int> kUnits[] = {{'t', 40}, {'g', 30}, {'m', 20}, {'k', 10}};
  for (auto [unit, shift] : kUnits) {
    std::uint64_t size = 1ull << shift;
    if (max_size % size == 0 && max_size / size <= (1ull << 32)) {
      return out + "!" + std::to_string(max_size / size) + unit;
    }
  }
  return out + "!" + std::to_string(max_size);
}

std::optional<ReportAddress> parse_report_address(std::string_view address) {
  auto at = address.find('@');
  if (at == std::string_view::npos || address.find('@', at + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view local = address.substr(0, at), domain = address.substr(at + 1);
  if (local.empty() || local.size() > 64 || local.front() == '.' || local.back() == '.' ||
      local.find("..") != std::string_view::npos) {
    return std::nullopt;
  }
  for (char c : local) {
    if (!report_local_char(c)) return std::nullopt;
  }
  if (domain.empty() || domain.back() == '.' || domain.find('.') == std::string_view::npos) {
    return std::nullopt;
  }
  ReportAddress out{std::string(local), lower(domain)};
  if (!valid_domain(out.domain)) return std::nullopt;
  return out;
}

std::string_view policy_name(Policy p) {
  switch (p) {
    case Policy::kNone:
      return "none";
    case Policy::kQuarantine:
      return "quarantine";
    case Policy::kReject:
      return "reject";
  }
  return "none";
}

std::optional<Policy> parse_policy(std::string_view text) {
  if (iequals(text, "none")) return Policy::kNone;
  if (iequals(text, "quarantine")) return Policy::kQuarantine;
  if (iequals(text, "reject")) return Policy::kReject;
  return std::nullopt;
}

bool is_dmarc_record(std::string_view txt) {
  txt = trim(txt);
  if (txt.size() < 8 || !iequals(txt.substr(0, 1), "v")) return false;
  txt = trim(txt.substr(1));
  if (txt.empty() || txt.front() != '=') return false;
  txt = trim(txt.substr(1));
  if (txt.size() < 6 || !iequals(txt.substr(0, 6), "DMARC1")) return false;
  txt = trim(txt.substr(6));
  return txt.empty() || txt.front() == ';';
}

std::vector<ReportUri> parse_uri_list(std::string_view value) {
  std::vector<ReportUri> out;
  std::size_t start = 0;
  while (start <= value.size() && out.size() < 16) {
    auto comma = value.find(',', start);
    std::string_view item =
        trim(value.substr(start, comma == std::string_view::npos ? value.npos : comma - start));
    start = comma == std::string_view::npos ? value.size() + 1 : comma + 1;
    if (item.size() < 8 || !iequals(item.substr(0, 7), "mailto:")) continue;
    item.remove_prefix(7);
    ReportUri uri;
    auto bang = item.rfind('!');
    if (bang != std::string_view::npos) {
      std::string_view size = item.substr(bang + 1);
      item = item.substr(0, bang);
      std::uint64_t unit = 1;
      if (!size.empty()) {
        switch (std::tolower(static_cast<unsigned char>(size.back()))) {
          case 'k':
            unit = 1ull << 10;
            break;
          case 'm':
            unit = 1ull << 20;
            break;
          case 'g':
            unit = 1ull << 30;
            break;
          case 't':
            unit = 1ull << 40;
            break;
          default:
            unit = 0;
        }
        if (unit)
          size.remove_suffix(1);
        else
          unit = 1;
      }
      std::uint64_t n = 0;
      if (!parse_uint(size, 1ull << 32, n)) continue;
      uri.max_size = n * unit;
    }
    // The query part (?subject=…) is not an address.
    item = item.substr(0, item.find('?'));
    // Decoded once, here; what is stored and sent is the strict address, which holds no '%'.
    std::string decoded;
    if (!percent_decode(item, decoded)) continue;
    auto address = parse_report_address(decoded);
    if (!address) continue;
    uri.address = address->local + "@" + address->domain;
    uri.domain = address->domain;
    out.push_back(std::move(uri));
  }
  return out;
}

RecordParse parse_record(std::string_view txt) {
  RecordParse r;
  if (trim(txt).empty()) {
    r.error = "empty record";
    return r;
  }
  if (!is_dmarc_record(txt)) {
    r.error = "record does not start with v=DMARC1";
    return r;
  }
  Record rec;
  bool have_p = false, p_invalid = false, sp_invalid = false;
  bool seen_v = false;
  std::vector<std::string> seen;
  std::size_t start = 0;
  while (start <= txt.size()) {
    auto semi = txt.find(';', start);
    std::string_view item =
        trim(txt.substr(start, semi == std::string_view::npos ? txt.npos : semi - start));
    start = semi == std::string_view::npos ? txt.size() + 1 : semi + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      rec.ignored.push_back(std::string(item.substr(0, 32)));
      continue;
    }
    std::string tag = lower(trim(item.substr(0, eq)));
    std::string_view value = trim(item.substr(eq + 1));
    if (!seen_v) {
      seen_v = true;  // is_dmarc_record checked it
      continue;
    }
    bool duplicate = false;
    for (const auto& s : seen) duplicate |= s == tag;
    if (duplicate) {
      rec.ignored.push_back(tag);
      continue;  // the first occurrence counts
    }
    seen.push_back(tag);
    bool ok = true;
    if (tag == "p") {
      auto p = parse_policy(value);
      if (p) {
        rec.p = *p;
        have_p = true;
      } else {
        p_invalid = true;
      }
    } else if (tag == "sp") {
      auto p = parse_policy(value);
      if (p)
        rec.sp = p;
      else
        sp_invalid = true;
    } else if (tag == "np") {
      auto p = parse_policy(value);
      if (p)
        rec.np = p;
      else
        ok = false;
    } else if (tag == "adkim" || tag == "aspf") {
      auto a = parse_alignment(value);
      if (a)
        (tag == "adkim" ? rec.adkim : rec.aspf) = *a;
      else
        ok = false;
    } else if (tag == "pct") {
      std::uint64_t n = 0;
      if (parse_uint(value, 100, n))
        rec.pct = static_cast<int>(n);
      else
        ok = false;
    } else if (tag == "ri") {
      std::uint64_t n = 0;
      if (parse_uint(value, 0xffffffffull, n))
        rec.ri = static_cast<std::uint32_t>(n);
      else
        ok = false;
    } else if (tag == "rua" || tag == "ruf") {
      auto list = parse_uri_list(value);
      if (list.empty()) ok = false;
      (tag == "rua" ? rec.rua : rec.ruf) = std::move(list);
    } else if (tag == "fo") {
      bool valid = !value.empty();
      for (char c : value) valid &= (c == '0' || c == '1' || c == 'd' || c == 's' || c == ':');
      if (valid)
        rec.fo = std::string(value);
      else
        ok = false;
    } else if (tag == "rf") {
      ok = iequals(value, "afrf");
    } else {
      // Unknown tags are ignored (§6.3), silently: new tags are how DMARC evolves.
      continue;
    }
    if (!ok) rec.ignored.push_back(tag);
  }
  if (!have_p || p_invalid || sp_invalid) {
    // §6.6.3: with a syntactically valid rua, act as if p=none was published.
    if (!rec.rua.empty()) {
      rec.p = Policy::kNone;
      rec.sp.reset();
      rec.p_repaired = true;
    } else {
      r.error = !have_p && !p_invalid ? "no p= tag"
                : sp_invalid          ? "invalid sp= value"
                                      : "invalid p= value";
      return r;
    }
  }
  r.record = std::move(rec);
  return r;
}

}  // namespace mxguard::milter::dmarc
