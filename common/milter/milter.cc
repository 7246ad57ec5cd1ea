// The Context and the libmilter engine (see milter.h); our own engine is engine.cc.
#include "common/milter/milter.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <stdexcept>

#include "common/log/log.h"
#include "common/milter/dispatch.h"
#include "common/milter/engine.h"
#include "common/net/socket_spec.h"

namespace mxguard::common::milter {
namespace {

// libmilter calls plain C functions; this is the one process-wide milter they reach.
Milter* g_milter = nullptr;

// The Context of a libmilter callback: the smfi_* calls.
class LibmilterContext : public Context {
 public:
  explicit LibmilterContext(SMFICTX* ctx) : ctx_(ctx) {}

 protected:
  const char* symbol(const std::string& name) const override {
    return smfi_getsymval(ctx_, const_cast<char*>(name.c_str()));
  }
  bool mta_set_reply(const std::string& rcode, const std::string& xcode,
                     const std::string& text) override {
    return smfi_setreply(ctx_, const_cast<char*>(rcode.c_str()), const_cast<char*>(xcode.c_str()),
                         const_cast<char*>(text.c_str())) == MI_SUCCESS;
  }
  bool mta_add_header(const std::string& name, const std::string& value) override {
    return smfi_addheader(ctx_, const_cast<char*>(name.c_str()),
                          const_cast<char*>(value.c_str())) == MI_SUCCESS;
  }
  bool mta_insert_header(int index, const std::string& name, const std::string& value) override {
    return smfi_insheader(ctx_, index, const_cast<char*>(name.c_str()),
                          const_cast<char*>(value.c_str())) == MI_SUCCESS;
  }
  bool mta_change_header(const std::string& name, int index, const std::string& value) override {
    return smfi_chgheader(ctx_, const_cast<char*>(name.c_str()), index,
                          value.empty() ? nullptr : const_cast<char*>(value.c_str())) == MI_SUCCESS;
  }
  bool mta_quarantine(const std::string& reason) override {
    return smfi_quarantine(ctx_, const_cast<char*>(reason.c_str())) == MI_SUCCESS;
  }
  void mta_progress() override { smfi_progress(ctx_); }

