#include "completion_queue.h"

#include "run_pool.h"

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
  queue->Drain(env);
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
    if (--inFlight_ == 0) signal_.Unref(env);
  }
}

void CompletionQueue::Shutdown() {
  std::vector<std::unique_ptr<Job>> abandoned;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
    // Bounded by the runs already executing; queued ones are skipped by the pool.
    idle_.wait(lock, [this] { return onPool_ == 0; });
    abandoned.swap(done_);
  }
  // Destroying the jobs here releases their JavaScript references while the environment still exists.
  abandoned.clear();
  signal_.Release();
}

}  // namespace forecastd
