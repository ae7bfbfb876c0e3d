#include "float_json.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "addon_error.h"

namespace forecastd {

namespace {

// Whether |v| lies exactly half-way between the k-digit decimals d·10^s and (d+1)·10^s, i.e. 2|v| = (2d+1)·10^s,
// in exact integer arithmetic on |v| = m·2^q.
bool IsDecimalTie(float v, std::uint64_t d, int s) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  const std::uint32_t biased = (bits >> 23) & 0xffu;
  std::uint64_t m = bits & 0x7fffffu;
  int q = -149;
  if (biased != 0) {
    m |= 0x800000u;
    q = static_cast<int>(biased) - 150;
  }
  if (m == 0) return false;
  int twos = 0;
  while ((m & 1u) == 0) {
    m >>= 1;
    ++twos;
  }
  // 2|v| = m·2^(twos+q+1) with m odd; (2d+1)·10^s = (2d+1)·5^s·2^s with 2d+1 odd: the odd parts and the powers
  // of two must both agree.
  const std::uint64_t odd = 2 * d + 1;
  std::uint64_t fives = 1;
  for (int i = 0; i < (s < 0 ? -s : s); ++i) {
    fives *= 5;
    // Past 2^31 neither side can match (m < 2^24, 2d+1 < 2^31), and below it neither product overflows.
    if (fives > (std::uint64_t{1} << 31)) return false;
  }
  if (s >= 0) return twos + q + 1 == s && m == odd * fives;
  return twos + q + 1 == s && odd == m * fives;
}

// 10^k as the nearest double, for k in [-kPow10Range, kPow10Range] (exact up to 10^22).
constexpr int kPow10Range = 64;
const double* Pow10Table() {
  static const double* const table = [] {
    static double values[2 * kPow10Range + 1];
    for (int k = -kPow10Range; k <= kPow10Range; ++k) {
      char text[8];
      char* end = text;
      *end++ = '1';
      *end++ = 'e';
      end = std::to_chars(end, text + sizeof text, k).ptr;
      std::from_chars(text, end, values[k + kPow10Range]);
    }
    return values;
  }();
  return table;
}

// Whether a decimal of at most nine significant digits might read, as its nearest double, exactly as m (a
// boundary between two float32 values, which a double holds exactly). A necessary condition, in double
// arithmetic: m scaled to nine integer digits lies within 1e-6 of an integer (the scaling errs by under 4e-7).
bool NearNineDigitDecimal(double m, int exponent) {
  const double* pow10 = Pow10Table();
  int k = 8 - exponent;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (k < -kPow10Range || k > kPow10Range) return true;  // outside the table: let the caller take care
    const double x = m * pow10[k + kPow10Range];
    if (x < 1e8) {
      ++k;
    } else if (x >= 1e9) {
      --k;
    } else {
      // x is positive and below 2^31: truncation is its floor, one instruction where std::floor may be a call.
      const double fraction = x - static_cast<double>(static_cast<std::int32_t>(x));
      return fraction < 1e-6 || fraction > 1 - 1e-6;
    }
  }
  return true;
}

}  // namespace

bool ReadsBackLikeJavaScript(float v) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  bits &= 0x7fffffffu;
  if (bits == 0) return true;
  const int biased = static_cast<int>(bits >> 23);
  // Subnormals and the top binade (whose upper boundary is the overflow threshold): rare in a forecast, and
  // left to the JavaScript formatter rather than given cases of their own here.
  if (biased == 0 || biased >= 0xfe) return false;
  const double a = std::fabs(static_cast<double>(v));
  // Half the gap to the next float32 up, 2^(biased-151), built as a double; the gap below is half as wide at a
  // power of two.
  double half = 0;
  const std::uint64_t halfBits = static_cast<std::uint64_t>(biased - 151 + 1023) << 52;
  std::memcpy(&half, &halfBits, sizeof half);
  const double below = (bits & 0x7fffffu) == 0 ? a - half / 2 : a - half;
  const double above = a + half;
  // floor(log2(a) · log10(2)): the decimal exponent of a, or one less.
  const int exponent = ((biased - 127) * 78913) >> 18;
  return !NearNineDigitDecimal(below, exponent) && !NearNineDigitDecimal(above, exponent);
}

