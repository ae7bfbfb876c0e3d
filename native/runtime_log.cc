#include "runtime_log.h"

#include <atomic>
#include <deque>
#include <mutex>
#include <string>

#include "addon_state.h"
#include "js_values.h"

namespace forecastd {

namespace {

constexpr size_t kMaxPending = 256;

struct Line {
  OrtLoggingLevel severity;
  std::string category;
  std::string message;
};

// Never destroyed: ORT may log from its own threads while the process exits.
struct Pending {
  std::mutex mutex;
  std::deque<Line> lines;
  size_t dropped = 0;
};
Pending& State() {
  static Pending* pending = new Pending();
  return *pending;
}
std::atomic<bool> g_any{false};

const char* LevelName(OrtLoggingLevel severity) {
  switch (severity) {
    case ORT_LOGGING_LEVEL_VERBOSE: return "verbose";
    case ORT_LOGGING_LEVEL_INFO: return "info";
    case ORT_LOGGING_LEVEL_WARNING: return "warning";
    case ORT_LOGGING_LEVEL_ERROR: return "error";
    default: return "fatal";
  }
}

}  // namespace

void RecordOrtLog(void*, OrtLoggingLevel severity, const char* category, const char*, const char*,
                  const char* message) {
  try {
    Pending& pending = State();
    std::lock_guard<std::mutex> lock(pending.mutex);
    if (pending.lines.size() >= kMaxPending) {
      ++pending.dropped;
    } else {
      pending.lines.push_back(Line{severity, category != nullptr ? category : "", message != nullptr ? message : ""});
    }
    g_any.store(true, std::memory_order_release);
  } catch (...) {
    // Out of memory while logging: the line is lost, ORT carries on.
  }
}

Napi::Array TakeRuntimeLog(Napi::Env env) {
  std::deque<Line> lines;
  size_t dropped = 0;
  {
    Pending& pending = State();
    std::lock_guard<std::mutex> lock(pending.mutex);
    lines.swap(pending.lines);
    dropped = pending.dropped;
    pending.dropped = 0;
    g_any.store(false, std::memory_order_release);
  }
  Napi::Array result = Napi::Array::New(env);
  size_t index = 0;
  for (const Line& line : lines) {
    Napi::Object entry = Napi::Object::New(env);
    DefineValue(env, entry, "level", std::string(LevelName(line.severity)));
    DefineValue(env, entry, "category", line.category);
    DefineValue(env, entry, "message", line.message);
    DefineElement(env, result, index++, entry);
  }
  if (dropped > 0) {
    Napi::Object entry = Napi::Object::New(env);
    DefineValue(env, entry, "level", std::string("warning"));
    DefineValue(env, entry, "category", std::string("forecastd"));
    DefineValue(env, entry, "message", std::to_string(dropped) + " ONNX Runtime log lines were dropped (too many at once)");
    DefineElement(env, result, index++, entry);
  }
  return result;
}

void DeliverRuntimeLog(Napi::Env env) {
  if (!g_any.load(std::memory_order_acquire)) return;
  AddonState* state = env.GetInstanceData<AddonState>();
  if (state == nullptr || state->logListener.IsEmpty()) return;
  Napi::HandleScope scope(env);
  Napi::Array lines = TakeRuntimeLog(env);
  try {
    state->logListener.Call({lines});
  } catch (const std::exception&) {
    // The listener threw: its error is dropped (the embedder's logger failing must not fail runs).
  }
}

}  // namespace forecastd
