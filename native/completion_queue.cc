#include "completion_queue.h"

#include <poll.h>

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include "addon_error.h"
#include "cpu_relax.h"
#include "run_pool.h"
#include "runtime_log.h"

namespace forecastd {

namespace {
std::atomic<unsigned> g_ioPollMicros{0};
}  // namespace

void CompletionQueue::SetIoPoll(unsigned microseconds) { g_ioPollMicros.store(microseconds, std::memory_order_relaxed); }

unsigned CompletionQueue::IoPoll() { return g_ioPollMicros.load(std::memory_order_relaxed); }

struct CompletionQueue::Wakeup {
  uv_async_t async{};
  // Runs before the loop sleeps for I/O: see OnPrepare.
  uv_prepare_t prepare{};
  bool prepareOpen = false;
  int closesPending = 0;
  napi_async_cleanup_hook_handle hook = nullptr;
  CompletionQueue* owner = nullptr;
  // Keeps the queue alive until the cleanup hook ran (the environment's instance data may be freed first).
  std::shared_ptr<CompletionQueue> queue;

  // Closes the handles; the last close callback frees this and, once registered, removes the cleanup hook
  // (which lets Node.js go on tearing the environment down).
  void Close() {
    const uv_close_cb closed = [](uv_handle_t* handle) {
      auto* closing = static_cast<Wakeup*>(handle->data);
      if (--closing->closesPending > 0) return;
      napi_async_cleanup_hook_handle registered = closing->hook;
      delete closing;
      if (registered != nullptr) napi_remove_async_cleanup_hook(registered);
    };
    closesPending = prepareOpen ? 2 : 1;
    if (prepareOpen) uv_close(reinterpret_cast<uv_handle_t*>(&prepare), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&async), closed);
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
  wakeup->owner = queue.get();
  wakeup->async.data = wakeup.get();
  uv_unref(reinterpret_cast<uv_handle_t*>(&wakeup->async));
  // Without it completions are only slower to arrive: a failure here is not an error.
  if (uv_prepare_init(loop, &wakeup->prepare) == 0) {
    wakeup->prepareOpen = true;
    wakeup->prepare.data = wakeup.get();
    uv_prepare_start(&wakeup->prepare, &CompletionQueue::OnPrepare);
    uv_unref(reinterpret_cast<uv_handle_t*>(&wakeup->prepare));
  }
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
  // After the signal: once OnPrepare sees this, the loop's poll returns at once.
  anyDone_.store(true, std::memory_order_release);
}

void CompletionQueue::OnPrepare(uv_prepare_t* prepare) {
  CompletionQueue* queue = static_cast<Wakeup*>(prepare->data)->owner;
  if (queue->wakeup_ == nullptr) return;
  // The loop's last turn, from the end of the previous OnPrepare to now, was all work when its poll for I/O
  // could not sleep (something was ready or done when that OnPrepare ended). Otherwise it may have slept: the
  // turn counts as 0 ns, never as saturated.
  const int64_t turnNanos = queue->loopAwake_ ? static_cast<int64_t>(uv_hrtime() - queue->prepareEnd_) : 0;
  const Poll outcome = queue->inFlight_ > 0 ? queue->AwaitRun(prepare->loop) : queue->AwaitRequest(prepare->loop);
  queue->loopAwake_ = outcome != Poll::kSkipped && outcome != Poll::kTimedOut;
  switch (outcome) {
    case Poll::kDoneAtOnce:
    case Poll::kReadyAtOnce:
      queue->NoteTurn(turnNanos >= kSaturatedTurnNanos);
      break;
    case Poll::kReady:
    case Poll::kTimedOut:
      queue->NoteTurn(false);  // this thread waited
      break;
    case Poll::kLoopBusy:
    case Poll::kSkipped:
      break;
  }
  queue->prepareEnd_ = uv_hrtime();
}

void CompletionQueue::NoteTurn(bool saturated) {
  if (!saturated) {
    saturatedTurns_ = 0;
  } else if (saturatedTurns_ + 1 >= kSaturatedTurnsInARow) {
    saturatedTurns_ = kSaturatedTurnsInARow;
    RunPool::NoteCallerSaturated();
  } else {
    ++saturatedTurns_;
  }
}

template <typename Done>
CompletionQueue::Poll CompletionQueue::PollUntil(uv_loop_t* loop, int64_t nanos, Done done) {
  uv_update_time(loop);
  const int timeoutMs = uv_backend_timeout(loop);
  // The loop will not sleep anyway (immediates, pending callbacks, a timer due now): nothing to save.
  if (timeoutMs == 0) return Poll::kLoopBusy;
  // A timer is due in (timeoutMs - 1, timeoutMs] milliseconds: poll only in the whole milliseconds before it.
  if (timeoutMs > 0) nanos = std::min<int64_t>(nanos, (int64_t{timeoutMs} - 1) * 1000000);
  if (nanos <= 0) return Poll::kSkipped;
  const int backend = uv_backend_fd(loop);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(nanos);
  Poll result = Poll::kTimedOut;
  for (unsigned turns = 0;; ++turns) {
    if (done()) {
      result = turns == 0 ? Poll::kDoneAtOnce : Poll::kReady;
      break;
    }
    if ((turns & 63U) == 0) {
      // Anything for the loop to do (a request, a timer's fd, a finished run's signal): stop and let it poll.
      pollfd ready{backend, POLLIN, 0};
      if (backend >= 0 && poll(&ready, 1, 0) > 0) {
        result = turns == 0 ? Poll::kReadyAtOnce : Poll::kReady;
        break;
      }
      if (turns != 0) {
        if (std::chrono::steady_clock::now() >= deadline) break;
        // Whatever else wants this CPU (a client on the same machine) goes first.
        sched_yield();
      }
    }
    CpuRelax();
  }
  uv_update_time(loop);
  return result;
}

CompletionQueue::Poll CompletionQueue::AwaitRun(uv_loop_t* loop) {
  if (anyDone_.load(std::memory_order_acquire)) return Poll::kDoneAtOnce;
  int64_t budget = kShortRunNanos;
  if (recentRunNanos_ > kShortRunNanos) {
    if (recentRunNanos_ > kLongestAwaitNanos || RunPool::BusyThreads() >= RunPool::Cpus()) return Poll::kSkipped;
    budget = std::min(2 * recentRunNanos_, kLongestAwaitNanos);
  }
  return PollUntil(loop, budget, [this] { return anyDone_.load(std::memory_order_acquire); });
}

CompletionQueue::Poll CompletionQueue::AwaitRequest(uv_loop_t* loop) {
  const unsigned micros = IoPoll();
  if (micros == 0) return Poll::kSkipped;
  if (idleMisses_ >= kIdleMissesBeforePause) {
    ++idleMisses_;
    if ((idleMisses_ - kIdleMissesBeforePause) % kIdleProbeEvery != 0) return Poll::kSkipped;
  }
  const Poll outcome = PollUntil(loop, int64_t{micros} * 1000, [] { return false; });
  if (outcome == Poll::kReadyAtOnce || outcome == Poll::kReady) {
    idleMisses_ = 0;
  } else if (idleMisses_ < kIdleMissesBeforePause) {
    ++idleMisses_;
  }
  return outcome;
}

bool CompletionQueue::closed() {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

void CompletionQueue::OnWakeup(uv_async_t* async) {
  auto* queue = static_cast<Wakeup*>(async->data)->owner;
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
    anyDone_.store(false, std::memory_order_relaxed);
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
      // A moving average of how long runs take, for AwaitRun.
      recentRunNanos_ += (job->executeNanos - recentRunNanos_) / 4;
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