 private:
  SMFICTX* ctx_;
};

Dispatcher* dispatcher(SMFICTX* ctx) { return static_cast<Dispatcher*>(smfi_getpriv(ctx)); }

// The connection's Dispatcher, made at negotiation (or at connect, for an MTA that skips it);
// owned by the libmilter context until xxfi_close.
Dispatcher* ensure_dispatcher(SMFICTX* ctx) {
  Dispatcher* d = dispatcher(ctx);
  if (d == nullptr) {
    d = new Dispatcher(g_milter->options(), g_milter->factory());
    smfi_setpriv(ctx, d);
  }
  return d;
}

sfsistat to_sfsistat(Status s) {
  switch (s) {
    case Status::kContinue:
      return SMFIS_CONTINUE;
    case Status::kAccept:
      return SMFIS_ACCEPT;
    case Status::kReject:
      return SMFIS_REJECT;
    case Status::kDiscard:
      return SMFIS_DISCARD;
    case Status::kTempfail:
      return SMFIS_TEMPFAIL;
    case Status::kSkip:
      return SMFIS_SKIP;  // the Dispatcher sends it only where the MTA offered it
  }
  return SMFIS_TEMPFAIL;
}

sfsistat to_sfsistat(std::optional<Status> s) { return s ? to_sfsistat(*s) : SMFIS_NOREPLY; }

// A callback reached without a Dispatcher (libmilter out of memory for it): the configured
// failure outcome, as any internal error.
template <class F>
sfsistat with_dispatcher(SMFICTX* ctx, F&& fn) {
  LibmilterContext c(ctx);
  Dispatcher* d = nullptr;
  try {
    d = ensure_dispatcher(ctx);
  } catch (const std::exception& ex) {
    log::error(std::string("milter: cannot start a session: ") + ex.what());
    return to_sfsistat(g_milter->options().on_internal_error);
  }
  return to_sfsistat(fn(*d, c));
}

std::vector<std::string> to_args(char** argv) {
  std::vector<std::string> out;
  for (; argv != nullptr && *argv != nullptr; ++argv) out.emplace_back(*argv);
  return out;
}

ConnectInfo connect_info(const char* hostname, _SOCK_ADDR* addr) {
  ConnectInfo info;
  info.hostname = hostname ? hostname : "";
  if (addr == nullptr) return info;
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(addr);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    info.port = ntohs(in->sin_port);
  } else if (addr->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    info.port = ntohs(in6->sin6_port);
  }
  info.address = buf;
  return info;
}

extern "C" {

sfsistat cb_negotiate(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long,
                      unsigned long, unsigned long* pf0, unsigned long* pf1, unsigned long* pf2,
                      unsigned long* pf3) {
  // libmilter offers every SMFIP_NR_* step, faking those the MTA lacks with a continue.
  Negotiation n = negotiate(g_milter->options(), g_milter->listens_on_tcp(), f0, f1);
  if (!n.ok) return SMFIS_REJECT;
  try {
    ensure_dispatcher(ctx)->negotiated(n);
  } catch (const std::exception& ex) {
    log::error(std::string("milter: cannot start a session: ") + ex.what());
    return SMFIS_REJECT;
  }
  *pf0 = n.actions;
  *pf1 = n.protocol;
  *pf2 = 0;
  *pf3 = 0;
  return SMFIS_CONTINUE;
}

sfsistat cb_connect(SMFICTX* ctx, char* hostname, _SOCK_ADDR* addr) {
  ConnectInfo info = connect_info(hostname, addr);
  return with_dispatcher(ctx, [&](Dispatcher& d, Context& c) { return d.connect(c, info); });
}

sfsistat cb_helo(SMFICTX* ctx, char* helo) {
  return with_dispatcher(ctx,
                         [&](Dispatcher& d, Context& c) { return d.helo(c, helo ? helo : ""); });
}

sfsistat cb_envfrom(SMFICTX* ctx, char** argv) {
  return with_dispatcher(ctx, [&](Dispatcher& d, Context& c) { return d.mail(c, to_args(argv)); });
}

sfsistat cb_envrcpt(SMFICTX* ctx, char** argv) {
  return with_dispatcher(ctx, [&](Dispatcher& d, Context& c) {
    return std::optional<Status>(d.rcpt(c, to_args(argv)));
  });
}

sfsistat cb_header(SMFICTX* ctx, char* name, char* value) {
  return with_dispatcher(ctx, [&](Dispatcher& d, Context& c) {
    return d.header(c, name ? name : "", value ? value : "");
  });
}

sfsistat cb_eoh(SMFICTX* ctx) {
  return with_dispatcher(ctx, [&](Dispatcher& d, Context& c) { return d.eoh(c); });
}

sfsistat cb_body(SMFICTX* ctx, unsigned char* data, size_t len) {
  return with_dispatcher(ctx, [&](Dispatcher& d, Context& c) {
    return d.body(c, std::string_view(reinterpret_cast<const char*>(data), len));
  });
}

sfsistat cb_eom(SMFICTX* ctx) {
  return with_dispatcher(
      ctx, [&](Dispatcher& d, Context& c) { return std::optional<Status>(d.eom(c)); });
}

sfsistat cb_abort(SMFICTX* ctx) {
  if (Dispatcher* d = dispatcher(ctx)) {
    LibmilterContext c(ctx);
    d->abort(c);
  }
  return SMFIS_CONTINUE;
}

sfsistat cb_close(SMFICTX* ctx) {
  Dispatcher* d = dispatcher(ctx);
  if (d == nullptr) return SMFIS_CONTINUE;
  LibmilterContext c(ctx);
  d->close(c);
  smfi_setpriv(ctx, nullptr);
  delete d;
  return SMFIS_CONTINUE;
}

}  // extern "C"

// Sets TCP_NODELAY on our inet listening socket(s): libmilter does not expose its listen fd, and
// accepted sockets inherit the option on Linux. Without it, replies to the MTA stall ~40–90 ms
// in the Nagle / delayed-ACK interplay (see DESIGN.md §9).
void set_nodelay_on_listeners() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (dirent* e = ::readdir(dir)) {
    int fd = std::atoi(e->d_name);
    if (fd <= 2 || fd == ::dirfd(dir)) continue;
    int listening = 0;
    socklen_t len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) continue;
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ::closedir(dir);
}

}  // namespace

Status parse_failure_status(std::string_view text) {
  if (text == "accept") return Status::kAccept;
  if (text == "tempfail") return Status::kTempfail;
  if (text == "reject") return Status::kReject;
  if (text == "discard") return Status::kDiscard;
  throw std::invalid_argument("expected accept, tempfail, reject or discard");
}

std::string_view status_name(Status s) {
  switch (s) {
    case Status::kContinue:
      return "continue";
    case Status::kAccept:
      return "accept";
    case Status::kReject:
      return "reject";
    case Status::kDiscard:
      return "discard";
    case Status::kTempfail:
      return "tempfail";
    case Status::kSkip:
      return "skip";
  }
  return "tempfail";
}

