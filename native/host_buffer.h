#pragma once

#include <cstddef>
#include <memory>

namespace forecastd {

// Memory the addon owns: what a run reads its inputs from and a load parses model bytes from. JavaScript memory
// can be resized, transferred or collected while work is queued, so nothing on a run thread ever points into it.
//
// A HostBuffer can also be handed to JavaScript as an external ArrayBuffer (allocateTensorData): a caller that
// builds its batch there (the forecaster does) gives run() memory the addon already owns, and run() then holds the
// buffer instead of copying it. JavaScript may transfer or drop that ArrayBuffer at any time; the memory lives as
// long as any run or ArrayBuffer still holds it.
class HostBuffer {
 public:
  // Throws std::bad_alloc when the memory cannot be had.
  static std::shared_ptr<HostBuffer> Allocate(size_t bytes);
  // A new buffer holding a copy of `bytes` bytes at `data`.
  static std::shared_ptr<HostBuffer> CopyOf(const void* data, size_t bytes);

  // The live addon-owned buffer that holds [data, data + bytes), or null when that memory is not one of ours.
  static std::shared_ptr<HostBuffer> Owning(const void* data, size_t bytes);

  // Records that this buffer was handed to JavaScript, so Owning() can find it again.
  static void Register(const std::shared_ptr<HostBuffer>& buffer);

  ~HostBuffer();
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  HostBuffer(void* data, size_t size) : data_(data), size_(size) {}

  void* data_;
  size_t size_;
  bool registered_ = false;
};

}  // namespace forecastd
