// Involution forward and backward on the CPU, vectorised across channels.
//
// Plain C++ with a C interface and no PyTorch headers, so it compiles in
// about a second (involution/ops/cpu.py builds it on first use and loads it with
// ctypes). Tensors come with their strides, so both memory formats work
// without copies: NCHW and channels-last (NHWC), which is faster for the
// convolutions around an involution on many CPUs.
//   input  (B, C, H, W)      kernel (B, G, K, K, H_out, W_out)
//   output (B, C, H_out, W_out)
//
// The idea: a pixel's kernel value is shared by all C/G channels of its
// group, so the natural vector is a run of channels, not a run of pixels.
// Work is split into independent units, one per (batch, group) pair; a unit
// first copies its group's input into a small channels-last buffer
// (H + 2p, W + 2p, C/G) with a zero border, which fits in the L2 cache. Then
// for every output pixel
//     acc[0..16) += kernel[u, v, pixel] * padded[row + u*d, col + v*d, 0..16)
// is one broadcast and one fused multiply-add on a 16-channel vector, for all
// K*K offsets, with no bounds checks (the border holds the zero padding) and
// the sums in registers. Channels are handled in blocks of 16 (the group is
// padded with zero channels up to a multiple of 16), and four pixels are
// summed side by side so that consecutive multiply-adds do not wait on each
// other. Units never share a write, so threads need no locks.
//
// float16 and bfloat16 tensors are read and written in their own format, but
// everything in between is float32: the packed tiles, the products and the
// sums (see Storage), so the only roundings are of the inputs and outputs.
//
// Compiled with -fopenmp when the compiler supports it (see for_each_unit).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// 16-bit floating-point storage, as raw bits (no compiler support needed).
struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };

inline float bits_to_float(uint32_t bits) { float f; std::memcpy(&f, &bits, 4); return f; }
inline uint32_t float_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

// How a storage type S is computed with: Compute is the arithmetic type, load and
// store convert (round to nearest even on the way back).
template <typename S>
struct Storage {
  using Compute = S;
  static Compute load(S value) { return value; }
  static S store(Compute value) { return value; }
};

template <>
struct Storage<BFloat16> {
  using Compute = float;
  static float load(BFloat16 value) { return bits_to_float(uint32_t(value.bits) << 16); }
  static BFloat16 store(float value) {
    const uint32_t u = float_to_bits(value);
    if ((u & 0x7fffffffu) > 0x7f800000u) return {uint16_t((u >> 16) | 0x40)};  // quiet NaN
    return {uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
  }
};

template <>
struct Storage<Half> {
  using Compute = float;
#ifdef __FLT16_MAX__  // the compiler has _Float16 (F16C instructions on x86)
  static float load(Half value) { _Float16 h; std::memcpy(&h, &value, 2); return float(h); }
  static Half store(float value) {
    const _Float16 h = static_cast<_Float16>(value);
    Half out; std::memcpy(&out, &h, 2); return out;
  }
#else
  static float load(Half value) {
    const uint32_t sign = uint32_t(value.bits & 0x8000u) << 16;
    uint32_t exponent = (value.bits >> 10) & 0x1fu, mantissa = value.bits & 0x3ffu;
    if (exponent == 0x1f) return bits_to_float(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
      const float magnitude = float(mantissa) * 5.9604644775390625e-8f;
      return sign ? -magnitude : magnitude;
    }
    return bits_to_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
  }
  static Half store(float value) {
    const uint32_t u = float_to_bits(value), sign = (u >> 16) & 0x8000u;
    const uint32_t magnitude = u & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return {uint16_t(sign | 0x7e00u)};        // NaN
    if (magnitude >= 0x477ff000u) return {uint16_t(sign | 0x7c00u)};       // overflow: inf
    if (magnitude < 0x38800000u) {  // subnormal or zero: round to a multiple of 2^-24
      const float scaled = bits_to_float(magnitude) * 16777216.0f;       // exact
      const float rounded = __builtin_nearbyintf(scaled);                  // to nearest even
      return {uint16_t(sign | uint32_t(rounded))};
    }
    const uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
    return {uint16_t(sign | ((rounded - 0x38000000u) >> 13))};
  }
#endif
};

template <typename S>
using ComputeOf = typename Storage<S>::Compute;

constexpr int64_t kBlock = 16;   // channels per vector block
constexpr int64_t kPixels = 4;   // output pixels summed side by side

// The sizes of one call, filled in by cpu.py through a ctypes.Structure
// with the same fields in the same order.
struct Geometry {
  int64_t batch, channels, groups, kernel, height, width, out_h, out_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;

