// The C ABI between Rust and c10d (the C++ core of torch.distributed inside libtorch).
//
// Every entry point catches every C++ exception and hands its message back as a heap string
// (NULL on success) that the caller frees with c10d_free_string: an exception must never
// unwind into Rust. Tensors cross as `torch::Tensor*`, which is what tch's `as_mut_ptr` gives.

#include <torch/torch.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#ifdef TRICKS_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "c_abi.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using tricks_abi::guarded;
using tricks_abi::tensor_list;

namespace {

std::chrono::milliseconds millis(int64_t ms) {
  return std::chrono::milliseconds(ms);
}

}  // namespace

struct c10d_group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  std::chrono::milliseconds timeout;
};

struct c10d_store {
  c10::intrusive_ptr<c10d::Store> store;
};

struct c10d_reducer {
  std::shared_ptr<c10d::Reducer> reducer;
};

// Differentiable sum over ranks: forward all-reduces the input, backward all-reduces the
// gradient (the gradient of a sum over ranks of per-rank losses reaches every rank's inputs).
// SyncBatchNorm's statistics pass through it.
class AllReduceSum : public torch::autograd::Function<AllReduceSum> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor input,
                            int64_t group) {
    ctx->saved_data["group"] = group;
    auto out = input.detach().clone(at::MemoryFormat::Contiguous);
    std::vector<at::Tensor> list{out};
    reinterpret_cast<c10d_group*>(group)->group->allreduce(list)->wait();
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto group = ctx->saved_data["group"].toInt();
    auto grad = grads[0].detach().clone(at::MemoryFormat::Contiguous);
    std::vector<at::Tensor> list{grad};
    reinterpret_cast<c10d_group*>(group)->group->allreduce(list)->wait();
    return {grad, at::Tensor()};
  }
};

extern "C" {

void c10d_free_string(char* s) { std::free(s); }

// A TCPStore at host:port. `is_server`: this process hosts it (port 0 picks a free port;
// read it back with c10d_store_port).
char* c10d_tcp_store_new(const char* host, int port, bool is_server, int world_size,
                         int64_t timeout_ms, c10d_store** out) {
  return guarded([&] {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = is_server;
    opts.waitWorkers = false;
    if (world_size > 0) {
      opts.numWorkers = static_cast<size_t>(world_size);
    }
    opts.timeout = millis(timeout_ms);
    opts.multiTenant = true;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    *out = new c10d_store{store};
  });
}

char* c10d_file_store_new(const char* path, int world_size, c10d_store** out) {
  return guarded([&] {
    auto store = c10::make_intrusive<c10d::FileStore>(std::string(path), world_size);
    *out = new c10d_store{store};
  });
}

int c10d_store_port(c10d_store* store) {
  auto tcp = c10::dynamic_intrusive_pointer_cast<c10d::TCPStore>(store->store);
  return tcp ? tcp->getPort() : -1;
}

void c10d_store_free(c10d_store* store) { delete store; }

// Adds `delta` to the counter `key` and returns its new value (delta 0 reads it).
char* c10d_store_add(c10d_store* store, const char* key, int64_t delta, int64_t* value) {
  return guarded([&] { *value = store->store->add(std::string(key), delta); });
}

// Joins the process group (rank `rank` of `world_size`) through `store` under `prefix`:
// Gloo for CPU tensors, and NCCL for CUDA tensors when built with it.
char* c10d_group_new(c10d_store* store, const char* prefix, int rank, int world_size,
                     int64_t timeout_ms, const char* gloo_hostname, const char* gloo_interface,
                     bool with_nccl, c10d_group** out) {
  return guarded([&] {
    auto timeout = millis(timeout_ms);
    store->store->setTimeout(timeout);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), store->store);
    auto group = c10::make_intrusive<c10d::ProcessGroup>(prefixed, rank, world_size);

    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    if (gloo_interface != nullptr && gloo_interface[0] != '\0') {
      gloo_options->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForInterface(std::string(gloo_interface)));
    } else if (gloo_hostname != nullptr && gloo_hostname[0] != '\0') {
      gloo_options->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForHostname(std::string(gloo_hostname)));
    } else {
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    auto gloo_store = c10::make_intrusive<c10d::PrefixStore>("gloo/", prefixed);
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(gloo_store, rank, world_size,
                                                            gloo_options);
    group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
    group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
    if (with_nccl) {
#ifdef TRICKS_NCCL
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      auto nccl_store = c10::make_intrusive<c10d::PrefixStore>("nccl/", prefixed);
      auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(nccl_store, rank, world_size,
                                                              nccl_options);
      group->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
      group->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
#else
      throw std::runtime_error(
          "CUDA training across processes needs NCCL, and this binary was built without it "
          "(cargo feature `nccl`)");
#endif
    }
    *out = new c10d_group{store->store, group, timeout};
  });
}

