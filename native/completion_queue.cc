#include "completion_queue.h"

#include "addon_error.h"
#include "run_pool.h"
#include "runtime_log.h"

namespace forecastd {

struct CompletionQueue::Wakeup {
  uv_async_t async{};
  napi_async_cleanup_hook_handle hook = nullptr;
  // Keeps the queue alive until the cleanup hook ran (the environment's instance data may be freed first).
  std::shared_ptr<CompletionQueue> queue;

  // Closes the handle; its close callback frees this and, once registered, removes the cleanup hook (which lets
  // Node.js go on tearing the environment down).
  void Close() {
    uv_close(reinterpret_cast<uv_handle_t*>(&async), [](uv_handle_t* handle) {
      auto* closing = reinterpret_cast<Wakeup*>(handle);  // async is Wakeup's first member
      napi_async_cleanup_hook_handle registered = closing->hook;
      delete closing;
      if (registered != nullptr) napi_remove_async_cleanup_hook(registered);
    });
  }
};

std::shared_ptr<CompletionQueue> CompletionQueue::Create(Napi::Env env) {
  std::shared_ptr<CompletionQueue> queue(new CompletionQueue());
  queue->env_ = env;
  uv_loop_t* loop = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_get_uv_event_loop(env, &loop), nullptr);
  auto wakeup = std::make_unique<Wakeup>();
  if (uv_async_init(loop, &wakeup->async, &CompletionQueue::OnWakeup) != 0) {
    throw AddonError(kErrRuntimeLoad, "cannot create the completion handle on this thread's event loop");
  }
  wakeup->async.data = queue.get();
  uv_unref(reinterpret_cast<uv_handle_t*>(&wakeup->async));
  wakeup->queue = queue;
  queue->context_ = std::make_unique<Napi::AsyncContext>(env, "forecastd-completions");
  Wakeup* raw = wakeup.release();
  queue->wakeup_ = raw;
  // Node.js runs the hook when the environment goes away and keeps its loop running until the hook is removed
  // (from the handle's close callback): the handle is closed before the loop is.
  const napi_status status = napi_add_async_cleanup_hook(env, &CompletionQueue::OnCleanup, raw, &raw->hook);
  if (status != napi_ok) {
    queue->wakeup_ = nullptr;
    raw->hook = nullptr;
    raw->Close();
    NAPI_THROW_IF_FAILED(env, status, nullptr);
  }
  return queue;
}

void CompletionQueue::Dispatch(Napi::Env, std::unique_ptr<Job> job) {
  if (inFlight_++ == 0 && wakeup_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(&wakeup_->async));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++onPool_;
  }
  RunPool::Submit(shared_from_this(), std::move(job));
}

void CompletionQueue::Finish(std::unique_ptr<Job> job) {
  std::lock_guard<std::mutex> lock(mutex_);
  --onPool_;
  const bool wake = done_.empty();
  done_.push_back(std::move(job));
  if (closed_) {
    idle_.notify_all();
    return;
  }
  // The handle is only signalled under the lock and never after Shutdown set closed_ (before closing it), so it
  // cannot be used after it was closed. libuv coalesces signals sent before the loop gets to them.
  if (wake) uv_async_send(&wakeup_->async);
}

bool CompletionQueue::closed() {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

void CompletionQueue::OnWakeup(uv_async_t* async) {
  auto* queue = static_cast<CompletionQueue*>(async->data);
  try {
    queue->Drain();
  } catch (...) {
    // Only a terminating environment gets here (a worker being stopped): nothing may unwind into libuv.
  }
}

void CompletionQueue::Drain() {
  std::vector<std::unique_ptr<Job>> finished;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    finished.swap(done_);
  }
  if (finished.empty()) return;
  Napi::Env env(env_);
  Napi::HandleScope handles(env);
  // A callback scope, as for any call into JavaScript from the event loop: promise reactions (microtasks) run
  // when it closes, and async hooks see the completions.
  Napi::CallbackScope scope(env, *context_);
  for (auto& job : finished) {
    {
      Napi::HandleScope perJob(env);
      try {
        job->Complete(env);
      } catch (const std::exception&) {
        // Complete() settles its promise itself and only fails when the environment cannot create a value
        // (it is shutting down); nothing may unwind into libuv, and the remaining jobs must still complete.
      }
      job.reset();
    }
    if (--inFlight_ == 0 && wakeup_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(&wakeup_->async));
  }
  DeliverRuntimeLog(env);
}

void CompletionQueue::OnCleanup(napi_async_cleanup_hook_handle, void* data) {
  auto* wakeup = static_cast<Wakeup*>(data);
  std::shared_ptr<CompletionQueue> queue = std::move(wakeup->queue);
  if (queue) queue->Shutdown();
  wakeup->Close();
}

void CompletionQueue::Shutdown() {
  std::vector<std::unique_ptr<Job>> abandoned;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
  }
  wakeup_ = nullptr;
  // This environment's queued jobs leave the pool without running, and its running ones are asked to stop, so
  // the wait below is bounded by this environment's own runs, not by what other threads queued before them.
  std::vector<std::unique_ptr<Job>> cancelled = RunPool::Cancel(this);
  {
    std::unique_lock<std::mutex> lock(mutex_);
    onPool_ -= cancelled.size();
    idle_.wait(lock, [this] { return onPool_ == 0; });
    abandoned.swap(done_);
  }
  cancelled.clear();
  // Destroying the jobs here releases their JavaScript references while the environment still exists.
  abandoned.clear();
  try {
    context_.reset();
  } catch (const std::exception&) {
    // The environment is terminating; its async context goes with it.
  }
}

}  // namespace forecastd
