// A user's program, built against an installed tcpactor: a listener with
// echo_service, a blocking client that echoes "ping", and a client actor
// talking to a service of its own. Exits 0 only if all of it worked.
//
// The README's examples are the regions between "README: <name> begin/end"
// markers; the readme_examples test keeps the README identical to them.

#include <cctype>
#include <chrono>
#include <cstdio>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <tcpactor/all.hpp>

using namespace std::chrono_literals;

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "tcpactor-consumer: FAILED: %s\n", what.c_str());
  return 1;
}

// README: service begin
// One instance per connection: the reply to each chunk is written back.
tcpactor::service shout_service() {
  return {
      [](const tcpactor::bytes& in) {
        auto out = in.to_string();
        for (auto& ch : out)
          ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        return tcpactor::bytes{out};
      },
      [](tcpactor::error_atom, const caf::error& err) {
        tcpactor::log::write(tcpactor::log::level::warning,
                             tcpactor::describe(err));
      },
      [](tcpactor::closed_atom) {}, // exactly once, last; the actor quits
  };
}
// README: service end

// README: client-actor begin
// Owns a client_actor: says "hi", reports the reply to `done`, closes.
caf::behavior greeter(caf::event_based_actor* self, caf::actor done) {
  auto client = [self] {
    return caf::actor_cast<tcpactor::client_actor>(self->current_sender());
  };
  return {
      [=](tcpactor::connected_atom) {
        self->send(client(), tcpactor::write_atom::value,
                   tcpactor::bytes{"hi"});
      },
      [=](const tcpactor::bytes& in) {
        self->send(done, in);
        self->send(client(), tcpactor::close_atom::value);
        return tcpactor::bytes{}; // write nothing back
      },
      [=](tcpactor::error_atom, const caf::error& err) {
        self->send(done, tcpactor::describe(err));
      },
      [=](tcpactor::closed_atom) {
        self->send(done, tcpactor::closed_atom::value);
        self->quit();
      },
  };
}
// README: client-actor end

} // namespace

int main() {
  // README: listener begin
  caf::actor_system_config cfg;
  tcpactor::configure(cfg);
  caf::actor_system sys{cfg};
  auto rt = tcpactor::runtime::make(sys); // I/O threads; declare after sys
  if (!rt)
    return fail(tcpactor::describe(rt.error()));
  tcpactor::listener_config lc;
  lc.host = "127.0.0.1";
  lc.port = 0; // 0: the kernel picks, l->port() tells
  auto l = tcpactor::spawn_listener(
      *rt, lc,
      [](caf::event_based_actor*,
         const tcpactor::caller& conn) -> caf::expected<tcpactor::service> {
        tcpactor::log::write(tcpactor::log::level::info,
                             "accepted " + conn.remote_host());
        return tcpactor::echo_service();
      });
  if (!l)
    return fail(tcpactor::describe(l.error()));
  // README: listener end

  // README: blocking-client begin
  tcpactor::client_config cc;
  cc.host = "127.0.0.1";
  cc.port = l->port();
  auto c = tcpactor::blocking_client::connect(*rt, cc);
  if (!c)
    return fail(tcpactor::describe(c.error()));
  if (auto err = c->write_bytes(tcpactor::bytes{"ping"}))
    return fail(tcpactor::describe(err));
  std::string echoed;
  while (echoed.size() < 4) { // read_bytes returns one chunk, as read
    auto chunk = c->read_bytes(5s);
    if (!chunk)
      return fail(tcpactor::describe(chunk.error()));
    echoed += chunk->to_string();
  }
  c->close();
  // README: blocking-client end
  if (echoed != "ping")
    return fail("echo_service sent back \"" + echoed + "\"");
  std::printf("blocking client: %s\n", echoed.c_str());

  // README: framing begin
  auto framing = tcpactor::framing_config::parse("length:4,max=64k");
  if (!framing)
    return fail(tcpactor::describe(framing.error()));
  tcpactor::listener_config fl = lc;
  fl.connection.framing = *framing; // each `bytes` is one whole frame
  auto l3 = tcpactor::spawn_listener(
      *rt, fl,
      [](caf::event_based_actor*,
         const tcpactor::caller& conn) -> caf::expected<tcpactor::service> {
        return tcpactor::echo_service(conn); // echoes empty frames too
      });
  if (!l3)
    return fail(tcpactor::describe(l3.error()));
  tcpactor::client_config fc;
  fc.host = "127.0.0.1";
  fc.port = l3->port();
  fc.connection.framing = *framing; // writes go out framed
  auto f = tcpactor::blocking_client::connect(*rt, fc);
  if (!f)
    return fail(tcpactor::describe(f.error()));
  if (auto err = f->write_bytes(tcpactor::bytes{"ping"})) // 0 0 0 4 ping
    return fail(tcpactor::describe(err));
  auto frame = f->read_frame(5s); // one whole frame, however it was read
  if (!frame)
    return fail(tcpactor::describe(frame.error()));
  // README: framing end
  if (frame->to_string() != "ping")
    return fail("framed echo sent back \"" + frame->to_string() + "\"");
  std::printf("framed: %s\n", frame->to_string().c_str());

  // The client actor against a second listener running shout_service.
  auto l2 = tcpactor::spawn_listener(
      *rt, lc,
      [](caf::event_based_actor*, const tcpactor::caller&)
          -> caf::expected<tcpactor::service> { return shout_service(); });
  if (!l2)
    return fail(tcpactor::describe(l2.error()));
  caf::scoped_actor self{sys};
  // README: spawn-client begin
  tcpactor::client_config gc;
  gc.host = "127.0.0.1";
  gc.port = l2->port();
  auto owner = sys.spawn(greeter, caf::actor{self});
  auto client = tcpactor::spawn_client(*rt, gc, owner);
  if (!client)
    return fail(tcpactor::describe(client.error()));
  // README: spawn-client end
  std::string reply;
  bool closed = false;
  std::string error;
  while (!closed && error.empty()) {
    self->receive([&](const tcpactor::bytes& in) { reply += in.to_string(); },
                  [&](const std::string& err) { error = err; },
                  [&](tcpactor::closed_atom) { closed = true; },
                  caf::after(10s) >>
                      [&] { error = "client actor: no reply within 10s"; });
  }
  if (!error.empty())
    return fail(error);
  if (reply != "HI")
    return fail("shout_service sent back \"" + reply + "\"");
  std::printf("client actor: %s\n", reply.c_str());
  return 0;
}
