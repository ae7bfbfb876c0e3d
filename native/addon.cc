// Entry point of the forecastd native addon. Exports (typed in src/runtime/addon.ts, AddonTypes):
//   configure(libraryPath, runThreads, defaultRunThreads) -> RuntimeState
//   runtimeState() -> RuntimeState | null
//   loadSession(pathOrBytes, options) -> Promise<Session>
//   Session (class; instances come only from loadSession)
#include <napi.h>

#include "addon_error.h"
#include "addon_state.h"
#include "load_job.h"
#include "ort_library.h"
#include "session_wrap.h"

namespace forecastd {

namespace {

Napi::Object DescribeRuntime(Napi::Env env, const OrtLibrary::Snapshot& snapshot) {
  Napi::Object state = Napi::Object::New(env);
  state.Set("libraryPath", snapshot.path);
  state.Set("version", snapshot.version);
  state.Set("apiVersion", Napi::Number::New(env, ORT_API_VERSION));
  state.Set("runThreads", Napi::Number::New(env, snapshot.runThreads));
  Napi::Array providers = Napi::Array::New(env, snapshot.providers.size());
  for (size_t i = 0; i < snapshot.providers.size(); ++i) providers.Set(i, snapshot.providers[i]);
  state.Set("availableProviders", providers);
  return state;
}

unsigned ThreadCount(const Napi::Value& value, const char* what) {
  if (value.IsUndefined()) return 0;
  const double n = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
  if (!(n >= 0) || n > 1024 || n != static_cast<double>(static_cast<unsigned>(n))) {
    throw RangeErrorOf(std::string(what) + " must be an integer from 0 to 1024");
  }
  return static_cast<unsigned>(n);
}

Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return GuardJs(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) throw TypeErrorOf("configure() needs the library path");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    const unsigned runThreads = ThreadCount(info[1], "runThreads");
    const unsigned defaultRunThreads = ThreadCount(info[2], "defaultRunThreads");
    return DescribeRuntime(env, OrtLibrary::Configure(path, runThreads, defaultRunThreads));
  });
}

Napi::Value RuntimeState(const Napi::CallbackInfo& info) {
  const OrtLibrary* library = OrtLibrary::Current();
  if (library == nullptr) return info.Env().Null();
  return DescribeRuntime(info.Env(), library->Describe());
}

SessionConfig ReadSessionConfig(const Napi::Object& options) {
  SessionConfig config;
  auto integer = [&](const char* key, int fallback, int minimum) {
    Napi::Value value = options.Get(key);
    if (value.IsUndefined()) return fallback;
    const double n = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
    if (!(n >= minimum) || n > 1024 || n != static_cast<double>(static_cast<int>(n))) {
      throw RangeErrorOf(std::string(key) + " must be an integer from " + std::to_string(minimum) + " to 1024");
    }
    return static_cast<int>(n);
  };
  config.intraOpThreads = integer("intraOpThreads", 1, 1);
  config.interOpThreads = integer("interOpThreads", 0, 0);

  Napi::Value level = options.Get("graphOptimizationLevel");
  if (!level.IsUndefined()) {
    const std::string text = level.ToString().Utf8Value();
    if (text == "disabled") config.optimizationLevel = ORT_DISABLE_ALL;
    else if (text == "basic") config.optimizationLevel = ORT_ENABLE_BASIC;
    else if (text == "extended") config.optimizationLevel = ORT_ENABLE_EXTENDED;
    else if (text == "all") config.optimizationLevel = ORT_ENABLE_ALL;
    else throw RangeErrorOf("graphOptimizationLevel must be disabled, basic, extended or all, got " + text);
  }
  Napi::Value mode = options.Get("executionMode");
  if (!mode.IsUndefined()) {
    const std::string text = mode.ToString().Utf8Value();
    if (text == "sequential") config.executionMode = ORT_SEQUENTIAL;
    else if (text == "parallel") config.executionMode = ORT_PARALLEL;
    else throw RangeErrorOf("executionMode must be sequential or parallel, got " + text);
  }
  Napi::Value providers = options.Get("executionProviders");
  if (providers.IsArray()) {
    Napi::Array list = providers.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) config.providers.push_back(list.Get(i).ToString().Utf8Value());
  } else if (!providers.IsUndefined()) {
    throw TypeErrorOf("executionProviders must be an array of provider names");
  }
  return config;
}

Napi::Value LoadSession(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return GuardJs(env, [&]() -> Napi::Value {
    if (OrtLibrary::Current() == nullptr) {
      throw AddonError(kErrRuntimeLoad, "ONNX Runtime is not configured yet: call configure() first");
    }
    if (info.Length() < 1) throw TypeErrorOf("loadSession() needs a model path or the model's bytes");
    SessionConfig config = ReadSessionConfig(info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env));
    std::unique_ptr<LoadJob> job;
    if (info[0].IsString()) {
      job = std::make_unique<LoadJob>(env, info[0].As<Napi::String>().Utf8Value(), std::move(config));
    } else if (info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
      job = std::make_unique<LoadJob>(env, info[0].As<Napi::TypedArray>(), std::move(config));
    } else {
      throw TypeErrorOf("loadSession() needs a model path (string) or the model's bytes (Uint8Array)");
    }
    Napi::Promise promise = job->promise();
    StateOf(env).completions->Dispatch(env, std::move(job));
    return promise;
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto state = std::make_unique<AddonState>();
  state->completions = CompletionQueue::Create(env);
  Napi::Function sessionClass = SessionWrap::DefineClass(env);
  state->sessionClass = Napi::Persistent(sessionClass);
  std::shared_ptr<CompletionQueue> completions = state->completions;
  // Registered after the completion signal was created, so it runs before Node tears that signal down.
  env.AddCleanupHook([completions]() { completions->Shutdown(); });
  env.SetInstanceData<AddonState>(state.release());  // owned and deleted by the environment

  exports.Set("configure", Napi::Function::New<Configure>(env, "configure"));
  exports.Set("runtimeState", Napi::Function::New<RuntimeState>(env, "runtimeState"));
  exports.Set("loadSession", Napi::Function::New<LoadSession>(env, "loadSession"));
  exports.Set("Session", sessionClass);
  return exports;
}

}  // namespace

}  // namespace forecastd

static Napi::Object InitForecastd(Napi::Env env, Napi::Object exports) { return forecastd::Init(env, exports); }

NODE_API_MODULE(forecastd, InitForecastd)