MilterOptions::Engine parse_engine(std::string_view text) {
  if (text == "libmilter") return MilterOptions::Engine::kLibmilter;
  if (text == "mxguard") return MilterOptions::Engine::kMxguard;
  throw std::invalid_argument("expected libmilter or mxguard");
}

std::optional<std::string> Context::macro(const std::string& name) const {
  const char* v = symbol(name);
  if (v == nullptr) {
    // Postfix sends single-letter macros bare; accept "{i}" and "i" alike.
    if (name.size() == 3 && name.front() == '{' && name.back() == '}')
      v = symbol(name.substr(1, 1));
  }
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::string Context::queue_id() const { return macro("i").value_or(""); }

void Context::set_reply(const std::string& rcode, const std::string& xcode,
                        const std::string& text) {
  // libmilter rejects '%' unless doubled and CR/LF outright; keep the reply one clean line.
  std::string clean;
  for (char c : text) {
    if (c == '\r' || c == '\n') c = ' ';
    clean.push_back(c);
    if (c == '%') clean.push_back('%');
  }
  if (!mta_set_reply(rcode, xcode, clean))
    throw std::runtime_error("setting the SMTP reply failed");
}

std::string Context::spaced(const std::string& value) const {
  return leading_space_ && !value.empty() ? " " + value : value;
}

void Context::add_header(const std::string& name, const std::string& value) {
  if (!mta_add_header(name, spaced(value))) {
    throw std::runtime_error("adding header " + name + " failed");
  }
}

void Context::insert_header(int index, const std::string& name, const std::string& value) {
  if (!mta_insert_header(index, name, spaced(value))) {
    throw std::runtime_error("inserting header " + name + " failed");
  }
}

void Context::change_header(const std::string& name, int index, const std::string& value) {
  if (!mta_change_header(name, index, spaced(value))) {
    throw std::runtime_error("changing header " + name + " failed");
  }
}

void Context::quarantine(const std::string& reason) {
  if (!mta_quarantine(reason)) throw std::runtime_error("quarantine failed");
}

void Context::progress() { mta_progress(); }

Milter::Milter(MilterOptions options, Factory factory)
    : options_(std::move(options)), factory_(std::move(factory)) {}

Milter::~Milter() {
  if (g_milter == this) g_milter = nullptr;
}

void Milter::open() {
  if (options_.engine == MilterOptions::Engine::kMxguard) {
    engine_ = std::make_unique<Engine>(options_, factory_);
    engine_->open();
    tcp_ = engine_->listens_on_tcp();
    return;
  }
  if (g_milter != nullptr && g_milter != this) {
    throw std::logic_error("only one milter per process (libmilter keeps global state)");
  }
  g_milter = this;
  auto spec = net::SocketSpec::parse(options_.listen);
  tcp_ = spec.kind != net::SocketSpec::Kind::kUnix;
  smfiDesc desc{};
  desc.xxfi_name = const_cast<char*>(options_.name.c_str());
  desc.xxfi_version = SMFI_VERSION;
  desc.xxfi_flags = options_.actions;
  desc.xxfi_connect = cb_connect;
  desc.xxfi_helo = cb_helo;
  desc.xxfi_envfrom = cb_envfrom;
  desc.xxfi_envrcpt = cb_envrcpt;
  desc.xxfi_header = cb_header;
  desc.xxfi_eoh = cb_eoh;
  desc.xxfi_body = cb_body;
  desc.xxfi_eom = cb_eom;
  desc.xxfi_abort = cb_abort;
  desc.xxfi_close = cb_close;
  desc.xxfi_negotiate = cb_negotiate;
  if (smfi_register(desc) != MI_SUCCESS) throw std::runtime_error("smfi_register failed");
  std::string conn = spec.to_libmilter();
  if (smfi_setconn(conn.data()) != MI_SUCCESS) {
    throw std::runtime_error("smfi_setconn " + conn + " failed");
  }
  smfi_settimeout(options_.timeout_seconds);
  smfi_setbacklog(options_.backlog);
  if (spec.kind == net::SocketSpec::Kind::kUnix) ::unlink(spec.path.c_str());
  if (smfi_opensocket(true) != MI_SUCCESS) {
    throw std::runtime_error("cannot listen on " + options_.listen);
  }
  if (spec.kind == net::SocketSpec::Kind::kUnix) {
    ::chmod(spec.path.c_str(), options_.socket_mode);
  } else {
    set_nodelay_on_listeners();
  }
}

void Milter::serve() {
  if (engine_) return engine_->serve();
  if (smfi_main() != MI_SUCCESS) throw std::runtime_error("smfi_main failed");
}

void Milter::stop() {
  if (engine_) return engine_->stop();
  smfi_stop();
}

}  // namespace mxguard::common::milter
