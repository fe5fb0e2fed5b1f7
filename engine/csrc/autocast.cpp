// Autocast for any device type and lower-precision type: what `torch.autocast(device_type,
// dtype)` does on entry and exit. tch binds only the CUDA switch (`at::autocast::set_enabled`,
// with CUDA's default type, fp16), so bf16 on the CPU (ATen's AutocastCPU kernels) and bf16
// on CUDA go through here. The op lists themselves are ATen's: an op the lists name is cast
// by the dispatcher exactly as under PyTorch's autocast.
//
// Errors follow build-support/c_abi.h.

#include <ATen/autocast_mode.h>
#include <ATen/cpu/Utils.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include "c_abi.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <cstring>
#endif

using tricks_abi::guarded;

namespace {

// CPUID leaf 0's vendor string is "GenuineIntel" (in EBX, EDX, ECX).
bool cpu_vendor_is_intel() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) {
    return false;
  }
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  return std::strcmp(vendor, "GenuineIntel") == 0;
#else
  return false;
#endif
}

}  // namespace

extern "C" {

// What `enter` replaced, for `exit` to put back.
struct tricks_autocast_prior {
  bool enabled;
  int8_t dtype;
  bool cache_enabled;
};

// torch.autocast.__enter__: turn autocast on for `device_type` (c10::DeviceType) with
// `dtype` (c10::ScalarType), one nesting level deeper, casts of leaf tensors (the weights)
// cached until the outermost exit.
char* tricks_autocast_enter(int8_t device_type, int8_t dtype, tricks_autocast_prior* prior) {
  return guarded([&] {
    auto device = static_cast<c10::DeviceType>(device_type);
    auto type = static_cast<c10::ScalarType>(dtype);
    TORCH_CHECK(at::autocast::is_autocast_available(device), "autocast: no autocast for ",
                c10::DeviceTypeName(device));
    TORCH_CHECK(type == at::kBFloat16 || type == at::kHalf,
                "autocast: the lower precision must be bfloat16 or float16, not ", type);
    prior->enabled = at::autocast::is_autocast_enabled(device);
    prior->dtype = static_cast<int8_t>(at::autocast::get_autocast_dtype(device));
    prior->cache_enabled = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_enabled(device, true);
    at::autocast::set_autocast_dtype(device, type);
    at::autocast::increment_nesting();
    at::autocast::set_autocast_cache_enabled(true);
  });
}

// torch.autocast.__exit__: the cast cache is dropped when the outermost level exits (so the
// next step casts the updated weights), then the prior state is restored.
char* tricks_autocast_exit(int8_t device_type, const tricks_autocast_prior* prior) {
  return guarded([&] {
    auto device = static_cast<c10::DeviceType>(device_type);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(device, prior->enabled);
    at::autocast::set_autocast_dtype(device, static_cast<c10::ScalarType>(prior->dtype));
    at::autocast::set_autocast_cache_enabled(prior->cache_enabled);
  });
}

// Whether an autocast region is open for `device_type` on this thread.
char* tricks_autocast_is_enabled(int8_t device_type, bool* out) {
  return guarded([&] {
    *out = at::autocast::is_autocast_enabled(static_cast<c10::DeviceType>(device_type));
  });
}

// The type an autocast region open for `device_type` on this thread casts to (c10::ScalarType),
// or -1 where none is open.
char* tricks_autocast_dtype(int8_t device_type, int8_t* out) {
  return guarded([&] {
    auto device = static_cast<c10::DeviceType>(device_type);
    *out = at::autocast::is_autocast_enabled(device)
               ? static_cast<int8_t>(at::autocast::get_autocast_dtype(device))
               : int8_t{-1};
  });
}

// What bf16 costs on this CPU, as `tricks_cpu_bf16` in engine/src/amp/autocast.rs reads it:
// 0 where oneDNN has no bf16 kernels for it (`torch.ops.mkldnn._is_mkldnn_bf16_supported()`
// is false: bf16 convolutions and matrix products fall back to ATen's generic kernels, many
// times slower than fp32); on an Intel core without AMX tiles, where its AVX-512 kernels were
// measured slower than fp32 (docs/results.md), 1 with the avx512_bf16 instructions and 3
// without them (its kernels then convert bf16 to fp32 inside); 2 otherwise (AMX, or another
// vendor's cores).
char* tricks_cpu_bf16(int8_t* out) {
  return guarded([&] {
    bool kernels = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mkldnn::_is_mkldnn_bf16_supported", "")
                       .typed<bool()>()
                       .call();
    if (!kernels) {
      *out = 0;
      return;
    }
    auto capabilities = at::cpu::get_cpu_capabilities();
    auto has = [&](const char* name) {
      auto found = capabilities.find(name);
      return found != capabilities.end() && found->second.isBool() && found->second.toBool();
    };
    if (has("amx_bf16") || !cpu_vendor_is_intel()) {
      *out = 2;
    } else {
      *out = has("avx512_bf16") ? 1 : 3;
    }
  });
}

}  // extern "C"
