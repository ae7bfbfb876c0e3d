#include "completion_queue.h"

#include "addon_state.h"
#include "run_pool.h"
#include "runtime_log.h"

namespace forecastd {

std::shared_ptr<CompletionQueue> CompletionQueue::Create(Napi::Env env) {
  std::shared_ptr<CompletionQueue> queue(new CompletionQueue());
  // No JavaScript function: CallJs drains the queue directly. The context pointer stays valid while the
  // environment lives, because the environment's instance data owns the queue.
  queue->signal_ = Signal::New(env, "forecastd-completions", 0, 1, queue.get());
  queue->signal_.Unref(env);
  return queue;
}

void CompletionQueue::Dispatch(Napi::Env env, std::unique_ptr<Job> job) {
  if (inFlight_++ == 0) signal_.Ref(env);
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
  // The signal is only touched under the lock and never after Shutdown set closed_, so it cannot be used
  // after the environment released it.
  if (wake) signal_.NonBlockingCall();
}

bool CompletionQueue::closed() {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

void CompletionQueue::CallJs(Napi::Env env, Napi::Function, CompletionQueue* queue, void*) {
  // A null env means the environment is tearing down; Shutdown already dropped the jobs.
  if (env == nullptr || queue == nullptr) return;
  try {
    queue->Drain(env);
  } catch (...) {
    // Only a terminating environment gets here (a worker being stopped): nothing may unwind into Node-API.
  }
}

void CompletionQueue::Drain(Napi::Env env) {
  std::vector<std::unique_ptr<Job>> finished;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    finished.swap(done_);
  }
  for (auto& job : finished) {
    {
      Napi::HandleScope scope(env);
      try {
        job->Complete(env);
      } catch (const std::exception&) {
        // Complete() settles its promise itself and only fails when the environment cannot create a value
        // (it is shutting down); nothing may unwind into Node-API, and the remaining jobs must still complete.
      }
      job.reset();
    }
    if (--inFlight_ == 0) {
      try {
        signal_.Unref(env);
      } catch (const std::exception&) {
        // The environment is terminating; its signal goes with it.
      }
    }
  }
  DeliverRuntimeLog(env);
}

void CompletionQueue::Shutdown() {
  std::vector<std::unique_ptr<Job>> abandoned;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
  }
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
  signal_.Release();
}

}  // namespace forecastd