void c10d_group_free(c10d_group* group) { delete group; }

// op: 0 sum, 1 min, 2 max. In place; waits for the result.
char* c10d_allreduce(c10d_group* group, torch::Tensor** tensors, size_t n, int op) {
  return guarded([&] {
    auto list = tensor_list(tensors, n);
    c10d::AllreduceOptions opts;
    opts.reduceOp = op == 1 ? c10d::ReduceOp::MIN
                  : op == 2 ? c10d::ReduceOp::MAX
                            : c10d::ReduceOp::SUM;
    opts.timeout = group->timeout;
    for (auto& t : list) {
      std::vector<at::Tensor> one{t};
      group->group->allreduce(one, opts)->wait(group->timeout);
    }
  });
}

// Copies rank `root`'s tensors into every rank's, in flattened buckets (DDP's own start-up
// broadcast).
char* c10d_broadcast(c10d_group* group, torch::Tensor** tensors, size_t n, int root) {
  return guarded([&] {
    auto list = tensor_list(tensors, n);
    if (!list.empty()) {
      c10d::broadcast_coalesced(group->group, list, 256 << 20, root);
    }
  });
}

char* c10d_barrier(c10d_group* group) {
  return guarded([&] {
    c10d::BarrierOptions opts;
    opts.timeout = group->timeout;
    group->group->barrier(opts)->wait(group->timeout);
  });
}

// A differentiable all-reduce (sum) of `input`; the result is a new tensor.
char* c10d_allreduce_autograd(c10d_group* group, torch::Tensor* input, torch::Tensor** out) {
  return guarded([&] {
    auto result = AllReduceSum::apply(*input, reinterpret_cast<int64_t>(group));
    *out = new torch::Tensor(result);
  });
}

// DDP's gradient reducer over `params` (trainable leaf tensors): buckets of at most
// `bucket_bytes` (the first one `first_bucket_bytes`), all-reduced as soon as every
// gradient in one is ready, averaged over ranks and copied back into `.grad`.
char* c10d_reducer_new(c10d_group* group, torch::Tensor** params, size_t n,
                       int64_t bucket_bytes, int64_t first_bucket_bytes, c10d_reducer** out) {
  return guarded([&] {
    auto list = tensor_list(params, n);
    std::vector<size_t> limits{static_cast<size_t>(first_bucket_bytes),
                               static_cast<size_t>(bucket_bytes)};
    auto assignment = c10d::compute_bucket_assignment_by_size(list, limits);
    auto buckets = std::get<0>(assignment);
    // Gradients arrive roughly in reverse order of definition.
    std::reverse(buckets.begin(), buckets.end());
    std::vector<bool> sparse(n, false);
    std::unordered_map<size_t, std::string> names;
    auto reducer = std::make_shared<c10d::Reducer>(
        list, buckets, group->group, sparse, bucket_bytes,
        /*find_unused_parameters=*/false,
        // Gradients stay their own tensors, which the optimiser drops at every step
        // (`set_to_none`); the backward pass then hands over new ones for the buckets.
        /*gradient_as_bucket_view=*/false, names, first_bucket_bytes,
        /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false,
        std::vector<int64_t>{});
    *out = new c10d_reducer{reducer};
  });
}

// The next backward pass reduces gradients (call it on every rank before the backward of
// the last micro-batch of a step; without it gradients only accumulate locally).
char* c10d_reducer_prepare(c10d_reducer* reducer) {
  return guarded([&] {
    // After the first reduced step this reorders buckets by the order gradients arrived in
    // (once; every rank agrees through a broadcast from rank 0), as DDP does.
    reducer->reducer->rebuild_buckets();
    reducer->reducer->prepare_for_backward({});
  });
}

void c10d_reducer_free(c10d_reducer* reducer) {
  try {
    delete reducer;
  } catch (...) {
  }
}

}  // extern "C"
