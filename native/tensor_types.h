#pragma once

#include <cstddef>
#include <string>

#include <napi.h>

#include "onnxruntime_c_api.h"

namespace forecastd {

// How an ONNX tensor element type appears in JavaScript.
struct ElementTypeInfo {
  const char* name;            // TensorElementType in src/runtime/types.ts
  size_t byteSize;             // 0: no numeric typed array carries it (strings, sub-byte and complex types)
  napi_typedarray_type array;  // the typed array holding its values (float16/bfloat16 as raw uint16 bits)
};

ElementTypeInfo DescribeElementType(ONNXTensorElementDataType type);

// The JavaScript name of a typed array type, for error messages ("Float32Array").
const char* TypedArrayName(napi_typedarray_type type);

}  // namespace forecastd
