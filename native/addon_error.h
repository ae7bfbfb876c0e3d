#pragma once

#include <stdexcept>
#include <string>

#include <napi.h>

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
class AddonError : public std::runtime_error {
 public:
  AddonError(std::string code, const std::string& message, ErrorKind kind = ErrorKind::kError)
      : std::runtime_error(message), code_(std::move(code)), kind_(kind) {}

  const std::string& code() const { return code_; }
  ErrorKind kind() const { return kind_; }

 private:
  std::string code_;
  ErrorKind kind_;
};

inline AddonError TypeErrorOf(const std::string& message) {
  return AddonError(kErrInvalidArgument, message, ErrorKind::kTypeError);
}

inline AddonError RangeErrorOf(const std::string& message) {
  return AddonError(kErrInvalidArgument, message, ErrorKind::kRangeError);
}

// A JavaScript error object for `code` and `message`.
inline Napi::Value MakeJsError(Napi::Env env, const std::string& code, const std::string& message,
                               ErrorKind kind = ErrorKind::kError) {
  Napi::Error error = kind == ErrorKind::kTypeError    ? Napi::TypeError::New(env, message)
                      : kind == ErrorKind::kRangeError ? Napi::RangeError::New(env, message)
                                                       : Napi::Error::New(env, message);
  error.Value().Set("code", Napi::String::New(env, code));
  return error.Value();
}

inline Napi::Value MakeJsError(Napi::Env env, const AddonError& error) {
  return MakeJsError(env, error.code(), error.what(), error.kind());
}

// Runs `body` and converts every C++ exception into a JavaScript exception: node-addon-api only converts
// Napi::Error, and nothing may unwind into Node-API.
template <typename Body>
Napi::Value GuardJs(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const AddonError& e) {
    throw Napi::Error(env, MakeJsError(env, e));
  } catch (const std::exception& e) {
    throw Napi::Error(env, MakeJsError(env, kErrInvalidArgument, e.what()));
  }
}

}  // namespace forecastd
