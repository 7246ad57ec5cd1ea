// CPU per message for ARC verification next to DKIM verification (Google Benchmark, one
// thread, no DNS: keys come from memory, as a warm resolver cache would hand them over).
// The message is the one tests/bench/dkim_compare.sh sends (five headers, 4 KiB body), signed
// once with RSA-2048 by mxguard-dkim's Signer (DKIM) and sealed 1 and 3 times with RSA-2048
// by milters/arc (ARC). Run: build/tests/bench/mxguard-arc-bench (see README.md).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>
#include <string>
#include <vector>

#include "milters/arc/chain.h"
#include "milters/arc/sealer.h"
#include "milters/dkim/arc_keys.h"
#include "milters/dkim/keys.h"
#include "milters/dkim/library.h"
#include "milters/dkim/signer.h"
#include "milters/dkim/verifier.h"

namespace arc = mxguard::milter::arc;
namespace dk = mxguard::milter::dkim;

namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Fixture {
  dk::PrivateKey key;
  std::string body;
  Headers plain;
  std::string dkim_sig;
  Headers arc1, arc3;  // with 1 and 3 ARC sets on top
  dk::Library lib{dk::LibraryOptions{}};

  Fixture() {
    EVP_PKEY* k = EVP_RSA_gen(2048);
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    key = dk::parse_private_key(std::string(data, static_cast<std::size_t>(len)), "bench");
    BIO_free(bio);
    EVP_PKEY_free(k);
    for (int i = 0; body.size() < 4096; ++i) {
      body += "Line " + std::to_string(i) + " of the benchmark message, some words to hash.\r\n";
    }
    plain = {{"From", " Alice <alice@example.test>"},
             {"To", " bob@example.net"},
             {"Subject", " benchmark"},
             {"Date", " Mon, 07 Dec 2026 10:00:00 +0000"},
             {"Message-ID", " <bench@example.test>"}};
    auto shared = std::make_shared<const dk::PrivateKey>(key);
    dk::Signer signer(lib, {{"example.test", "rsa", "bench", shared}}, "BENCH");
    for (const auto& [n, v] : plain) signer.header(dk::header_field(n, v));
    signer.end_of_headers();
    signer.body(body);
    dkim_sig = " " + signer.finish().front();
    arc1 = seal(plain, 1);
    arc3 = seal(plain, 3);
  }

  Headers seal(Headers h, int hops) {
    arc::PkeyPtr k = arc::private_key_from_pem(key.pem);
    for (int i = 0; i < hops; ++i) {
      arc::Message m;
      for (const auto& [n, v] : h) m.header(n, v);
      m.end_of_headers(true);
      m.body(body);
      m.end_of_body();
      arc::ChainResult chain = arc::validate_chain(m, fetcher());
      arc::SealRequest req;
      req.domain = "example.test";
      req.selector = "rsa";
      req.key = k.get();
      req.authserv_id = "mx" + std::to_string(i) + ".example.test";
      req.results = "spf=pass smtp.mailfrom=example.test";
      req.timestamp = 1700000000;
      auto o = arc::seal(m, chain, req);
      h.insert(h.begin(), {"ARC-Authentication-Results", o.set->auth_results});
      h.insert(h.begin(), {"ARC-Message-Signature", o.set->message_signature});
      h.insert(h.begin(), {"ARC-Seal", o.set->seal});
    }
    return h;
  }

  dk::KeyLookupResult lookup(const std::string&) const {
    return {dk::KeyLookupResult::Kind::kFound, key.public_record, "ok"};
  }
  arc::KeyFetcher fetcher() const {
    return dk::arc_key_fetcher([this](const std::string& n) { return lookup(n); });
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void BM_DkimVerifyRsa2048(benchmark::State& state) {
  Fixture& f = fixture();
  dk::KeyLookup lookup = [&f](const std::string& n) { return f.lookup(n); };
  for (auto _ : state) {
    dk::Verifier v(f.lib, lookup, {}, "BENCH");
    v.header(dk::header_field("DKIM-Signature", f.dkim_sig));
    for (const auto& [n, val] : f.plain) v.header(dk::header_field(n, val));
    v.end_of_headers();
    v.body(f.body);
    auto r = v.finish();
    if (r.empty() || r.front().result != "pass") state.SkipWithError("DKIM did not pass");
  }
}
BENCHMARK(BM_DkimVerifyRsa2048)->Unit(benchmark::kMicrosecond);

void verify_arc(benchmark::State& state, const Headers& h) {
  Fixture& f = fixture();
  arc::KeyFetcher keys = f.fetcher();
  for (auto _ : state) {
    arc::Message m;
    for (const auto& [n, v] : h) m.header(n, v);
    m.end_of_headers(false);
    m.body(f.body);
    m.end_of_body();
    if (arc::validate_chain(m, keys).result != arc::Cv::kPass) {
      state.SkipWithError("ARC did not pass");
    }
  }
}

void BM_ArcVerifyRsa2048OneSet(benchmark::State& state) { verify_arc(state, fixture().arc1); }
BENCHMARK(BM_ArcVerifyRsa2048OneSet)->Unit(benchmark::kMicrosecond);

void BM_ArcVerifyRsa2048ThreeSets(benchmark::State& state) { verify_arc(state, fixture().arc3); }
BENCHMARK(BM_ArcVerifyRsa2048ThreeSets)->Unit(benchmark::kMicrosecond);

void BM_ArcVerifyNoChain(benchmark::State& state) {
  Fixture& f = fixture();
  arc::KeyFetcher keys = f.fetcher();
  for (auto _ : state) {
    arc::Message m;
    for (const auto& [n, v] : f.plain) m.header(n, v);
    m.end_of_headers(false);
    m.body(f.body);
    m.end_of_body();
    benchmark::DoNotOptimize(arc::validate_chain(m, keys));
  }
}
BENCHMARK(BM_ArcVerifyNoChain)->Unit(benchmark::kMicrosecond);

void BM_ArcSealRsa2048(benchmark::State& state) {
  Fixture& f = fixture();
  for (auto _ : state) benchmark::DoNotOptimize(f.seal(f.plain, 1));
}
BENCHMARK(BM_ArcSealRsa2048)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
