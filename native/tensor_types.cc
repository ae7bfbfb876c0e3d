#include "tensor_types.h"

namespace forecastd {

ElementTypeInfo DescribeElementType(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return {"float32", 4, napi_float32_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return {"float64", 8, napi_float64_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return {"float16", 2, napi_uint16_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return {"bfloat16", 2, napi_uint16_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return {"int8", 1, napi_int8_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return {"uint8", 1, napi_uint8_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return {"int16", 2, napi_int16_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: return {"uint16", 2, napi_uint16_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return {"int32", 4, napi_int32_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: return {"uint32", 4, napi_uint32_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return {"int64", 8, napi_bigint64_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: return {"uint64", 8, napi_biguint64_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return {"bool", 1, napi_uint8_array};
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING: return {"string", 0, napi_uint8_array};
    default: return {"unknown", 0, napi_uint8_array};
  }
}

const char* TypedArrayName(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

}  // namespace forecastd
