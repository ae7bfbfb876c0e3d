#pragma once

#include <memory>

#include <napi.h>

#include "completion_queue.h"

namespace forecastd {

// What the addon keeps per Node.js environment (the main thread and each worker thread load it separately),
// stored as the environment's instance data so nothing JavaScript-related is process-global.
struct AddonState {
  std::shared_ptr<CompletionQueue> completions;
  Napi::FunctionReference sessionClass;
  Napi::FunctionReference logListener;  // setLogListener(); empty when none
};

inline AddonState& StateOf(Napi::Env env) { return *env.GetInstanceData<AddonState>(); }

}  // namespace forecastd
