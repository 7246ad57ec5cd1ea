// Serves the metrics registry over HTTP (GET /metrics, Prometheus text) and the daemon's health
// (GET /healthz: 200 "ok", or 503 with one line per failing check) on --metrics-listen.
// Runs on its own thread with its own io_context, so a slow scraper never touches mail
// traffic. Must never serve anything but the registry and the health checks, and never block
// the daemon's shutdown for longer than one health check takes (each bounded by its timeout).
#pragma once

#include <memory>
#include <string>

#include "common/metrics/health.h"
#include "common/metrics/metrics.h"

namespace mxguard::common::metrics {

class HttpServer {
 public:
  // Binds immediately (so it can happen as root); throws std::runtime_error on failure.
  // Without `health`, /healthz answers 200 (nothing to check); with it, `health` must outlive
  // the server.
  HttpServer(const std::string& listen_spec, Registry& registry, const Health* health = nullptr);
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
