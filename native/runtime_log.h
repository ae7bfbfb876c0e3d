#pragma once

#include <napi.h>

#include "onnxruntime_c_api.h"

namespace forecastd {

// ONNX Runtime's own log lines (warnings and errors, e.g. "nodes were not assigned to the requested execution
// provider") are collected here from whatever thread ORT logs on, and handed to JavaScript on a JavaScript thread
// (after each batch of completions, and by takeRuntimeLog()), where the embedder's logger gets them. The buffer is
// bounded: past it, lines are counted as dropped.

// ORT's logging callback (registered with CreateEnvWithCustomLogger); any thread.
void RecordOrtLog(void* param, OrtLoggingLevel severity, const char* category, const char* logid,
                  const char* codeLocation, const char* message);

// JavaScript thread: calls the environment's log listener (setLogListener) with the pending lines, if it has one.
void DeliverRuntimeLog(Napi::Env env);

// JavaScript thread: the pending lines as [{ level, category, message }] (plus { dropped } when lines were lost).
Napi::Array TakeRuntimeLog(Napi::Env env);

}  // namespace forecastd
