#include "metrics_endpoint.hpp"

#include <chrono>

#include <caf/event_based_actor.hpp>

#include "tcpactor/connection.hpp"
#include "tcpactor/errors.hpp"
#include "tcpactor/metrics.hpp"

namespace tcpactor_echo {

namespace {

using namespace std::chrono_literals;

bool is_token_char(char c) {
  // RFC 9110 tchar: what a method may be made of.
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || extra.find(c) != std::string_view::npos;
}

std::string response(int status, std::string_view reason,
                     std::string_view content_type, const std::string& body,
                     bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
  out += reason;
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size());
  if (status == 405)
    out += "\r\nAllow: GET, HEAD";
  out += "\r\nConnection: close\r\n\r\n";
  if (!head_only)
    out += body;
  return out;
}

std::string answer(const http_verdict& v, const tcpactor::runtime& watched) {
  switch (v.kind) {
    case http_verdict::metrics:
      return response(200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                      tcpactor::render_prometheus(watched.metrics()),
                      v.head_only);
    case http_verdict::not_found:
      return response(404, "Not Found", "text/plain; charset=utf-8",
                      "not found; try /metrics\n", v.head_only);
    case http_verdict::bad_method:
      return response(405, "Method Not Allowed", "text/plain; charset=utf-8",
                      "only GET and HEAD\n", false);
    default:
      return response(400, "Bad Request", "text/plain; charset=utf-8",
                      "bad request\n", false);
  }
}

} // namespace

http_verdict judge_request(std::string_view head) {
  http_verdict bad{http_verdict::bad_request};
  auto end = head.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    // Judge the request line as soon as it is there: garbage gets its 400
    // without waiting for a blank line that may never come.
    auto eol = head.find("\r\n");
    if (eol == std::string_view::npos) {
      if (head.size() >= max_request_head)
        return bad;
      // Nothing an HTTP request line could start with.
      for (auto c : head.substr(0, 16))
        if (c != ' ' && !is_token_char(c) && c != '/')
          return bad;
      return {};
    }
    if (head.size() >= max_request_head)
      return bad;
    auto line = judge_request(std::string{head.substr(0, eol)} + "\r\n\r\n");
    if (line.kind == http_verdict::bad_request)
      return bad;
    return {};
  }
  if (end + 4 > max_request_head)
    return bad;
  auto line = head.substr(0, head.find("\r\n"));
  // METHOD SP request-target SP HTTP/1.x
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0)
    return bad;
  auto method = line.substr(0, sp1);
  for (auto c : method)
    if (!is_token_char(c))
      return bad;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1)
    return bad;
  auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  auto version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0")
    return bad;
  for (auto c : target)
    if (static_cast<unsigned char>(c) <= 0x20 ||
        static_cast<unsigned char>(c) >= 0x7F)
      return bad;
  if (target.empty() || (target[0] != '/' && target != "*"))
    return bad;
  // Header lines must each hold a colon (no obs-fold, no bare CR).
  auto rest = head.substr(line.size() + 2, end - line.size());
  while (!rest.empty() && rest != "\r\n") {
    auto eol = rest.find("\r\n");
    auto field = rest.substr(0, eol);
    auto colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0 ||
        field.find('\r') != std::string_view::npos ||
        field.find('\n') != std::string_view::npos)
      return bad;
    for (auto c : field.substr(0, colon))
      if (!is_token_char(c))
        return bad;
    rest = rest.substr(eol + 2);
  }
  http_verdict v;
  v.head_only = method == "HEAD";
  if (method != "GET" && method != "HEAD") {
    v.kind = http_verdict::bad_method;
    return v;
  }
  auto path = target.substr(0, target.find('?'));
  v.kind = path == "/metrics" ? http_verdict::metrics : http_verdict::not_found;
  return v;
}

caf::expected<std::unique_ptr<metrics_endpoint>>
metrics_endpoint::start(caf::actor_system& sys,
                        const tcpactor::runtime& watched,
                        const std::string& host, uint16_t port) {
  tcpactor::runtime_config rc;
  rc.io_threads = 1;
  auto rt = tcpactor::runtime::make(sys, rc);
  if (!rt)
    return std::move(rt.error());
  tcpactor::listener_config lc;
  lc.host = host;
  lc.port = port;
  lc.backlog = 64;
  // A scraper that never finishes its request must not hold a slot long,
  // and many of them must not hold many descriptors.
  lc.max_connections = 16;
  lc.connection.read_chunk = 4096;
  lc.connection.max_lifetime = 5s;
  lc.connection.first_byte_timeout = 5s;
  // The handler only formats counters: run it on the I/O thread.
  lc.connection.handlers_on_io_thread = true;
  const auto* target = &watched;
  auto lst = tcpactor::spawn_listener(
      *rt, lc,
      [target](caf::event_based_actor*, const tcpactor::caller& conn)
          -> caf::expected<tcpactor::service> {
        auto head = std::make_shared<std::string>();
        auto done = std::make_shared<bool>(false);
        return tcpactor::service{
            [target, conn, head, done](const tcpactor::bytes& in) {
              if (*done)
                return tcpactor::bytes{}; // a body or a second request
              head->append(in.data(), in.size());
              auto verdict = judge_request(*head);
              if (verdict.kind == http_verdict::incomplete)
                return tcpactor::bytes{};
              *done = true;
              head->clear();
              head->shrink_to_fit();
              // Written, then closed: a reply returned after close() could
              // come too late.
              conn.write(tcpactor::bytes{answer(verdict, *target)});
              conn.close();
              return tcpactor::bytes{};
            },
            [](tcpactor::error_atom, const caf::error&) {},
            [](tcpactor::closed_atom) {},
        };
      });
  if (!lst)
    return std::move(lst.error());
  return std::unique_ptr<metrics_endpoint>{
      new metrics_endpoint(std::move(*rt), std::move(*lst))};
}

metrics_endpoint::metrics_endpoint(tcpactor::runtime rt, tcpactor::listener lst)
    : rt_(std::move(rt)), listener_(std::move(lst)) {
  // nop
}

metrics_endpoint::~metrics_endpoint() {
  rt_.shutdown();
}

} // namespace tcpactor_echo
