// Fuzzes our milter engine's protocol side (common/milter/wire.h): arbitrary bytes from an
// "MTA", fed at a fuzzer-chosen split, go through a Conversation whose session uses every
// Context call (macros, replies, each modification, progress) and throws now and then. Must
// never crash or read out of bounds; the output must be whole packets, never larger than the
// limit; feeding in two pieces must give the same output as at once; after done() nothing more
// is read.
#include <libmilter/mfapi.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "common/log/log.h"
#include "common/milter/wire.h"

using namespace mxguard::common::milter;

namespace {

class BusySession : public Session {
 public:
  Status on_connect(Context& c, const ConnectInfo& info) override {
    return pick(c, info.hostname.size() + info.address.size());
  }
  Status on_helo(Context& c, std::string_view helo) override { return pick(c, helo.size()); }
  Status on_mail_from(Context& c, const std::vector<std::string>& args) override {
    return pick(c, args.size() + args[0].size());
  }
  Status on_rcpt(Context& c, const std::vector<std::string>& args) override {
    return pick(c, args[0].size());
  }
  Status on_header(Context& c, std::string_view name, std::string_view value) override {
    return pick(c, name.size() * 7 + value.size());
  }
  Status on_body(Context& c, std::string_view chunk) override { return pick(c, chunk.size()); }
  Status on_eom(Context& c) override {
    c.progress();
    c.add_header("X-Fuzz", c.macro("i").value_or("none"));
    c.insert_header(0, "X-First", "1");
    c.change_header("Subject", 1, "");
    c.quarantine("fuzz");
    return pick(c, 3);
  }

 private:
  Status pick(Context& c, std::size_t n) {
    (void)c.macro("{client_addr}");
    switch (n % 9) {
      case 0:
        throw std::runtime_error("fuzz failure");
      case 1:
        c.set_reply("550", "5.7.1", "fuzz % reject");
        return Status::kReject;
      case 2:
        return Status::kTempfail;
      case 3:
        return Status::kSkip;
      case 4:
        return Status::kAccept;
      case 5:
        return Status::kDiscard;
      default:
        return Status::kContinue;
    }
  }
};

struct Run {
  std::string out;
  bool done = false;
};

Run run(std::string_view data, std::size_t split, bool tcp) {
  MilterOptions o;
  o.actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE;
  Dispatcher::Factory factory = [] { return std::make_unique<BusySession>(); };
  Run r;
  Conversation conv(o, factory, tcp, [&](std::string& out) {
    r.out += out;
    out.clear();
  });
  std::string buffered;
  for (std::string_view piece : {data.substr(0, split), data.substr(split)}) {
    if (conv.done()) break;
    buffered.append(piece);
    std::size_t used = conv.feed(buffered);
    if (used > buffered.size()) std::abort();
    buffered.erase(0, used);
    r.out += conv.output();
    conv.output().clear();
  }
  r.done = conv.done();
  conv.lost();
  return r;
}

void check_packets(const std::string& out) {
  std::size_t pos = 0;
  while (pos < out.size()) {
    if (out.size() - pos < 5) std::abort();
    std::uint32_t len;
    std::memcpy(&len, out.data() + pos, 4);
    len = __builtin_bswap32(len);
    if (len == 0 || len > kMaxPacket || out.size() - pos - 4 < len) std::abort();
    pos += 4 + len;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    mxguard::common::log::set_level(mxguard::common::log::Level::kFatal);
    return true;
  }();
  (void)quiet;
  if (size < 2) return 0;
  std::size_t split = data[0] % size;
  bool tcp = (data[1] & 1) != 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  Run whole = run(input, input.size(), tcp);
  Run pieces = run(input, split % (input.size() + 1), tcp);
  check_packets(whole.out);
  if (whole.out != pieces.out || whole.done != pieces.done) std::abort();
  return 0;
}
