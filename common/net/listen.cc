// Listening sockets of our Asio servers (see listen.h).
#include "common/net/listen.h"

#include <sys/stat.h>

#include <filesystem>

namespace mxguard::common::net {
namespace asio = boost::asio;

std::unique_ptr<asio::local::stream_protocol::acceptor> listen_unix(asio::io_context& io,
                                                                    const std::string& path,
                                                                    unsigned mode, int backlog) {
  std::error_code ignored;
  // A stale socket from a previous run would make bind fail.
  if (std::filesystem::is_socket(path, ignored)) std::filesystem::remove(path, ignored);
  auto acc = std::make_unique<asio::local::stream_protocol::acceptor>(io);
  acc->open();
  acc->bind(asio::local::stream_protocol::endpoint(path));
  acc->listen(backlog);
  ::chmod(path.c_str(), mode);
  return acc;
}

std::unique_ptr<asio::ip::tcp::acceptor> listen_tcp(asio::io_context& io, const SocketSpec& spec,
                                                    int backlog) {
  asio::ip::tcp::endpoint ep(asio::ip::make_address(spec.host),
                             static_cast<unsigned short>(spec.port));
  auto acc = std::make_unique<asio::ip::tcp::acceptor>(io);
  acc->open(ep.protocol());
  acc->set_option(asio::ip::tcp::acceptor::reuse_address(true));
  acc->set_option(asio::ip::tcp::no_delay(true));
  acc->bind(ep);
  acc->listen(backlog);
  return acc;
}

namespace detail {

bool accept_warning_due() {
  static std::atomic<std::chrono::steady_clock::rep> last{0};
  auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  auto seen = last.load();
  auto every = std::chrono::steady_clock::duration(std::chrono::seconds(10)).count();
  return (seen == 0 || now - seen >= every) && last.compare_exchange_strong(seen, now);
}

}  // namespace detail
}  // namespace mxguard::common::net