  int64_t group_channels() const { return channels / groups; }
  // Channels per pixel in the packed buffers: C/G rounded up to whole blocks.
  int64_t packed_channels() const { return (group_channels() + kBlock - 1) / kBlock * kBlock; }
  int64_t padded_h() const { return height + 2 * pad_h; }
  int64_t padded_w() const { return width + 2 * pad_w; }
  int64_t padded_size() const { return padded_h() * padded_w() * packed_channels(); }
};

// One unit's slice of a (B, C, H, W) tensor: element (c, h, w) of the group.
template <typename T>
struct Map {
  T* data;
  int64_t c, h, w;  // strides in elements
  T& at(int64_t channel, int64_t row, int64_t col) const {
    return data[channel * c + row * h + col * w];
  }
};

// One unit's slice of a (B, G, K, K, H_out, W_out) kernel tensor.
template <typename T>
struct Kernels {
  T* data;
  int64_t u, v, h, w;  // strides in elements
  // Where each offset's plane starts, in the order tap = u*K + v.
  std::vector<int64_t> tap_offsets(int64_t k) const {
    std::vector<int64_t> offsets;
    for (int64_t a = 0; a < k; ++a)
      for (int64_t b = 0; b < k; ++b) offsets.push_back(a * u + b * v);
    return offsets;
  }
  T* pixel(int64_t row, int64_t col) const { return data + row * h + col * w; }
};

// The strides (in elements) of every tensor of a call, also a ctypes.Structure
// in cpu.py. A forward call fills input, kernel and output; a backward call
// input, kernel, grad_output and the gradients it asks for.
struct Strides {
  int64_t input[4], kernel[6], output[4];
  int64_t grad_output[4], grad_input[4], grad_kernel[6];
};

template <typename T>
Map<T> unit_map(T* base, const int64_t* s, const Geometry& g, int64_t b, int64_t group) {
  return {base + b * s[0] + group * g.group_channels() * s[1], s[1], s[2], s[3]};
}

template <typename T>
Kernels<T> unit_kernels(T* base, const int64_t* s, int64_t b, int64_t group) {
  return {base + b * s[0] + group * s[1], s[2], s[3], s[4], s[5]};
}

// A zero-filled scratch buffer whose data starts on a 64-byte boundary, so
// that a block of 16 floats is exactly one cache line (an unaligned block
// would straddle two, and every load would touch both).
template <typename T>
class Buffer {
 public:
  void zero(int64_t size) {
    constexpr int64_t kAlign = 64;
    storage_.assign(size + kAlign / sizeof(T), T(0));
    const auto address = reinterpret_cast<std::uintptr_t>(storage_.data());
    data_ = storage_.data() + (kAlign - address % kAlign) % kAlign / sizeof(T);
  }
  T* data() { return data_; }
  const T* data() const { return data_; }

