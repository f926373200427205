#pragma once

#include "tcpactor/bytes.hpp"
#include "tcpactor/caller.hpp"
#include "tcpactor/client.hpp"
#include "tcpactor/config.hpp"
#include "tcpactor/connection.hpp"
#include "tcpactor/errors.hpp"
#include "tcpactor/fwd.hpp"
#include "tcpactor/listener.hpp"
#include "tcpactor/log.hpp"
#include "tcpactor/metrics.hpp"
#include "tcpactor/reconnecting_client.hpp"
#include "tcpactor/runtime.hpp"
