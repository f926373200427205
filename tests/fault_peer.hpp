#pragma once

// A misbehaving loopback peer with named faults, for fault-injection tests.
// Raw POSIX sockets only (the helpers of fixtures.hpp), so nothing of
// tcpactor runs on the client side and the server meets the fault as a real
// remote peer would commit it.

#include <algorithm>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fixtures.hpp"

namespace tcpactor::test::posix {

/// One blocking connection to 127.0.0.1:port that commits faults on request.
class fault_peer {
public:
  explicit fault_peer(uint16_t port) : sock_(connect_blocking(port)) {
    // nop
  }

  raw_socket& socket() noexcept { return sock_; }

  /// Sends all of `data` (no fault), or fails the test.
  void send(std::string_view data) {
    while (!data.empty()) {
      auto n = ::send(sock_.fd(), data.data(), data.size(), MSG_NOSIGNAL);
      BOOST_TEST_REQUIRE(n > 0, "send: " << strerror(errno));
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  /// Reads at most `bytes_per_tick` per `tick` until `total` bytes, EOF, an
  /// error or `timeout`: a reader slower than the writer, yet never stalled.
  pump_result slow_reader(std::size_t bytes_per_tick,
                          std::chrono::milliseconds tick, std::size_t total,
                          std::chrono::milliseconds timeout = 30s) {
    pump_result res;
    auto deadline = steady::now() + timeout;
    while (res.in.size() < total && !res.eof && res.error == 0) {
      auto want = std::min(bytes_per_tick, total - res.in.size());
      auto part = read_upto(want, deadline);
      res.in += part.in;
      res.eof = part.eof;
      res.error = part.error;
      if (part.timed_out) {
        res.timed_out = true;
        break;
      }
      std::this_thread::sleep_for(tick); // the pace is the fault itself
    }
    return res;
  }

  /// Reads exactly `n` bytes (fewer on EOF or error), then never again; the
  /// connection stays open.
  pump_result partial_reader(std::size_t n,
                             std::chrono::milliseconds timeout = 10s) {
    return read_upto(n, steady::now() + timeout);
  }

  /// Sends `chunk` over and over without ever reading, until TCP blocks the
  /// send for `stuck` (the server stopped reading too), an error or
  /// `timeout`. Returns the bytes sent.
  std::size_t stop_reading(std::string_view chunk,
                           std::chrono::milliseconds stuck = 200ms,
                           std::chrono::milliseconds timeout = 10s) {
    sock_.set_nonblocking();
    std::size_t sent = 0;
    auto deadline = steady::now() + timeout;
    while (steady::now() < deadline) {
      auto n = ::send(sock_.fd(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
        continue;
      }
      if (errno != EAGAIN && errno != EINTR)
        break;
      pollfd p{sock_.fd(), POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(stuck.count())) == 0)
        break;
    }
    return sent;
  }

  /// Sends the first `part` bytes of `message`, then closes with SO_LINGER 0:
  /// the server sees a reset in the middle of a message.
  void reset_mid_stream(std::string_view message, std::size_t part) {
    send(message.substr(0, part));
    sock_.reset();
  }

  /// Ends the write side (FIN), then reads until EOF, an error or `timeout`.
  pump_result half_close(std::chrono::milliseconds timeout = 10s) {
    ::shutdown(sock_.fd(), SHUT_WR);
    return read_to_end(sock_, timeout);
  }

  /// Sends a TLS record header announcing a 512-byte ClientHello plus its
  /// first byte, then nothing: the server waits for the rest forever.
  void stall_handshake() {
    static constexpr char prefix[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
    send({prefix, sizeof(prefix)});
  }

  /// Sends `n` bytes that are neither TLS (the first is 0x00) nor text.
  void send_garbage(std::size_t n) { send(pattern(0, n)); }

private:
  // Unlike `pump`, never reads past `n`: the bytes left unread are the point.
  pump_result read_upto(std::size_t n, steady::time_point deadline) {
    pump_result res;
    std::vector<char> buf(64 * 1024);
    while (res.in.size() < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - steady::now());
      pollfd p{sock_.fd(), POLLIN, 0};
      if (left.count() <= 0 ||
          ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
        res.timed_out = true;
        return res;
      }
      auto want = std::min(buf.size(), n - res.in.size());
      auto got = ::recv(sock_.fd(), buf.data(), want, MSG_DONTWAIT);
      if (got > 0) {
        res.in.append(buf.data(), static_cast<std::size_t>(got));
      } else if (got == 0) {
        res.eof = true;
        return res;
      } else if (errno != EAGAIN && errno != EINTR) {
        res.error = errno;
        return res;
      }
    }
    return res;
  }

  raw_socket sock_;
};

/// Opens `count` connections to 127.0.0.1:port that never send or read
/// (raising RLIMIT_NOFILE for both ends, which live in this process), or
/// fails the test. `rcvbuf` > 0 shrinks their receive buffers, so the kernel
/// absorbs little of what the server writes to them.
inline std::vector<raw_socket>
open_idle(uint16_t port, std::size_t count, int rcvbuf = 0,
          std::chrono::milliseconds timeout = 20s) {
  auto want = static_cast<rlim_t>(2 * count + 256);
  auto limit = raise_fd_limit(want);
  BOOST_TEST_REQUIRE(limit >= want, "RLIMIT_NOFILE is " << limit);
  std::vector<raw_socket> socks;
  for (std::size_t i = 0; i < count; ++i) {
    socks.push_back(start_connect(port, rcvbuf));
    BOOST_TEST_REQUIRE(static_cast<bool>(socks.back()),
                       "connect #" << i << ": " << strerror(errno));
  }
  // A non-blocking connect is done once the socket turns writable.
  auto deadline = steady::now() + timeout;
  std::vector<bool> done(count, false);
  std::size_t pending = count;
  while (pending > 0) {
    std::vector<pollfd> fds;
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < count; ++i)
      if (!done[i]) {
        fds.push_back(pollfd{socks[i].fd(), POLLOUT, 0});
        idx.push_back(i);
      }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - steady::now());
    BOOST_TEST_REQUIRE(left.count() > 0, pending << " connects unfinished");
    ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0)
        continue;
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fds[k].fd, SOL_SOCKET, SO_ERROR, &err, &len);
      BOOST_TEST_REQUIRE(err == 0,
                         "connect #" << idx[k] << ": " << strerror(err));
      done[idx[k]] = true;
      --pending;
    }
  }
  return socks;
}

} // namespace tcpactor::test::posix
