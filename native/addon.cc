// Entry point of the forecastd native addon. Exports (typed in src/runtime/addon.ts, AddonTypes):
//   configure(libraryPath, runThreads, defaultRunThreads) -> RuntimeState
//   runtimeState() -> RuntimeState | null
//   loadSession(pathOrBytes, options) -> Promise<Session>
//   allocateTensorData(elementType, length) -> TypedArray over addon-owned memory (run() then needs no copy)
//   setLogListener(fn | undefined), takeRuntimeLog() -> ONNX Runtime's log lines (runtime_log.h)
//   runSpin(microseconds?) -> the run threads' spin budget (run_pool.h, SetSpin); sets it first when given
//   ioPoll(microseconds?) -> the JavaScript thread's poll for I/O before sleeping (completion_queue.h, SetIoPoll)
//   raiseOpenFileLimit() -> { before, soft, hard }: the soft RLIMIT_NOFILE raised to the hard limit
//   createConnectionGate(max) -> ConnectionGate: counts and bounds a server's connections (connection_gate.h)
//   formatFloat32Json(values) -> "[…]": a Float32Array as JSON, each value its shortest form (float_json.h)
//   stopForExit(code): the process is exiting (its 'exit' event): stop the run pool before ORT's statics go
//   externalBuffers: false when built for a runtime that forbids external ArrayBuffers (Electron)
//   Session (class; instances come only from loadSession)
#include <napi.h>

#include <dlfcn.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>

#include "addon_error.h"
#include "addon_state.h"
#include "connection_gate.h"
#include "float_json.h"
#include "host_buffer.h"
#include "js_values.h"
#include "load_job.h"
#include "ort_library.h"
#include "run_pool.h"
#include "runtime_log.h"
#include "session_wrap.h"

