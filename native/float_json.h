#pragma once

#include <cstddef>

#include <napi.h>

namespace forecastd {

// The longest text WriteFloat32Json writes: a sign, "0.00000" and nine digits (17), or up to 21 integer
// digits (22 with the sign), or "-d.dddddddde-45" (15).
inline constexpr std::size_t kFloat32JsonMax = 24;

// Writes the shortest decimal that reads back as `v` (a finite float32) the way JavaScript's
// Number.prototype.toString writes that decimal: "0.45", "371", "1e-7", "3.4028235e+38", "-0". The digits are
// std::to_chars' shortest round-trip form, the closest one where several are as short, except that an exact
// tie between two goes to the larger, as toPrecision does; the layout (fixed below 10^21 and down to 10^-6,
// exponential outside) is ECMAScript's Number::toString. Returns the end. It agrees with the JavaScript
// formatter (src/http/float-format.ts) wherever ReadsBackLikeJavaScript(v) holds.
char* WriteFloat32Json(float v, char* out);

// Whether JavaScript's reading of every decimal of up to nine digits near v (Number, the nearest double, then
// Math.fround, the nearest float32: two roundings) surely gives the float32 that the exact reading to_chars
// assumes. False for a few values in billions whose rounding boundary a short decimal's double lands on exactly
// (0x15ae43fd and 0x15ae43fe, around 7.03853e-26, for two), and, to be safe, wherever a cheap test cannot rule
// that out.
bool ReadsBackLikeJavaScript(float v);

// formatFloat32Json(values: Float32Array) -> string | null: "[a,b,…]" with each value as WriteFloat32Json
// writes it; null where some value fails ReadsBackLikeJavaScript (the caller formats those arrays itself).
// Throws a RangeError naming the first value that is not finite (JSON has no NaN or Infinity).
Napi::Value FormatFloat32Json(const Napi::CallbackInfo& info);

}  // namespace forecastd
