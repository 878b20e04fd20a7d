// The few calls of PyTorch's distributed engine (c10d) that sk-exp's data parallel needs, behind a C ABI:
// a store (TCPStore, or a client of torchrun's agent store), a process group (Gloo; NCCL when built with
// SK_EXP_NCCL), all-reduce (sum), broadcast, barrier, and setting the process's current CUDA device; plus
// the switches tch does not expose that `crate::precision` needs (autocast's dtype per device type, cuDNN
// determinism).
// Every entry point catches C++ exceptions and hands the message back through `error` (freed by
// skdist_free_error), so a failure on one rank becomes a Rust error instead of an abort.
#include <cstdlib>
#include <cstring>
#include <string>

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef SK_EXP_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

struct SkGroup {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
};

namespace {

void set_error(char** error, const char* message) {
  if (error != nullptr) {
    *error = strdup(message);
  }
}

// Runs `body`; on a C++ exception stores its message and returns `failed`.
template <typename T, typename F>
T guarded(char** error, T failed, F body) {
  try {
    return body();
  } catch (const std::exception& e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown C++ exception in c10d");
  }
  return failed;
}

// c10d logs each failed connection attempt with a C++ stack trace on stderr; sk-exp reports the failure
// itself, in one line. PyTorch's own switch, TORCH_CPP_LOG_LEVEL, brings the logs back.
void quiet_c10d_logs() {
  if (std::getenv("TORCH_CPP_LOG_LEVEL") == nullptr) {
    FLAGS_caffe2_log_level = 3;  // only fatal messages
  }
}

std::shared_ptr<::gloo::transport::Device> gloo_device() {
  // As PyTorch: GLOO_SOCKET_IFNAME picks the network interface on machines with several.
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME")) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

extern "C" {

// Joins the group: connects to (or, with host_store, hosts) the store at host:port, keys under `prefix`,
// then builds the backend ("gloo" or "nccl"). `timeout_ms` bounds the store connection and every collective.
SkGroup* skdist_new_group(const char* backend, const char* host, uint16_t port, int rank, int world,
                          int host_store, const char* prefix, int64_t timeout_ms, char** error) {
  return guarded<SkGroup*>(error, nullptr, [&]() -> SkGroup* {
    quiet_c10d_logs();
    const std::chrono::milliseconds timeout(timeout_ms);
    c10d::TCPStoreOptions store_options;
    store_options.port = port;
    store_options.isServer = host_store != 0;
    store_options.numWorkers = host_store != 0 ? std::optional<std::size_t>(world) : std::nullopt;
    store_options.waitWorkers = false;
    store_options.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), store_options);
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    auto group = new SkGroup{store, {}};
    const std::string name(backend);
    if (name == "gloo") {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      options->devices.push_back(gloo_device());
      group->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
#ifdef SK_EXP_NCCL
    } else if (name == "nccl") {
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      group->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
#endif
    } else {
      delete group;
      throw std::runtime_error("backend " + name + " is not built into this sk-exp");
    }
    return group;
  });
}

// Sums `tensor` over the ranks, in place.
int skdist_allreduce_sum(SkGroup* group, at::Tensor* tensor, char** error) {
  return guarded<int>(error, -1, [&]() {
    std::vector<at::Tensor> tensors{*tensor};
    group->backend->allreduce(tensors)->wait();
    return 0;
  });
}

// Copies rank `root`'s `tensor` into every rank's, in place.
int skdist_broadcast(SkGroup* group, at::Tensor* tensor, int root, char** error) {
  return guarded<int>(error, -1, [&]() {
    std::vector<at::Tensor> tensors{*tensor};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    group->backend->broadcast(tensors, options)->wait();
    return 0;
  });
}

int skdist_barrier(SkGroup* group, char** error) {
  return guarded<int>(error, -1, [&]() {
    group->backend->barrier()->wait();
    return 0;
  });
}

void skdist_free_group(SkGroup* group) {
  delete group;
}

void skdist_free_error(char* error) {
  std::free(error);
}

// Makes cuda:index the process's current device (what torch.cuda.set_device does), so NCCL, streams and
// new allocations land on this rank's GPU. Needs no CUDA headers: the CUDA guard registers itself when
// libtorch_cuda is loaded.
int skdist_set_cuda_device(int index, char** error) {
  return guarded<int>(error, -1, [&]() {
    c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)
        ->setDevice(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index)));
    return 0;
  });
}

// Autocast's state for one device type (0 CPU, 1 CUDA) on the calling thread (autocast state is
// per thread): whether it is on and its lower-precision dtype (0 bfloat16, 1 float16).
int skprec_get_autocast(int cuda, int* enabled, int* half, char** error) {
  return guarded<int>(error, -1, [&]() {
    const auto type = cuda != 0 ? at::kCUDA : at::kCPU;
    *enabled = at::autocast::is_autocast_enabled(type) ? 1 : 0;
    *half = at::autocast::get_autocast_dtype(type) == at::kHalf ? 1 : 0;
    return 0;
  });
}

// Sets what skprec_get_autocast reads. Entering (`enter`) and leaving a region count autocast's nesting,
// as torch.autocast does: leaving the outermost region clears the cache of cast weights, which would
// otherwise serve the next step the casts of weights the optimizer has since changed.
int skprec_set_autocast(int cuda, int enabled, int half, int enter, char** error) {
  return guarded<int>(error, -1, [&]() {
    const auto type = cuda != 0 ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_dtype(type, half != 0 ? at::kHalf : at::kBFloat16);
    at::autocast::set_autocast_enabled(type, enabled != 0);
    if (enter != 0) {
      at::autocast::increment_nesting();
    } else if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    return 0;
  });
}

// cuDNN's algorithm choice for the process: autotuned (benchmark) or deterministic (which also makes
// PyTorch pick deterministic kernels where it has them, warning where it has none).
int skprec_set_cudnn(int benchmark, int deterministic, char** error) {
  return guarded<int>(error, -1, [&]() {
    auto& context = at::globalContext();
    context.setBenchmarkCuDNN(benchmark != 0);
    context.setDeterministicCuDNN(deterministic != 0);
    context.setDeterministicAlgorithms(deterministic != 0, /*warn_only=*/true);
    return 0;
  });
}

int skdist_has_nccl() {
#ifdef SK_EXP_NCCL
  return 1;
#else
  return 0;
#endif
}

}  // extern "C"
