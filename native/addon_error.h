#pragma once

#include <new>
#include <stdexcept>
#include <string>

#include <napi.h>

#include "js_values.h"

namespace forecastd {

// Error codes shared with src/errors.ts; the TypeScript wrapper turns them into ForecastdError.
inline constexpr const char* kErrRuntimeLoad = "ERR_RUNTIME_LOAD";
inline constexpr const char* kErrModelLoad = "ERR_MODEL_LOAD";
inline constexpr const char* kErrInference = "ERR_INFERENCE";
inline constexpr const char* kErrDisposed = "ERR_DISPOSED";
inline constexpr const char* kErrInvalidArgument = "ERR_INVALID_ARGUMENT";

// How an error is presented to JavaScript: a plain Error with `code`, or a TypeError/RangeError for bad arguments.
enum class ErrorKind { kError, kTypeError, kRangeError };

// The one C++ exception type the addon throws: plain data, so it can be raised on a run thread and turned
// into a JavaScript error later on the JavaScript thread.
// `ortCode` is ONNX Runtime's own error code ("ORT_INVALID_ARGUMENT", ...) when the failure came from it.
class AddonError : public std::runtime_error {
 public:
  AddonError(std::string code, const std::string& message, ErrorKind kind = ErrorKind::kError,
             std::string ortCode = std::string())
      : std::runtime_error(message), code_(std::move(code)), kind_(kind), ortCode_(std::move(ortCode)) {}

  const std::string& code() const { return code_; }
  ErrorKind kind() const { return kind_; }
  const std::string& ortCode() const { return ortCode_; }

 private:
  std::string code_;
  ErrorKind kind_;
  std::string ortCode_;
};

inline AddonError TypeErrorOf(const std::string& message) {
  return AddonError(kErrInvalidArgument, message, ErrorKind::kTypeError);
}

inline AddonError RangeErrorOf(const std::string& message) {
  return AddonError(kErrInvalidArgument, message, ErrorKind::kRangeError);
}

// A JavaScript error object for `code` and `message`.
inline Napi::Value MakeJsError(Napi::Env env, const std::string& code, const std::string& message,
                               ErrorKind kind = ErrorKind::kError, const std::string& ortCode = std::string()) {
  Napi::Error error = kind == ErrorKind::kTypeError    ? Napi::TypeError::New(env, message)
                      : kind == ErrorKind::kRangeError ? Napi::RangeError::New(env, message)
                                                       : Napi::Error::New(env, message);
  DefineValue(env, error.Value(), "code", code);
  if (!ortCode.empty()) DefineValue(env, error.Value(), "ortCode", ortCode);
  return error.Value();
}

inline Napi::Value MakeJsError(Napi::Env env, const AddonError& error) {
  return MakeJsError(env, error.code(), error.what(), error.kind(), error.ortCode());
}

// What an unexpected C++ exception means for the call that raised it: out of memory is reported as such, anything
// else under the call's own code (`fallbackCode`: ERR_INFERENCE for run(), ERR_MODEL_LOAD for loads...).
inline AddonError FromStdException(const std::exception& e, const char* fallbackCode, const std::string& context) {
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) {
    return AddonError(fallbackCode, context + ": out of memory", ErrorKind::kRangeError);
  }
  return AddonError(fallbackCode, context + ": " + e.what());
}

// Runs `body` and converts every C++ exception into a JavaScript exception: node-addon-api only converts
// Napi::Error, and nothing may unwind into Node-API.
template <typename Body>
Napi::Value GuardJs(Napi::Env env, const char* fallbackCode, const char* context, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const AddonError& e) {
    throw Napi::Error(env, MakeJsError(env, e));
  } catch (const std::exception& e) {
    throw Napi::Error(env, MakeJsError(env, FromStdException(e, fallbackCode, context)));
  }
}

}  // namespace forecastd