char* WriteFloat32Json(float v, char* out) {
  // Shortest round-trip digits in scientific form: "-d.ddde±xx" (std::to_chars without a precision).
  char sci[32];
  const std::to_chars_result r = std::to_chars(sci, sci + sizeof sci, v, std::chars_format::scientific);
  const char* p = sci;
  const char* const end = r.ptr;
  if (*p == '-') {
    *out++ = '-';
    ++p;
  }
  char digits[12];
  int k = 0;
  for (; p < end && *p != 'e'; ++p) {
    if (*p != '.') digits[k++] = *p;
  }
  // p is at 'e': the sign and decimal exponent follow.
  int exponent = 0;
  bool negative = false;
  ++p;
  if (p < end && (*p == '+' || *p == '-')) negative = *p++ == '-';
  for (; p < end; ++p) exponent = exponent * 10 + (*p - '0');
  if (negative) exponent = -exponent;
  // to_chars breaks a tie between two shortest decimals towards an even last digit; formatFloat32 (JavaScript's
  // toPrecision) takes the one of larger magnitude, where that one reads back as v too (it may not where v is a
  // power of two, whose rounding interval is narrower below).
  if (v != 0 && (digits[k - 1] - '0') % 2 == 0) {
    std::uint64_t d = 0;
    for (int i = 0; i < k; ++i) d = d * 10 + static_cast<std::uint64_t>(digits[i] - '0');
    if (IsDecimalTie(v, d, exponent - k + 1)) {
      // The last digit is even, so the larger decimal only raises it by one (no carry).
      ++digits[k - 1];
      // Read back as JavaScript does: the decimal's nearest double, then its nearest float.
      char text[32];
      std::memcpy(text, digits, k);
      char* t = text + k;
      *t++ = 'e';
      t = std::to_chars(t, text + sizeof text, exponent - k + 1).ptr;
      double readBack = 0;
      std::from_chars(text, t, readBack);
      if (static_cast<float>(readBack) != (v < 0 ? -v : v)) --digits[k - 1];
    }
  }
  // to_chars writes no trailing zeros beyond the shortest digits, except a lone "0" for zero.
  while (k > 1 && digits[k - 1] == '0') --k;
  const int point = exponent + 1;  // the decimal point sits after this many digits
  if (k <= point && point <= 21) {
    std::memcpy(out, digits, k);
    out += k;
    for (int i = k; i < point; ++i) *out++ = '0';
  } else if (0 < point && point <= 21) {
    std::memcpy(out, digits, point);
    out += point;
    *out++ = '.';
    std::memcpy(out, digits + point, k - point);
    out += k - point;
  } else if (-6 < point && point <= 0) {
    *out++ = '0';
    *out++ = '.';
    for (int i = point; i < 0; ++i) *out++ = '0';
    std::memcpy(out, digits, k);
    out += k;
  } else {
    *out++ = digits[0];
    if (k > 1) {
      *out++ = '.';
      std::memcpy(out, digits + 1, k - 1);
      out += k - 1;
    }
    const int e = point - 1;
    *out++ = 'e';
    *out++ = e < 0 ? '-' : '+';
    out = std::to_chars(out, out + 4, e < 0 ? -e : e).ptr;
  }
  return out;
}

namespace {

// The value as the RangeError names it, the way JavaScript prints it.
const char* NonFiniteName(float v) {
  if (std::isnan(v)) return "NaN";
  return v > 0 ? "Infinity" : "-Infinity";
}

}  // namespace

Napi::Value FormatFloat32Json(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return GuardJs(env, kErrInvalidArgument, "cannot format the values as JSON", [&]() -> Napi::Value {
    napi_typedarray_type type = napi_int8_array;
    size_t length = 0;
    void* data = nullptr;
    bool isTypedArray = false;
    if (info.Length() >= 1) NAPI_THROW_IF_FAILED(env, napi_is_typedarray(env, info[0], &isTypedArray), Napi::Value());
    if (isTypedArray) {
      NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr),
                           Napi::Value());
    }
    if (!isTypedArray || type != napi_float32_array) throw TypeErrorOf("formatFloat32Json takes a Float32Array");
    const float* values = static_cast<const float*>(data);
    for (size_t i = 0; i < length; ++i) {
      if (!std::isfinite(values[i])) {
        throw RangeErrorOf(std::string("cannot format the non-finite value ") + NonFiniteName(values[i]) + " as JSON");
      }
    }
    // A value next to a boundary that JavaScript's reading sees differently (a few in billions): the caller
    // formats the array itself.
    for (size_t i = 0; i < length; ++i) {
      if (!ReadsBackLikeJavaScript(values[i])) return env.Null();
    }
    // A forecast's few values fit on the stack; a long array gets a heap buffer of the bound.
    char stack[1024];
    std::vector<char> heap;
    const size_t bound = 2 + length * (kFloat32JsonMax + 1);
    char* const begin = bound <= sizeof stack ? stack : (heap.resize(bound), heap.data());
    char* out = begin;
    *out++ = '[';
    for (size_t i = 0; i < length; ++i) {
      if (i > 0) *out++ = ',';
      out = WriteFloat32Json(values[i], out);
    }
    *out++ = ']';
    napi_value text = nullptr;
    NAPI_THROW_IF_FAILED(env, napi_create_string_latin1(env, begin, static_cast<size_t>(out - begin), &text),
                         Napi::Value());
    return Napi::Value(env, text);
  });
}

}  // namespace forecastd
