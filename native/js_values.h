#pragma once

#include <string>

#include <napi.h>

namespace forecastd {

// Building JavaScript values without running an embedder's code: Set() would call a setter someone defined on
// Object.prototype or Array.prototype (and that setter could dispose the very session being described), so every
// property the addon creates is defined as an own data property instead.

inline void DefineValue(Napi::Env env, napi_value object, const char* key, napi_value value) {
  napi_property_descriptor descriptor{key,    nullptr, nullptr, nullptr, nullptr,
                                      value,  napi_default_jsproperty, nullptr};
  NAPI_THROW_IF_FAILED_VOID(env, napi_define_properties(env, object, 1, &descriptor));
}

inline void DefineValue(Napi::Env env, napi_value object, const char* key, const Napi::Value& value) {
  DefineValue(env, object, key, static_cast<napi_value>(value));
}

inline void DefineValue(Napi::Env env, napi_value object, const char* key, const std::string& value) {
  DefineValue(env, object, key, Napi::String::New(env, value));
}

inline void DefineElement(Napi::Env env, napi_value array, size_t index, const Napi::Value& value) {
  const std::string key = std::to_string(index);
  DefineValue(env, array, key.c_str(), value);
}

}  // namespace forecastd
