#pragma once

#include <napi.h>

namespace forecastd {

// createConnectionGate(max) -> { attach(port), detach(), check() -> { open, refused }, release() }: counts the
// connections a uWebSockets.js server on this thread's event loop holds, and resets at once, as they arrive,
// those past `max` (see connection_gate.cc). Throws when the gate cannot be installed in this process.
Napi::Value CreateConnectionGate(const Napi::CallbackInfo& info);

}  // namespace forecastd
