#include "host_buffer.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>

namespace forecastd {

namespace {

// 64-byte alignment: what ONNX Runtime's own allocations use, so kernels read inputs at full speed.
constexpr size_t kAlignment = 64;

// Buffers handed to JavaScript, by start address. An entry is removed before its memory is freed, so an address
// found here always belongs to a live buffer. Finalizers of worker threads' ArrayBuffers run on their own
// threads, hence the lock.
std::mutex& RegistryMutex() {
  static std::mutex* mutex = new std::mutex();  // never destroyed: finalizers may run during process exit
  return *mutex;
}
std::map<uintptr_t, std::weak_ptr<HostBuffer>>& Registry() {
  static auto* registry = new std::map<uintptr_t, std::weak_ptr<HostBuffer>>();
  return *registry;
}

}  // namespace

std::shared_ptr<HostBuffer> HostBuffer::Allocate(size_t bytes) {
  // aligned_alloc needs a size that is a multiple of the alignment; a zero-byte buffer still gets a real block.
  const size_t rounded = bytes == 0 ? kAlignment : (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded < bytes) throw std::bad_alloc();
  void* data = std::aligned_alloc(kAlignment, rounded);
  if (data == nullptr) throw std::bad_alloc();
  return std::shared_ptr<HostBuffer>(new HostBuffer(data, bytes));
}

std::shared_ptr<HostBuffer> HostBuffer::CopyOf(const void* data, size_t bytes) {
  std::shared_ptr<HostBuffer> buffer = Allocate(bytes);
  if (bytes > 0) std::memcpy(buffer->data_, data, bytes);
  return buffer;
}

void HostBuffer::Register(const std::shared_ptr<HostBuffer>& buffer) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry()[reinterpret_cast<uintptr_t>(buffer->data_)] = buffer;
  buffer->registered_ = true;
}

std::shared_ptr<HostBuffer> HostBuffer::Owning(const void* data, size_t bytes) {
  if (data == nullptr) return nullptr;
  const auto address = reinterpret_cast<uintptr_t>(data);
  std::lock_guard<std::mutex> lock(RegistryMutex());
  auto& registry = Registry();
  auto it = registry.upper_bound(address);
  if (it == registry.begin()) return nullptr;
  --it;
  std::shared_ptr<HostBuffer> buffer = it->second.lock();
  if (buffer == nullptr) return nullptr;
  const uintptr_t start = it->first;
  if (address < start || address - start > buffer->size_ || bytes > buffer->size_ - (address - start)) return nullptr;
  return buffer;
}

HostBuffer::~HostBuffer() {
  if (registered_) {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    auto& registry = Registry();
    auto it = registry.find(reinterpret_cast<uintptr_t>(data_));
    // Only this buffer's own (now expired) entry: a new buffer at the same address replaces it only after this
    // memory is freed below.
    if (it != registry.end() && it->second.expired()) registry.erase(it);
  }
  std::free(data_);
}

}  // namespace forecastd
