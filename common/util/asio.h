// The one way to include Boost.Asio here: Boost 1.74's awaitable.hpp uses std::exchange without
// including <utility>, which breaks under C++20 with GCC 12.
#pragma once

#include <boost/asio.hpp>
#include <utility>
