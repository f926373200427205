#include "tcpactor/errors.hpp"

#include <ostream>

#include <caf/actor_system_config.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace tcpactor {

std::string to_string(errc x) {
  switch (x) {
    case errc::invalid_config:
      return "invalid_config";
    case errc::resolve_failed:
      return "resolve_failed";
    case errc::connect_failed:
      return "connect_failed";
    case errc::connect_timeout:
      return "connect_timeout";
    case errc::bind_failed:
      return "bind_failed";
    case errc::peer_closed:
      return "peer_closed";
    case errc::connection_reset:
      return "connection_reset";
    case errc::read_timeout:
      return "read_timeout";
    case errc::write_timeout:
      return "write_timeout";
    case errc::write_failed:
      return "write_failed";
    case errc::io_failed:
      return "io_failed";
    case errc::write_overflow:
      return "write_overflow";
    case errc::handler_failed:
      return "handler_failed";
    case errc::rejected:
      return "rejected";
    case errc::closed:
      return "closed";
    case errc::shutdown:
      return "shutdown";
    case errc::tls_handshake_failed:
      return "tls_handshake_failed";
    case errc::tls_handshake_timeout:
      return "tls_handshake_timeout";
    case errc::tls_truncated:
      return "tls_truncated";
    case errc::tls_failed:
      return "tls_failed";
    case errc::too_many_connections:
      return "too_many_connections";
    case errc::first_byte_timeout:
      return "first_byte_timeout";
    case errc::idle_timeout:
      return "idle_timeout";
    case errc::write_stall_timeout:
      return "write_stall_timeout";
    case errc::lifetime_exceeded:
      return "lifetime_exceeded";
    case errc::frame_too_large:
      return "frame_too_large";
    case errc::frame_truncated:
      return "frame_truncated";
    case errc::frame_invalid:
      return "frame_invalid";
    case errc::backend_down:
      return "backend_down";
    case errc::proxy_header_invalid:
      return "proxy_header_invalid";
    case errc::proxy_header_timeout:
      return "proxy_header_timeout";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

std::ostream& operator<<(std::ostream& out, errc x) {
  return out << to_string(x);
}

caf::error make_error(errc x) {
  return caf::error{static_cast<uint8_t>(x), error_category};
}

caf::error make_error(errc x, std::string cause) {
  return caf::error{static_cast<uint8_t>(x), error_category,
                    caf::make_message(std::move(cause))};
}

bool is_tcpactor_error(const caf::error& err) noexcept {
  return err && err.category() == error_category;
}

errc kind(const caf::error& err) noexcept {
  return is_tcpactor_error(err) ? static_cast<errc>(err.code()) : errc{};
}

namespace {

std::string context_text(const caf::message& ctx) {
  if (ctx.empty())
    return {};
  if (ctx.match_elements<std::string>())
    return ctx.get_as<std::string>(0);
  return to_string(ctx);
}

} // namespace

std::string describe(const caf::error& err) {
  if (!err)
    return "no error";
  std::string result;
  if (is_tcpactor_error(err))
    result = to_string(static_cast<errc>(err.code()));
  else if (err.category() == caf::atom("system"))
    result = to_string(static_cast<caf::sec>(err.code()));
  else if (err.category() == caf::atom("exit"))
    result = to_string(static_cast<caf::exit_reason>(err.code()));
  else
    result = to_string(err.category()) + "(" + std::to_string(err.code()) + ")";
  auto ctx = context_text(err.context());
  if (!ctx.empty()) {
    result += ": ";
    result += ctx;
  }
  return result;
}

void add_error_category(caf::actor_system_config& cfg) {
  cfg.add_error_category(error_category, [](uint8_t code, caf::atom_value,
                                            const caf::message& ctx) {
    caf::error err{code, error_category, ctx};
    return "tcpactor." + describe(err);
  });
}

} // namespace tcpactor