namespace forecastd {

namespace {

Napi::Object DescribeRuntime(Napi::Env env, const OrtLibrary::Snapshot& snapshot) {
  Napi::Object state = Napi::Object::New(env);
  DefineValue(env, state, "libraryPath", snapshot.path);
  DefineValue(env, state, "version", snapshot.version);
  DefineValue(env, state, "apiVersion", Napi::Number::New(env, ORT_API_VERSION));
  DefineValue(env, state, "runThreads", Napi::Number::New(env, snapshot.runThreads));
  Napi::Array providers = Napi::Array::New(env, snapshot.providers.size());
  for (size_t i = 0; i < snapshot.providers.size(); ++i) {
    DefineElement(env, providers, i, Napi::String::New(env, snapshot.providers[i]));
  }
  DefineValue(env, state, "availableProviders", providers);
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
  return GuardJs(env, kErrRuntimeLoad, "cannot configure ONNX Runtime", [&]() -> Napi::Value {
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
  return GuardJs(env, kErrModelLoad, "cannot load the model", [&]() -> Napi::Value {
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

void ReleaseHostBuffer(napi_env, void*, void* hint) { delete static_cast<std::shared_ptr<HostBuffer>*>(hint); }

// allocateTensorData(elementType, length): a zero-filled typed array over memory the addon owns. run() recognises
// such memory and holds it instead of copying it; JavaScript may still transfer or drop the array at any time.
// Where external buffers are not allowed, an ordinary typed array (run() then copies it).
Napi::Value AllocateTensorData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return GuardJs(env, kErrInvalidArgument, "cannot allocate tensor data", [&]() -> Napi::Value {
    if (info.Length() != 2 || !info[0].IsString() || !info[1].IsNumber()) {
      throw TypeErrorOf("allocateTensorData(elementType, length) needs a type name and a length");
    }
    const std::string type = info[0].As<Napi::String>().Utf8Value();
    napi_typedarray_type arrayType;
    size_t elementSize;
    if (type == "float32") {
      arrayType = napi_float32_array;
      elementSize = 4;
    } else if (type == "float64") {
      arrayType = napi_float64_array;
      elementSize = 8;
    } else {
      throw TypeErrorOf("allocateTensorData() supports float32 and float64, got " + type);
    }
    const double length = info[1].As<Napi::Number>().DoubleValue();
    // 2^31 elements at most: beyond what one batch of windows needs, and within every typed array limit.
    if (!(length >= 0) || length > 2147483648.0 || length != static_cast<double>(static_cast<size_t>(length))) {
      throw RangeErrorOf("allocateTensorData() length must be an integer from 0 to 2^31");
    }
    const size_t elements = static_cast<size_t>(length);
    const size_t bytes = elements * elementSize;
    napi_value buffer = nullptr;
#if defined(NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED)
    buffer = Napi::ArrayBuffer::New(env, bytes);
#else
    std::shared_ptr<HostBuffer> memory = HostBuffer::Allocate(bytes);
    std::memset(memory->data(), 0, bytes);
    auto holder = std::make_unique<std::shared_ptr<HostBuffer>>(memory);
    const napi_status status =
        napi_create_external_arraybuffer(env, memory->data(), bytes, ReleaseHostBuffer, holder.get(), &buffer);
    if (status == napi_ok) {
      static_cast<void>(holder.release());  // owned by the ArrayBuffer's finalizer now
      HostBuffer::Register(memory);
    } else if (status == napi_no_external_buffers_allowed) {
      buffer = Napi::ArrayBuffer::New(env, bytes);
    } else {
      NAPI_THROW_IF_FAILED(env, status, Napi::Value());
    }
#endif
    napi_value array = nullptr;
    NAPI_THROW_IF_FAILED(env, napi_create_typedarray(env, arrayType, elements, buffer, 0, &array), Napi::Value());
    return Napi::Value(env, array);
  });
}

Napi::Value SetLogListener(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = StateOf(env);
  if (info.Length() >= 1 && info[0].IsFunction()) {
    state.logListener = Napi::Persistent(info[0].As<Napi::Function>());
  } else {
    state.logListener.Reset();
  }
  return env.Undefined();
}

Napi::Value TakeLog(const Napi::CallbackInfo& info) { return TakeRuntimeLog(info.Env()); }

// A process-wide budget in microseconds (0 to 100000): sets it to info[0] when given, then returns it.
Napi::Value MicrosecondsSetting(const Napi::CallbackInfo& info, const std::string& what, void (*set)(unsigned),
                                unsigned (*get)()) {
  Napi::Env env = info.Env();
  const std::string context = "cannot set " + what;
  return GuardJs(env, kErrInvalidArgument, context.c_str(), [&]() -> Napi::Value {
    if (info.Length() >= 1 && !info[0].IsUndefined()) {
      const double us = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
      if (!(us >= 0) || us > 100000 || us != static_cast<double>(static_cast<unsigned>(us))) {
        throw RangeErrorOf(what + " must be an integer number of microseconds from 0 to 100000");
      }
      set(static_cast<unsigned>(us));
    }
    return Napi::Number::New(env, get());
  });
}

Napi::Value RunSpin(const Napi::CallbackInfo& info) {
  return MicrosecondsSetting(info, "the run threads' spin", &RunPool::SetSpin, &RunPool::Spin);
}

Napi::Value IoPoll(const Napi::CallbackInfo& info) {
  return MicrosecondsSetting(info, "the I/O poll", &CompletionQueue::SetIoPoll, &CompletionQueue::IoPoll);
}

// The descriptor limit a server can use: the soft limit (often 1024) raised to the hard one, which an
// unprivileged process may do. A hard limit reported as unlimited is not a soft value Linux accepts for
// descriptors (it is capped by fs.nr_open), so the soft limit then goes to 1,048,576, the usual nr_open.
Napi::Value RaiseOpenFileLimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return GuardJs(env, kErrInvalidArgument, "cannot read the open file limit", [&]() -> Napi::Value {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) throw AddonError(kErrInvalidArgument, std::strerror(errno));
    const rlim_t before = limit.rlim_cur;
    constexpr rlim_t kUnlimitedCap = 1048576;
    const rlim_t target = limit.rlim_max == RLIM_INFINITY ? kUnlimitedCap : limit.rlim_max;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < target) {
      rlimit raised{target, limit.rlim_max};
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit.rlim_cur = target;
    }
    auto number = [&](rlim_t value) {
      return Napi::Number::New(env, value == RLIM_INFINITY ? -1.0 : static_cast<double>(value));
    };
    Napi::Object result = Napi::Object::New(env);
    DefineValue(env, result, "before", number(before));
    DefineValue(env, result, "soft", number(limit.rlim_cur));
    DefineValue(env, result, "hard", number(limit.rlim_max));
    return result;
  });
}

Napi::Value StopAtExit(const Napi::CallbackInfo& info) {
  StopForExit(info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1);
  return info.Env().Undefined();
}

// Node closes an addon's handle when the environment that loaded it goes away; if only a worker thread ever
// loaded forecastd.node, its code would be unmapped under the run pool's threads (which live for the whole
// process) at that worker's end. One extra reference with RTLD_NODELETE keeps the code mapped for good.
void PinThisLibrary() {
  static std::once_flag pinned;
  std::call_once(pinned, [] {
    Dl_info self{};
    if (dladdr(reinterpret_cast<void*>(&PinThisLibrary), &self) != 0 && self.dli_fname != nullptr) {
      static_cast<void>(dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE));
    }
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  PinThisLibrary();
  auto state = std::make_unique<AddonState>();
  // Registers its own cleanup hook: at environment teardown it stops this environment's jobs and closes its
  // event-loop handle.
  state->completions = CompletionQueue::Create(env);
  Napi::Function sessionClass = SessionWrap::DefineClass(env);
  state->sessionClass = Napi::Persistent(sessionClass);
  env.SetInstanceData<AddonState>(state.release());  // owned and deleted by the environment

  exports.Set("configure", Napi::Function::New<Configure>(env, "configure"));
  exports.Set("runtimeState", Napi::Function::New<RuntimeState>(env, "runtimeState"));
  exports.Set("loadSession", Napi::Function::New<LoadSession>(env, "loadSession"));
  exports.Set("allocateTensorData", Napi::Function::New<AllocateTensorData>(env, "allocateTensorData"));
  exports.Set("setLogListener", Napi::Function::New<SetLogListener>(env, "setLogListener"));
  exports.Set("takeRuntimeLog", Napi::Function::New<TakeLog>(env, "takeRuntimeLog"));
  exports.Set("runSpin", Napi::Function::New<RunSpin>(env, "runSpin"));
  exports.Set("ioPoll", Napi::Function::New<IoPoll>(env, "ioPoll"));
  exports.Set("raiseOpenFileLimit", Napi::Function::New<RaiseOpenFileLimit>(env, "raiseOpenFileLimit"));
  exports.Set("createConnectionGate", Napi::Function::New<CreateConnectionGate>(env, "createConnectionGate"));
  exports.Set("formatFloat32Json", Napi::Function::New<FormatFloat32Json>(env, "formatFloat32Json"));
  exports.Set("stopForExit", Napi::Function::New<StopAtExit>(env, "stopForExit"));
#if defined(NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED)
  exports.Set("externalBuffers", Napi::Boolean::New(env, false));
#else
  exports.Set("externalBuffers", Napi::Boolean::New(env, true));
#endif
  exports.Set("Session", sessionClass);
  return exports;
}

}  // namespace

}  // namespace forecastd

static Napi::Object InitForecastd(Napi::Env env, Napi::Object exports) { return forecastd::Init(env, exports); }

NODE_API_MODULE(forecastd, InitForecastd)
