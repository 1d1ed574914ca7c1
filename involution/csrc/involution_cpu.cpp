// Involution forward and backward on the CPU, fused and cache-friendly.
//
// Plain C++ with a C interface and no PyTorch headers, so it compiles in
// about a second (involution/_cpu.py builds it on first use and loads it with
// ctypes). Tensors arrive contiguous:
//   input  (B, C, H, W)      kernel (B, G, K, K, H_out, W_out)
//   output (B, C, H_out, W_out)
//
// Work is split into independent units, one per (batch, group) pair: a unit
// reads its group's C/G input planes and its own kernels and writes only its
// own output (or gradient) planes, so threads never share a write.
//
// Inside a unit the loops run over output rows, then the K x K offsets, then
// the channels of the group, then the output columns. The innermost loop is a
// contiguous multiply-add that the compiler vectorises, the kernel row is
// loaded once and reused by every channel of the group (the "shared across
// channels" of involution), and the group's output rows stay in L1 cache for
// all K*K offsets. Nothing of size K*K times the input is ever allocated.

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

struct Geometry {
  int64_t batch, channels, groups, kernel, height, width, out_h, out_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;

  explicit Geometry(const int64_t* g)
      : batch(g[0]), channels(g[1]), groups(g[2]), kernel(g[3]), height(g[4]), width(g[5]),
        out_h(g[6]), out_w(g[7]), stride_h(g[8]), stride_w(g[9]), pad_h(g[10]), pad_w(g[11]),
        dil_h(g[12]), dil_w(g[13]) {}

  int64_t group_channels() const { return channels / groups; }
  int64_t in_plane() const { return height * width; }
  int64_t out_plane() const { return out_h * out_w; }
  int64_t kernel_block() const { return kernel * kernel * out_plane(); }
};

// Output columns [lo, hi) whose input column j*stride + offset lies inside
// the image; the columns outside it would read zero padding and are skipped.
struct ColumnRange {
  int64_t offset, lo, hi;
};

ColumnRange valid_columns(const Geometry& g, int64_t v) {
  const int64_t offset = v * g.dil_w - g.pad_w;
  const int64_t s = g.stride_w;
  const int64_t lo = offset >= 0 ? 0 : (-offset + s - 1) / s;
  const int64_t last = g.width - 1 - offset;  // largest j*s allowed
  const int64_t hi = last < 0 ? 0 : std::min(g.out_w, last / s + 1);
  return {offset, std::min(lo, hi), hi};
}

// out[j] += weight[j] * in[j*stride + offset] for j in [lo, hi).
template <typename T>
inline void multiply_add_row(T* __restrict out, const T* __restrict weight,
                             const T* __restrict in, const ColumnRange& cols, int64_t stride) {
  if (stride == 1) {
    for (int64_t j = cols.lo; j < cols.hi; ++j) out[j] += weight[j] * in[j + cols.offset];
  } else {
    for (int64_t j = cols.lo; j < cols.hi; ++j) out[j] += weight[j] * in[j * stride + cols.offset];
  }
}

// in[j*stride + offset] += weight[j] * grad[j]: the transpose of the row above.
template <typename T>
inline void scatter_add_row(T* __restrict in, const T* __restrict weight,
                            const T* __restrict grad, const ColumnRange& cols, int64_t stride) {
  if (stride == 1) {
    for (int64_t j = cols.lo; j < cols.hi; ++j) in[j + cols.offset] += weight[j] * grad[j];
  } else {
    for (int64_t j = cols.lo; j < cols.hi; ++j) in[j * stride + cols.offset] += weight[j] * grad[j];
  }
}

// Calls body(b, group, channel0) for every unit, split over threads.
template <typename Body>
void for_each_unit(const Geometry& g, int num_threads, Body body) {
  const int64_t units = g.batch * g.groups;
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(num_threads, units));
  auto run_range = [&](int64_t first, int64_t last) {
    for (int64_t unit = first; unit < last; ++unit) {
      const int64_t b = unit / g.groups, group = unit % g.groups;
      body(b, group, group * g.group_channels());
    }
  };
  if (workers == 1) {
    run_range(0, units);
    return;
  }
  std::vector<std::thread> threads;
  threads.reserve(workers - 1);
  const int64_t per_worker = (units + workers - 1) / workers;
  for (int64_t w = 1; w < workers; ++w) {
    const int64_t first = std::min(units, w * per_worker), last = std::min(units, first + per_worker);
    threads.emplace_back(run_range, first, last);
  }
  run_range(0, std::min(units, per_worker));  // this thread takes the first share
  for (auto& t : threads) t.join();
}

