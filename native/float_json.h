#pragma once

#include <cstddef>

#include <napi.h>

namespace forecastd {

// The longest text WriteFloat32Json writes: a sign, "0.00000" and nine digits (16), or up to 21 integer
// digits (22 with the sign), or "-d.dddddddde-45" (15).
inline constexpr std::size_t kFloat32JsonMax = 24;

// Writes the shortest decimal that reads back as `v` (a finite float32) the way JavaScript's
// Number.prototype.toString writes that decimal: "0.45", "371", "1e-7", "3.4028235e+38", "-0". The digits are
// std::to_chars' shortest round-trip form (the closest one where several are as short); the layout (fixed
// below 10^21 and down to 10^-6, exponential outside) is ECMAScript's Number::toString. Returns the end.
char* WriteFloat32Json(float v, char* out);

// formatFloat32Json(values: Float32Array) -> string: "[a,b,…]" with each value as WriteFloat32Json writes it.
// Throws a RangeError naming the first value that is not finite (JSON has no NaN or Infinity).
Napi::Value FormatFloat32Json(const Napi::CallbackInfo& info);

}  // namespace forecastd
