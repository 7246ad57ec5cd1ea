// Fuzzes the DKIM Verifier (libopendkim behind milters/dkim/verifier.cc) with whole messages:
// header fields up to the first empty line (folding kept), then the body in uneven chunks.
// Key lookups return fixed records (RSA for selector "rsa", Ed25519 for "ed", a revoked and a
// malformed one), so no DNS is needed. Never crash; every result must be one of RFC 8601's and
// the A-R header we build from it must parse again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/authres/authres.h"
#include "milters/dkim/library.h"
#include "milters/dkim/verifier.h"

namespace dk = mxguard::milter::dkim;

namespace {
// RFC 8463's example keys (football.example.com).
const char* kEd = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const char* kRsa =
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6"
    "wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5Qj"
    "vHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";

dk::KeyLookupResult lookup(const std::string& name) {
  using K = dk::KeyLookupResult::Kind;
  if (name.rfind("brisbane.", 0) == 0 || name.rfind("ed.", 0) == 0) return {K::kFound, kEd, "ok"};
  if (name.rfind("test.", 0) == 0 || name.rfind("rsa.", 0) == 0) return {K::kFound, kRsa, "ok"};
  if (name.rfind("revoked.", 0) == 0) return {K::kFound, "v=DKIM1; p=", "ok"};
  if (name.rfind("bad.", 0) == 0) return {K::kFound, "v=DKIM1; k=rsa; p=%%%", "ok"};
  if (name.rfind("slow.", 0) == 0) return {K::kTempError, "", "timeout"};
  return {K::kNotFound, "", "nxdomain"};
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static dk::Library lib{dk::LibraryOptions{}};
  std::string_view in(reinterpret_cast<const char*>(data), size);
  dk::Verifier v(lib, lookup, {}, "FUZZ");
  std::size_t pos = 0;
  std::string field;
  while (pos < in.size()) {
    std::size_t eol = in.find('\n', pos);
    if (eol == std::string_view::npos) eol = in.size();
    std::string_view line = in.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if ((line[0] == ' ' || line[0] == '\t') && !field.empty()) {
      field += "\r\n";
      field += line;
      continue;
    }
    if (!field.empty()) v.header(field);
    field = line;
  }
  if (!field.empty()) v.header(field);
  v.end_of_headers();
  std::size_t chunk = 1;
  while (pos < in.size()) {
    std::size_t n = std::min(chunk, in.size() - pos);
    v.body(in.substr(pos, n));
    pos += n;
    chunk = chunk * 3 + 1;  // uneven chunks, as the MTA sends them
  }
  auto results = v.finish();
  for (const auto& r : results) {
    if (r.result != "pass" && r.result != "fail" && r.result != "neutral" &&
        r.result != "temperror" && r.result != "permerror") {
      std::abort();
    }
  }
  auto header = dk::authentication_results("mx.example.org", results);
  auto parsed = mxguard::common::authres::parse(header);
  if (!parsed || parsed->results.size() != std::max<std::size_t>(results.size(), 1)) std::abort();
  return 0;
}