template <typename T>
void forward(const T* input, const T* kernel, T* output, const Geometry& g, int num_threads) {
  const int64_t gc = g.group_channels(), in_plane = g.in_plane(), out_plane = g.out_plane();
  for_each_unit(g, num_threads, [&](int64_t b, int64_t group, int64_t c0) {
    const T* x = input + (b * g.channels + c0) * in_plane;
    const T* k = kernel + (b * g.groups + group) * g.kernel_block();
    T* out = output + (b * g.channels + c0) * out_plane;
    std::fill(out, out + gc * out_plane, T(0));
    for (int64_t i = 0; i < g.out_h; ++i) {
      for (int64_t u = 0; u < g.kernel; ++u) {
        const int64_t row = i * g.stride_h + u * g.dil_h - g.pad_h;
        if (row < 0 || row >= g.height) continue;  // zero padding contributes nothing
        for (int64_t v = 0; v < g.kernel; ++v) {
          const ColumnRange cols = valid_columns(g, v);
          const T* weight = k + ((u * g.kernel + v) * g.out_h + i) * g.out_w;
          for (int64_t c = 0; c < gc; ++c) {
            multiply_add_row(out + c * out_plane + i * g.out_w, weight,
                             x + c * in_plane + row * g.width, cols, g.stride_w);
          }
        }
      }
    }
  });
}

// Both gradients in one pass over the same loops. grad_input and
// grad_kernel arrive zero-filled; either may be null when not needed.
template <typename T>
void backward(const T* input, const T* kernel, const T* grad_output, T* grad_input,
              T* grad_kernel, const Geometry& g, int num_threads) {
  const int64_t gc = g.group_channels(), in_plane = g.in_plane(), out_plane = g.out_plane();
  for_each_unit(g, num_threads, [&](int64_t b, int64_t group, int64_t c0) {
    const T* x = input + (b * g.channels + c0) * in_plane;
    const T* go = grad_output + (b * g.channels + c0) * out_plane;
    const int64_t k_start = (b * g.groups + group) * g.kernel_block();
    const T* k = kernel + k_start;
    T* gx = grad_input ? grad_input + (b * g.channels + c0) * in_plane : nullptr;
    T* gk = grad_kernel ? grad_kernel + k_start : nullptr;
    for (int64_t i = 0; i < g.out_h; ++i) {
      for (int64_t u = 0; u < g.kernel; ++u) {
        const int64_t row = i * g.stride_h + u * g.dil_h - g.pad_h;
        if (row < 0 || row >= g.height) continue;
        for (int64_t v = 0; v < g.kernel; ++v) {
          const ColumnRange cols = valid_columns(g, v);
          const int64_t k_row = ((u * g.kernel + v) * g.out_h + i) * g.out_w;
          for (int64_t c = 0; c < gc; ++c) {
            const T* go_row = go + c * out_plane + i * g.out_w;
            const int64_t in_row = c * in_plane + row * g.width;
            // d out / d kernel = input, summed over the group's channels.
            if (gk) multiply_add_row(gk + k_row, go_row, x + in_row, cols, g.stride_w);
            // d out / d input = kernel, scattered back to the input pixel.
            if (gx) scatter_add_row(gx + in_row, k + k_row, go_row, cols, g.stride_w);
          }
        }
      }
    }
  });
}

}  // namespace

extern "C" {

void involution_forward_f32(const float* input, const float* kernel, float* output,
                            const int64_t* geometry, int num_threads) {
  forward(input, kernel, output, Geometry(geometry), num_threads);
}

void involution_forward_f64(const double* input, const double* kernel, double* output,
                            const int64_t* geometry, int num_threads) {
  forward(input, kernel, output, Geometry(geometry), num_threads);
}

void involution_backward_f32(const float* input, const float* kernel, const float* grad_output,
                             float* grad_input, float* grad_kernel, const int64_t* geometry,
                             int num_threads) {
  backward(input, kernel, grad_output, grad_input, grad_kernel, Geometry(geometry), num_threads);
}

void involution_backward_f64(const double* input, const double* kernel,
                             const double* grad_output, double* grad_input, double* grad_kernel,
                             const int64_t* geometry, int num_threads) {
  backward(input, kernel, grad_output, grad_input, grad_kernel, Geometry(geometry), num_threads);
}

}  // extern "C"
