#include "core/engine/layer_transfer.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/engine/cuda_util.h"

namespace prunerd {
namespace {

constexpr int64_t kAlign = 256;

int64_t AlignUp(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

int64_t NumBytes(const at::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

// memcpy split over a few threads: first-touch page faults of fresh memory and faults on the
// mmapped checkpoint dominate a single-threaded copy.
void ParallelCopy(void* dst, const void* src, int64_t n) {
  constexpr int64_t kChunk = 32 << 20;
  const int64_t parts = std::clamp<int64_t>(n / kChunk, 1, 4);
  const int64_t per = (n + parts - 1) / parts;
  std::vector<std::thread> helpers;
  for (int64_t i = 1; i < parts; ++i) {
    const int64_t off = i * per, len = std::min(per, n - off);
    helpers.emplace_back([=] {
      std::memcpy(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off, len);
    });
  }
  std::memcpy(dst, src, std::min(per, n));
  for (std::thread& h : helpers) h.join();
}

// A view of a staging buffer at `offset` with the dtype and shape of `like` (a view keeps the
// pinned storage, so libtorch's host allocator tracks the asynchronous copies from/to it).
at::Tensor View(const at::Tensor& bytes, int64_t offset, const at::Tensor& like) {
  return bytes.narrow(0, offset, NumBytes(like)).view(like.scalar_type()).view(like.sizes());
}

}  // namespace

// One background thread running tasks in order.
class LayerTransfer::Worker {
 public:
  Worker() : thread_([this] { Run(); }) {}
  ~Worker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  std::shared_future<void> Post(std::function<void()> fn) {
    std::packaged_task<void()> task(std::move(fn));
    std::shared_future<void> done = task.get_future().share();
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_all();
    return done;
  }

 private:
  void Run() {
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();  // exceptions land in the task's future
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> tasks_;
  bool stop_ = false;
  std::thread thread_;
};

LayerTransfer::LayerTransfer(LlamaModel& model, const at::Device& device, at::ScalarType dtype)
    : model_(model), device_(device), dtype_(dtype) {
  if (!device.is_cuda() || model.layers.empty()) return;
  int64_t max_bytes = 0;
  for (const LayerWeights& l : model.layers) {
    for (const at::Tensor& t : l.proj) {
      if (!t.is_contiguous() || t.device().type() != at::kCPU) return;  // plain copies
    }
    max_bytes = std::max(max_bytes, Offsets(l).back());
  }
  worker_ = std::make_unique<Worker>();
  staged_ = true;
  allocated_ = worker_->Post([this, max_bytes] {
    for (Slot* s : {&load_slot_, &store_slot_}) {
      void* p = CudaAllocHost(max_bytes);
      if (p == nullptr) {
        throw std::runtime_error(absl::StrCat("cannot pin ", max_bytes, " bytes of host memory"));
      }
      s->bytes = at::from_blob(
          p, {max_bytes}, [](void* q) { CudaFreeHost(q); }, at::TensorOptions().dtype(at::kByte));
    }
  });
}

bool LayerTransfer::Staged() {
  if (!staged_) return false;
  try {
    allocated_.get();
  } catch (const std::exception&) {
    staged_ = false;  // no pinned memory to be had: plain copies, slower but the job goes on
  }
  return staged_;
}

LayerTransfer::~LayerTransfer() {
  if (worker_) (void)Finish();
}

std::array<int64_t, 8> LayerTransfer::Offsets(const LayerWeights& host) const {
  std::array<int64_t, 8> off{};
  for (size_t i = 0; i < host.proj.size(); ++i)
    off[i + 1] = off[i] + AlignUp(NumBytes(host.proj[i]));
  return off;
}

void LayerTransfer::Prefetch(int64_t layer) {
  Slot& slot = load_slot_;
  slot.layer = layer;
  std::function<void()> free = slot.device_done ? slot.device_done : [] {};
  const LayerWeights& host = model_.layers[static_cast<size_t>(layer)];
  const std::array<int64_t, 8> off = Offsets(host);
  // Tasks run in order: this one runs after the allocation, which pinned slot.bytes.
  slot.host_done = worker_->Post([free, &host, off, &slot] {
    free();  // the previous load from this buffer has reached the device
    char* dst = static_cast<char*>(slot.bytes.data_ptr());
    for (size_t i = 0; i < host.proj.size(); ++i) {
      ParallelCopy(dst + off[i], host.proj[i].data_ptr(), NumBytes(host.proj[i]));
    }
  });
  pending_.push_back(slot.host_done);
}

LayerWeights LayerTransfer::Load(int64_t layer) {
  const LayerWeights& host = model_.layers[static_cast<size_t>(layer)];
  if (!Staged()) return host.To(device_, dtype_);
  Slot& slot = load_slot_;
  if (slot.layer != layer) Prefetch(layer);
  slot.host_done.get();  // rethrows a failure of the copy
  LayerWeights out;
  auto small = [&](const at::Tensor& t) { return t.to(device_, dtype_, false, /*copy=*/true); };
  out.input_norm = small(host.input_norm);
  out.post_norm = small(host.post_norm);
  const std::array<int64_t, 8> off = Offsets(host);
  for (size_t i = 0; i < host.proj.size(); ++i) {
    at::Tensor staged = View(slot.bytes, off[i], host.proj[i]);
    at::Tensor dev = staged.to(device_, staged.scalar_type(), /*non_blocking=*/true, true);
    out.proj[i] = dev.scalar_type() == dtype_ ? dev : dev.to(dtype_);
  }
  slot.device_done = CudaFence(device_.index() < 0 ? 0 : device_.index());
  if (layer + 1 < static_cast<int64_t>(model_.layers.size())) Prefetch(layer + 1);
  return out;
}

void LayerTransfer::Store(int64_t layer, const LayerWeights& device_weights) {
  LayerWeights& host = model_.layers[static_cast<size_t>(layer)];
  if (!Staged()) {
    LayerWeights stored;
    stored.input_norm = host.input_norm;  // norms never change
    stored.post_norm = host.post_norm;
    for (size_t i = 0; i < host.proj.size(); ++i) {
      stored.proj[i] = device_weights.proj[i].to(at::kCPU, host.proj[i].scalar_type(), false,
                                                 /*copy=*/true);
    }
    host = std::move(stored);
    return;
  }
  Slot& slot = store_slot_;
  if (slot.host_done.valid()) slot.host_done.get();  // the previous store has drained
  const std::array<int64_t, 8> off = Offsets(host);
  for (size_t i = 0; i < host.proj.size(); ++i) {
    at::Tensor src = device_weights.proj[i].to(host.proj[i].scalar_type()).contiguous();
    View(slot.bytes, off[i], host.proj[i]).copy_(src, /*non_blocking=*/true);
  }
  std::function<void()> copied = CudaFence(device_.index() < 0 ? 0 : device_.index());
  at::Tensor bytes = slot.bytes;
  slot.host_done = worker_->Post([copied, &host, off, bytes] {
    copied();
    LayerWeights stored;
    stored.input_norm = host.input_norm;
    stored.post_norm = host.post_norm;
    for (size_t i = 0; i < host.proj.size(); ++i) {
      stored.proj[i] = at::empty(host.proj[i].sizes(), host.proj[i].options());
      ParallelCopy(stored.proj[i].data_ptr(), static_cast<char*>(bytes.data_ptr()) + off[i],
                   NumBytes(host.proj[i]));
    }
    host = std::move(stored);
  });
  pending_.push_back(slot.host_done);
}

absl::Status LayerTransfer::Finish() {
  absl::Status status;
  for (std::shared_future<void>& f : pending_) {
    try {
      f.get();
    } catch (const std::exception& e) {
      if (status.ok()) {
        status = absl::InternalError(absl::StrCat("moving a layer to/from the host: ", e.what()));
      }
    }
  }
  pending_.clear();
  return status;
}

}  // namespace prunerd
