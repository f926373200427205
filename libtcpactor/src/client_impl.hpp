#pragma once

#include <caf/actor.hpp>
#include <caf/expected.hpp>

#include "tcpactor/client.hpp"
#include "tcpactor/runtime.hpp"

namespace tcpactor {

/// `spawn_client` on the runtime's internals, for actors that outlive the
/// call: a `runtime` may be moved, its `impl` never is.
caf::expected<client_actor>
spawn_client_on(runtime::impl& impl, client_config cfg, caf::actor owner);

} // namespace tcpactor