 private:
  std::vector<T> storage_;
  T* data_ = nullptr;
};

// Where pixel (row, col) of the image sits in a packed buffer.
inline int64_t packed_index(const Geometry& g, int64_t row, int64_t col) {
  return ((row + g.pad_h) * g.padded_w() + col + g.pad_w) * g.packed_channels();
}

// Calls copy(channel, row, col, packed position) for every element of the
// group, walking memory in the order the source map is laid out in.
template <typename T, typename Copy>
void for_each_element(const Geometry& g, const Map<T>& map, Copy copy) {
  const int64_t gc = g.group_channels();
  if (map.c <= map.w) {  // channels-last: channels are the fastest index
    for (int64_t h = 0; h < g.height; ++h)
      for (int64_t w = 0; w < g.width; ++w)
        for (int64_t c = 0; c < gc; ++c) copy(c, h, w, packed_index(g, h, w) + c);
  } else {
    for (int64_t c = 0; c < gc; ++c)
      for (int64_t h = 0; h < g.height; ++h)
        for (int64_t w = 0; w < g.width; ++w) copy(c, h, w, packed_index(g, h, w) + c);
  }
}

// The group's input into the zero-bordered channels-last buffer (in the compute type)...
template <typename S>
void pack(const Geometry& g, const Map<const S>& input, Buffer<ComputeOf<S>>& packed) {
  packed.zero(g.padded_size());
  ComputeOf<S>* out = packed.data();
  for_each_element(g, input, [&](int64_t c, int64_t h, int64_t w, int64_t at) {
    out[at] = Storage<S>::load(input.at(c, h, w));
  });
}

// ... and a buffer's interior back out (for the input gradient).
template <typename S>
void unpack(const Geometry& g, const Buffer<ComputeOf<S>>& packed, const Map<S>& output) {
  const ComputeOf<S>* in = packed.data();
  for_each_element(g, output, [&](int64_t c, int64_t h, int64_t w, int64_t at) {
    output.at(c, h, w) = Storage<S>::store(in[at]);
  });
}

// Where output pixel (i, j) reads the packed input at kernel offset (0, 0)...
inline int64_t window_origin(const Geometry& g, int64_t i, int64_t j) {
  return (i * g.stride_h * g.padded_w() + j * g.stride_w) * g.packed_channels();
}

// ... and how far from there it reads at each offset, in tap order u*K + v.
// Tables like this one are made once per unit, so that the inner loops do no
// index arithmetic beyond an addition.
std::vector<int64_t> window_steps(const Geometry& g) {
  std::vector<int64_t> steps;
  for (int64_t u = 0; u < g.kernel; ++u)
    for (int64_t v = 0; v < g.kernel; ++v)
      steps.push_back((u * g.dil_h * g.padded_w() + v * g.dil_w) * g.packed_channels());
  return steps;
}

// kLanes values of type T as one vector value (GCC/Clang vector extension):
// the compiler maps it onto whatever the CPU has (one AVX-512 register, two
// AVX2 registers, ...). Loads and stores go through memcpy, which is how C++
// spells an unaligned vector access.
template <typename T, int64_t kLanes>
struct Lanes {
  static constexpr int64_t kCount = kLanes;
  typedef T Vec __attribute__((vector_size(kLanes * sizeof(T))));
  static Vec load(const T* p) { Vec v; std::memcpy(&v, p, sizeof v); return v; }
  static void store(T* p, const Vec& v) { std::memcpy(p, &v, sizeof v); }
  static T sum(const Vec& v) {
    T total = 0;
    for (int64_t c = 0; c < kLanes; ++c) total += v[c];
    return total;
  }
};

// A block of 16 channels.
template <typename T>
using Block = Lanes<T, kBlock>;

// The widest vector the CPU holds in one register. The forward's sums are kept
// in vectors of this width: in a wider vector type (a 16-float Block on a CPU
// with 8-float registers) GCC 12 kept them in memory, which made the forward
// almost three times as slow. Each lane still sums its own channel over the
// offsets in the same order, so the results are those of the 16-float vectors
// (bit for bit, checked on an AVX2 CPU in every dtype).
#if defined(__AVX512F__)
constexpr int64_t kRegisterBytes = 64;
#elif defined(__AVX__)
constexpr int64_t kRegisterBytes = 32;
#else
constexpr int64_t kRegisterBytes = 16;
#endif

template <typename T>
using Register = Lanes<T, std::min<int64_t>(kBlock, kRegisterBytes / sizeof(T))>;

// Kept out of line, like backward_unit (see there).
template <typename S>
[[gnu::noinline]] void forward_unit(const Geometry& g, const Kernels<const S>& kernel,
                                    const Buffer<ComputeOf<S>>& x, const Map<S>& out) {
  using T = ComputeOf<S>;
  using Vec = typename Register<T>::Vec;
  constexpr int64_t lanes = Register<T>::kCount, parts = kBlock / lanes;
  const int64_t gc = g.group_channels(), taps = g.kernel * g.kernel;
  const std::vector<int64_t> steps = window_steps(g), planes = kernel.tap_offsets(g.kernel);
  for (int64_t i = 0; i < g.out_h; ++i)
    for (int64_t j0 = 0; j0 < g.out_w; j0 += kPixels)
      for (int64_t block = 0; block < g.packed_channels(); block += kBlock) {
        // Pixels past the row's end repeat the last one and are not stored:
        // the loops below keep a fixed shape, which keeps the sums in registers.
        const S* weight[kPixels];
        const T* window[kPixels];
        for (int64_t p = 0; p < kPixels; ++p) {
          const int64_t j = std::min(j0 + p, g.out_w - 1);
          weight[p] = kernel.pixel(i, j);
          window[p] = x.data() + window_origin(g, i, j) + block;
        }
        Vec acc[kPixels][parts] = {};
        for (int64_t tap = 0; tap < taps; ++tap)
          for (int64_t p = 0; p < kPixels; ++p) {
            const T w = Storage<S>::load(weight[p][planes[tap]]);
            for (int64_t part = 0; part < parts; ++part)
              acc[p][part] += w * Register<T>::load(window[p] + steps[tap] + part * lanes);
          }
        for (int64_t p = 0; p < kPixels && j0 + p < g.out_w; ++p)
          for (int64_t c = 0; c < kBlock && block + c < gc; ++c)
            out.at(block + c, i, j0 + p) = Storage<S>::store(acc[p][c / lanes][c % lanes]);
      }
}

// Both gradients in one pass over the same loops; either may be skipped.
//   grad_kernel[u, v, i, j] = sum_c grad_out[c, i, j] * x[c, window]
//   grad_x[c, window]      += kernel[u, v, i, j] * grad_out[c, i, j]
// A kernel gradient is summed over all the group's channel blocks in the
// compute type before it is stored once.
// Kept out of line: inlined into for_each_unit's threaded loop, GCC 12 compiled
// it about three times slower (with the same results, bit for bit).
template <typename S>
[[gnu::noinline]] void backward_unit(const Geometry& g, const Kernels<const S>& kernel,
                                     const Buffer<ComputeOf<S>>& x, const Map<const S>& grad_out,
                                     Buffer<ComputeOf<S>>* grad_x, const Kernels<S>* grad_kernel) {
  using T = ComputeOf<S>;
  using Vec = typename Block<T>::Vec;
  const int64_t gc = g.group_channels(), taps = g.kernel * g.kernel;
  const std::vector<int64_t> steps = window_steps(g), planes = kernel.tap_offsets(g.kernel);
  const std::vector<int64_t> grad_planes =
      grad_kernel ? grad_kernel->tap_offsets(g.kernel) : std::vector<int64_t>();
  std::vector<T> kernel_sums(grad_kernel ? kPixels * taps : 0);
  for (int64_t i = 0; i < g.out_h; ++i)
    for (int64_t j0 = 0; j0 < g.out_w; j0 += kPixels) {
      std::fill(kernel_sums.begin(), kernel_sums.end(), T(0));
      for (int64_t block = 0; block < g.packed_channels(); block += kBlock) {
        // Zero output gradients for pixels past the row's end (and for the
        // padding channels) make their contributions vanish.
        Vec go[kPixels] = {};
        int64_t origin[kPixels];
        const S* weights[kPixels];
        for (int64_t p = 0; p < kPixels; ++p) {
          const int64_t j = std::min(j0 + p, g.out_w - 1);
          origin[p] = window_origin(g, i, j) + block;
          weights[p] = kernel.pixel(i, j);
          if (j0 + p >= g.out_w) continue;
          for (int64_t c = 0; c < kBlock && block + c < gc; ++c)
            go[p][c] = Storage<S>::load(grad_out.at(block + c, i, j));
        }
        for (int64_t tap = 0; tap < taps; ++tap)
          for (int64_t p = 0; p < kPixels; ++p) {
            const int64_t at = origin[p] + steps[tap];
            if (grad_kernel)
              kernel_sums[tap * kPixels + p] +=
                  Block<T>::sum(go[p] * Block<T>::load(x.data() + at));
            if (grad_x) {
              T* gx = grad_x->data() + at;
              Block<T>::store(gx, Block<T>::load(gx) +
                                      Storage<S>::load(weights[p][planes[tap]]) * go[p]);
            }
          }
      }
      if (grad_kernel)
        for (int64_t p = 0; p < kPixels && j0 + p < g.out_w; ++p) {
          S* target = grad_kernel->pixel(i, j0 + p);
          for (int64_t tap = 0; tap < taps; ++tap)
            target[grad_planes[tap]] = Storage<S>::store(kernel_sums[tap * kPixels + p]);
        }
    }
}

// Calls body(b, group, scratch) for every unit, split over threads; each
// thread has its own scratch buffers, reused from unit to unit. The threads
// are OpenMP's: in a process where PyTorch has loaded its libgomp, this is
// the same runtime and the same (already running) thread pool that PyTorch's
// own operators use, so the kernel never competes with idle-spinning
// PyTorch threads for the cores. Built without OpenMP it runs on one thread.
template <typename S, typename Body>
void for_each_unit(const Geometry& g, int num_threads, Body body) {
  const int64_t units = g.batch * g.groups;
#pragma omp parallel num_threads(std::max(1, num_threads))
  {
    Buffer<ComputeOf<S>> scratch_x, scratch_grad;
#pragma omp for schedule(static)
    for (int64_t unit = 0; unit < units; ++unit)
      body(unit / g.groups, unit % g.groups, scratch_x, scratch_grad);
  }
}

template <typename S>
void forward(const S* input, const S* kernel, S* output, const Geometry& g,
             const Strides& strides, int num_threads) {
  using Tile = Buffer<ComputeOf<S>>;
  for_each_unit<S>(g, num_threads, [&](int64_t b, int64_t group, Tile& x, Tile&) {
    pack(g, unit_map(input, strides.input, g, b, group), x);
    forward_unit(g, unit_kernels(kernel, strides.kernel, b, group), x,
                 unit_map(output, strides.output, g, b, group));
  });
}

// Either gradient may be null; each is written whole.
template <typename S>
void backward(const S* input, const S* kernel, const S* grad_output, S* grad_input,
              S* grad_kernel, const Geometry& g, const Strides& strides, int num_threads) {
  using Tile = Buffer<ComputeOf<S>>;
  for_each_unit<S>(g, num_threads, [&](int64_t b, int64_t group, Tile& x, Tile& grad_x) {
    pack(g, unit_map(input, strides.input, g, b, group), x);
    if (grad_input) grad_x.zero(g.padded_size());
    Kernels<S> grad_kernels{};
    if (grad_kernel) grad_kernels = unit_kernels(grad_kernel, strides.grad_kernel, b, group);
    backward_unit(g, unit_kernels(kernel, strides.kernel, b, group), x,
                  unit_map(grad_output, strides.grad_output, g, b, group),
                  grad_input ? &grad_x : nullptr, grad_kernel ? &grad_kernels : nullptr);
    if (grad_input) unpack(g, grad_x, unit_map(grad_input, strides.grad_input, g, b, group));
  });
}

}  // namespace

// One forward and one backward entry point per storage type, named as cpu.py expects.
#define INVOLUTION_ENTRY_POINTS(suffix, S)                                                   \
  void involution_forward_##suffix(const S* input, const S* kernel, S* output,             \
                                   const Geometry* geometry, const Strides* strides,       \
                                   int num_threads) {                                      \
    forward(input, kernel, output, *geometry, *strides, num_threads);                      \
  }                                                                                        \
  void involution_backward_##suffix(const S* input, const S* kernel, const S* grad_output, \
                                    S* grad_input, S* grad_kernel, const Geometry* geometry, \
                                    const Strides* strides, int num_threads) {             \
    backward(input, kernel, grad_output, grad_input, grad_kernel, *geometry, *strides,     \
             num_threads);                                                                 \
  }

extern "C" {

INVOLUTION_ENTRY_POINTS(f32, float)
INVOLUTION_ENTRY_POINTS(f64, double)
INVOLUTION_ENTRY_POINTS(f16, Half)
INVOLUTION_ENTRY_POINTS(bf16, BFloat16)

}  // extern "C"
