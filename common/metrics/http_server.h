// Serves the metrics registry over HTTP (GET /metrics, Prometheus text) on --metrics-listen.
// Runs on its own thread with its own io_context, so a slow scraper never touches mail
// traffic. Must never serve anything but the registry, and never block the daemon's shutdown.
#pragma once

#include <memory>
#include <string>

#include "common/metrics/metrics.h"

namespace mxguard::common::metrics {

class HttpServer {
 public:
  // Binds immediately (so it can happen as root); throws std::runtime_error on failure.
  HttpServer(const std::string& listen_spec, Registry& registry);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void start();      // starts the serving thread
  void stop();       // idempotent
  int port() const;  // bound TCP port (useful with port 0)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mxguard::common::metrics
