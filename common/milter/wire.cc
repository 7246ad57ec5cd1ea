// The milter protocol, bytes in and bytes out (see wire.h).
#include "common/milter/wire.h"

#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <libmilter/mfdef.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>

#include "common/log/log.h"

namespace mxguard::common::milter {
namespace {

// Stage slots of the macro table (libmilter's order; lookups search from the last one).
constexpr std::size_t kConnect = 0, kHelo = 1, kMail = 2, kRcpt = 3, kData = 4, kEom = 5, kEoh = 6;
// libmilter's limit on the text of one reply (smfi_setreply).
constexpr std::size_t kMaxReplyText = 980;

std::uint32_t be32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return ntohl(v);
}

void put32(std::string& out, std::uint32_t v) {
  v = htonl(v);
  out.append(reinterpret_cast<const char*>(&v), 4);
}

// The NUL-terminated strings of a packet's data; a trailing piece without its NUL is dropped.
std::vector<std::string_view> split(std::string_view data) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '\0') {
      out.push_back(data.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

// An enhanced status code "4.7.1" (RFC 3463: class.subject.detail, 1–3 digits each).
bool enhanced_code(const std::string& s) {
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  std::size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    std::size_t digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && digits < 3) {
      ++i;
      ++digits;
    }
    if (digits == 0) return false;
    if (part == 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  return i == s.size();
}

std::string_view c_str_of(const std::string& s) { return std::string_view(s.c_str()); }

}  // namespace

// The Context of a callback under our engine: macros from the table, replies and modifications
// as packets in the conversation's output, with libmilter's rules on what is allowed when.
class Conversation::WireContext : public Context {
 public:
  explicit WireContext(Conversation& c) : c_(c) {}

 protected:
  const char* symbol(const std::string& name) const override { return c_.symbol(name); }

  bool mta_set_reply(const std::string& rcode, const std::string& xcode,
                     const std::string& text) override {
    if (rcode.size() != 3 || (rcode[0] != '4' && rcode[0] != '5') ||
        !std::isdigit(static_cast<unsigned char>(rcode[1])) ||
        !std::isdigit(static_cast<unsigned char>(rcode[2])) || !enhanced_code(xcode)) {
      return false;
    }
    std::string_view t = c_str_of(text);
    if (t.find_first_of("\r\n") != std::string_view::npos || t.size() > kMaxReplyText) {
      return false;
    }
    c_.reply_ = rcode + " " + xcode + " ";
    c_.reply_.append(t);
    return true;
  }

  bool mta_add_header(const std::string& name, const std::string& value) override {
    if (!allowed(SMFIF_ADDHDRS) || c_str_of(name).empty()) return false;
    c_.put(SMFIR_ADDHEADER, header_data(-1, name, value));
    return true;
  }

  bool mta_insert_header(int index, const std::string& name, const std::string& value) override {
    if (!allowed(SMFIF_ADDHDRS) || index < 0 || c_str_of(name).empty()) return false;
    c_.put(SMFIR_INSHEADER, header_data(index, name, value));
    return true;
  }

  bool mta_change_header(const std::string& name, int index, const std::string& value) override {
    if (!allowed(SMFIF_CHGHDRS) || index < 0 || c_str_of(name).empty()) return false;
    c_.put(SMFIR_CHGHEADER, header_data(index, name, value));
    return true;
  }

  bool mta_quarantine(const std::string& reason) override {
    std::string_view r = c_str_of(reason);
    if (!allowed(SMFIF_QUARANTINE) || r.empty()) return false;
    std::string data(r);
    data.push_back('\0');
    c_.put(SMFIR_QUARANTINE, data);
    return true;
  }

  void mta_progress() override {
    c_.put(SMFIR_PROGRESS);
    if (c_.flush_) c_.flush_(c_.out_);
  }

 private:
  bool allowed(unsigned long action) const {
    return c_.at_eom_ && (c_.actions_ & action) == action;
  }
  static std::string header_data(int index, const std::string& name, const std::string& value) {
    std::string data;
    if (index >= 0) put32(data, static_cast<std::uint32_t>(index));
    data.append(c_str_of(name));
    data.push_back('\0');
    data.append(c_str_of(value));
    data.push_back('\0');
    return data;
  }

  Conversation& c_;
};

Conversation::Conversation(const MilterOptions& options, const Dispatcher::Factory& factory,
                           bool tcp, Flush flush)
    : options_(options), dispatcher_(options, factory), tcp_(tcp), flush_(std::move(flush)) {}

Conversation::~Conversation() { lost(); }

std::size_t Conversation::packet_size(std::string_view in) {
  if (in.size() < 4) return 0;
  return 4 + static_cast<std::size_t>(be32(in.data()));
}

std::size_t Conversation::feed(std::string_view in) {
  std::size_t pos = 0;
  while (!done_ && in.size() - pos >= 4) {
    std::uint32_t len = be32(in.data() + pos);
    if (len == 0 || len > kMaxPacket) {
      protocol_error("packet of " + std::to_string(len) + " bytes (at most " +
                     std::to_string(kMaxPacket) + ")");
      break;
    }
    if (in.size() - pos - 4 < len) break;
    char cmd = in[pos + 4];
    std::string_view data = in.substr(pos + 5, len - 1);
    pos += 4 + len;
    if (!command(cmd, data)) done_ = true;
  }
  return pos;
}

bool Conversation::protocol_error(std::string what) {
  error_ = std::move(what);
  done_ = true;
  return false;
}

void Conversation::put(char code, std::string_view data) {
  put32(out_, static_cast<std::uint32_t>(data.size() + 1));
  out_.push_back(code);
  out_.append(data);
}

// The answer to one step: nothing for an unanswered step (a plain continue where the MTA did
// not offer to go without it, as libmilter fakes it), else the status's reply code, and what
// that answer does to the message (answered()).
void Conversation::answer(std::optional<Status> s, unsigned long nr_bit, bool per_recipient) {
  if (!s) {
    if (nr_bit != 0 && (mta_protocol_ & nr_bit) == 0) put(SMFIR_CONTINUE);
    return;
  }
  answered(*s, per_recipient);
  switch (*s) {
    case Status::kContinue:
      put(SMFIR_CONTINUE);
      return;
    case Status::kAccept:
      put(SMFIR_ACCEPT);
      return;
    case Status::kDiscard:
      put(SMFIR_DISCARD);
      return;
    case Status::kSkip:
      put(SMFIR_SKIP);
      return;
    case Status::kReject:
    case Status::kTempfail: {
      // The reply set for it goes along if its class matches (libmilter's rule); it is used
      // once.
      char want = *s == Status::kReject ? '5' : '4';
      if (!reply_.empty() && reply_[0] == want) {
        std::string data = std::move(reply_);
        reply_.clear();
        data.push_back('\0');
        put(SMFIR_REPLYCODE, data);
      } else {
        put(*s == Status::kReject ? SMFIR_REJECT : SMFIR_TEMPFAIL);
      }
      return;
    }
  }
}

// What an answer does to the message, as libmilter's state machine has it: an accept ends it,
// and so does a reject, tempfail or discard anywhere but at RCPT (one recipient's).
void Conversation::answered(Status s, bool per_recipient) {
  if (s == Status::kAccept) {
    in_message_ = false;
  } else if (!per_recipient &&
             (s == Status::kReject || s == Status::kTempfail || s == Status::kDiscard)) {
    in_message_ = false;
  }
}

void Conversation::clear_macros(std::size_t from) {
  for (std::size_t i = from; i < macros_.size(); ++i) macros_[i].clear();
}

const char* Conversation::symbol(const std::string& name) const {
  // As libmilter: the latest stage first; "{x}" also finds "x" and "x" also finds "{x}".
  std::string one, braces;
  if (name.size() == 3 && name.front() == '{' && name.back() == '}') one = name.substr(1, 1);
  if (name.size() == 1) braces = "{" + name + "}";
  for (std::size_t i = macros_.size(); i-- > 0;) {
    for (const auto& [k, v] : macros_[i]) {
      if (k == name || (!one.empty() && k == one) || (!braces.empty() && k == braces)) {
        return v.c_str();
      }
    }
  }
  return nullptr;
}

void Conversation::macros(std::string_view data) {
  // Malformed definitions are ignored, as libmilter does: they answer nothing.
  if (data.empty()) return;
  std::size_t slot;
  switch (data[0]) {
    case SMFIC_CONNECT:
      slot = kConnect;
      break;
    case SMFIC_HELO:
      slot = kHelo;
      break;
    case SMFIC_MAIL:
      slot = kMail;
      break;
    case SMFIC_RCPT:
      slot = kRcpt;
      break;
    case SMFIC_DATA:
      slot = kData;
      break;
    case SMFIC_BODYEOB:
      slot = kEom;
      break;
    case SMFIC_EOH:
      slot = kEoh;
      break;
    default:
      return;
  }
  auto parts = split(data.substr(1));
  auto& table = macros_[slot];
  table.clear();
  for (std::size_t i = 0; i + 1 < parts.size(); i += 2) {
    table.emplace_back(std::string(parts[i]), std::string(parts[i + 1]));
  }
}

bool Conversation::optneg(std::string_view data) {
  if (data.size() < 12)
    return protocol_error("option negotiation of " + std::to_string(data.size()) + " bytes");
  std::uint32_t version = be32(data.data());
  std::uint32_t actions = be32(data.data() + 4);
  std::uint32_t protocol = be32(data.data() + 8);
  if (version < 2) return protocol_error("milter protocol version " + std::to_string(version));
  if (actions == 0) actions = SMFI_V1_ACTS;
  if (protocol == 0) protocol = SMFI_V1_PROT;
  clear_macros(0);
  Negotiation n = negotiate(options_, tcp_, actions, protocol);
  if (!n.ok) return protocol_error("the MTA does not offer the actions this filter needs");
  dispatcher_.negotiated(n);
  actions_ = n.actions;
  mta_protocol_ = protocol;
  negotiated_ = true;
  std::string reply;
  put32(reply, std::min<std::uint32_t>(version, SMFI_PROT_VERSION));
  put32(reply, static_cast<std::uint32_t>(n.actions));
  put32(reply, static_cast<std::uint32_t>(n.protocol));
  put(SMFIC_OPTNEG, reply);
  return true;
}

bool Conversation::connect(std::string_view data) {
  // hostname NUL, family, then (unless unknown) port in network order and the address NUL.
  std::size_t nul = data.find('\0');
  if (nul == std::string_view::npos || nul + 1 >= data.size()) {
    return protocol_error("malformed connect packet");
  }
  ConnectInfo info;
  info.hostname = std::string(data.substr(0, nul));
  char family = data[nul + 1];
  if (family != SMFIA_UNKNOWN) {
    std::size_t at = nul + 2;
    if (at + 2 >= data.size() || data.back() != '\0') {
      return protocol_error("malformed connect packet");
    }
    int port =
        (static_cast<unsigned char>(data[at]) << 8) | static_cast<unsigned char>(data[at + 1]);
    std::string addr(data.substr(at + 2).data());  // up to its NUL
    char text[INET6_ADDRSTRLEN] = {};
    if (family == SMFIA_INET) {
      in_addr a{};
      if (inet_aton(addr.c_str(), &a) != 1) return protocol_error("bad IPv4 address in connect");
      inet_ntop(AF_INET, &a, text, sizeof text);
      info.address = text;
      info.port = port;
    } else if (family == SMFIA_INET6) {
      in6_addr a{};
      if (inet_pton(AF_INET6, addr.c_str(), &a) != 1) {
        return protocol_error("bad IPv6 address in connect");
      }
      inet_ntop(AF_INET6, &a, text, sizeof text);
      info.address = text;
      info.port = port;
    } else if (family != SMFIA_UNIX) {
      return protocol_error("unknown address family in connect");
    }
  }
  clear_macros(kConnect + 1);
  WireContext c(*this);
  std::optional<Status> s = dispatcher_.connect(c, info);
  answer(s, SMFIP_NR_CONN);
  return true;
}

void Conversation::end_session() {
  if (!dispatcher_.has_session()) return;
  WireContext c(*this);
  if (in_message_) dispatcher_.abort(c);
  in_message_ = false;
  dispatcher_.close(c);
}

void Conversation::lost() {
  end_session();
  clear_macros(0);
}

bool Conversation::command(char cmd, std::string_view data) {
  if (!negotiated_ && cmd != SMFIC_OPTNEG) {
    return protocol_error(std::string("command '") + cmd + "' before option negotiation");
  }
  // A command that needs the session (after connect) or the message (after MAIL FROM).
  auto need = [&](bool message) {
    if (!dispatcher_.has_session()) {
      return protocol_error(std::string("command '") + cmd + "' before connect");
    }
    if (message && !in_message_) {
      return protocol_error(std::string("command '") + cmd + "' outside a message");
    }
    return true;
  };
  WireContext c(*this);
  switch (cmd) {
    case SMFIC_OPTNEG:
      if (negotiated_) return protocol_error("second option negotiation");
      return optneg(data);
    case SMFIC_MACRO:
      macros(data);
      return true;
    case SMFIC_CONNECT:
      if (dispatcher_.has_session()) return protocol_error("second connect");
      return connect(data);
    case SMFIC_HELO: {
      if (!need(false)) return false;
      auto parts = split(data);
      if (parts.empty()) return protocol_error("malformed HELO packet");
      if (in_message_) dispatcher_.abort(c);
      in_message_ = false;
      clear_macros(kHelo + 1);
      answer(dispatcher_.helo(c, parts[0]), SMFIP_NR_HELO);
      return true;
    }
    case SMFIC_MAIL: {
      if (!need(false)) return false;
      auto parts = split(data);
      if (parts.empty()) return protocol_error("malformed MAIL packet");
      if (in_message_) dispatcher_.abort(c);  // a new message without RSET
      in_message_ = true;
      clear_macros(kMail + 1);
      std::vector<std::string> args(parts.begin(), parts.end());
      auto s = dispatcher_.mail(c, args);
      answer(s, SMFIP_NR_MAIL);
      return true;
    }
    case SMFIC_RCPT: {
      if (!need(true)) return false;
      auto parts = split(data);
      if (parts.empty()) return protocol_error("malformed RCPT packet");
      clear_macros(kRcpt + 1);
      std::vector<std::string> args(parts.begin(), parts.end());
      Status s = dispatcher_.rcpt(c, args);
      answer(s, 0, /*per_recipient=*/true);
      return true;
    }
    case SMFIC_DATA:
    case SMFIC_UNKNOWN:
      // No filter has a callback for these (steps libmilter answers with continue).
      if (!need(cmd == SMFIC_DATA)) return false;
      put(SMFIR_CONTINUE);
      return true;
    case SMFIC_HEADER: {
      if (!need(true)) return false;
      // name NUL value NUL; the name not empty.
      std::size_t nul = data.find('\0');
      if (data.empty() || data.back() != '\0' || nul == 0 || nul + 1 >= data.size()) {
        return protocol_error("malformed header packet");
      }
      std::string_view name = data.substr(0, nul);
      std::string_view value = data.substr(nul + 1);
      value = value.substr(0, value.find('\0'));
      auto s = dispatcher_.header(c, name, value);
      answer(s, SMFIP_NR_HDR);
      return true;
    }
    case SMFIC_EOH: {
      if (!need(true)) return false;
      auto s = dispatcher_.eoh(c);
      answer(s, SMFIP_NR_EOH);
      return true;
    }
    case SMFIC_BODY: {
      if (!need(true)) return false;
      auto s = dispatcher_.body(c, data);
      answer(s, SMFIP_NR_BODY);
      return true;
    }
    case SMFIC_BODYEOB: {
      if (!need(true)) return false;
      if (!data.empty()) {
        // A last body chunk that comes with the end of the message.
        auto s = dispatcher_.body(c, data);
        if (s && *s != Status::kContinue && *s != Status::kSkip) {
          answer(s, 0);
          in_message_ = false;
          return true;
        }
      }
      at_eom_ = true;
      Status s = dispatcher_.eom(c);
      at_eom_ = false;
      answer(s, 0);
      in_message_ = false;
      return true;
    }
    case SMFIC_ABORT:
      // Outside a message (after its end, or before MAIL FROM) there is nothing to abort.
      if (dispatcher_.has_session() && in_message_) dispatcher_.abort(c);
      in_message_ = false;
      return true;
    case SMFIC_QUIT:
      end_session();
      clear_macros(0);
      done_ = true;
      return true;
    case SMFIC_QUIT_NC:
      // The MTA keeps the connection for another SMTP session: a new connect follows.
      end_session();
      clear_macros(0);
      return true;
    default:
      return protocol_error(std::string("unknown command 0x") +
                            "0123456789abcdef"[(static_cast<unsigned char>(cmd) >> 4) & 15] +
                            "0123456789abcdef"[static_cast<unsigned char>(cmd) & 15]);
  }
}

}  // namespace mxguard::common::milter
