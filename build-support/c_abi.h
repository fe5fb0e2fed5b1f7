// The error convention of the C++ shims (distributed/csrc/shim.cpp, backbones/csrc/fused_sgd.cpp):
// every entry point runs its body through `guarded`, which turns any C++ exception into a
// heap string (NULL on success) that the Rust side frees, so that no exception unwinds into
// Rust.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace tricks_abi {

inline char* copy_message(const std::string& message) {
  char* out = static_cast<char*>(std::malloc(message.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, message.c_str(), message.size() + 1);
  }
  return out;
}

// Runs `body`, turning any exception into its message.
template <typename F>
char* guarded(F&& body) {
  try {
    body();
    return nullptr;
  } catch (const c10::Error& e) {
    // what() carries a C++ backtrace; the first line is the message.
    return copy_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return copy_message(e.what());
  } catch (...) {
    return copy_message("unknown C++ exception");
  }
}

// The tensors behind `n` handles (tch's `as_ptr` / `as_mut_ptr` give `at::Tensor*`).
inline std::vector<at::Tensor> tensor_list(const at::Tensor* const* tensors, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(*tensors[i]);
  }
  return out;
}

}  // namespace tricks_abi
