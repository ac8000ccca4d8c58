#include "tower.h"

#include <ggml-cpu.h>

#include <cmath>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "lumen/util/log.h"

namespace lumen::ml::detail {

int DefaultThreads(int requested) {
  return requested > 0 ? requested
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void Weights::Need(const std::string& name, std::vector<int64_t> shape, ggml_tensor** dst,
                   bool matrix, int64_t row_offset, const std::string& source) {
  if (!error_.ok()) return;
  const std::string src_name = source.empty() ? name : source;
  const TensorView* t = file_.Find(src_name);
  if (!t) {
    error_ = Status::Invalid(fmt::format("{}: tensor {} is missing", file_.path(), src_name));
    return;
  }
  if (t->dtype != DType::kF32 && t->dtype != DType::kF16 && t->dtype != DType::kBF16 &&
      t->dtype != DType::kGgml) {
    error_ = Status::Invalid(fmt::format("{}: tensor {} has dtype {}, expected F32, F16 or BF16",
                                         file_.path(), src_name, DTypeName(t->dtype)));
    return;
  }
  items_.push_back({name, std::move(shape), t, dst, matrix, row_offset, !source.empty()});
}

void Weights::NeedLayers(const std::string& prefix, int count, int64_t H, int64_t I,
                         std::vector<Layer>* out) {
  out->resize(count);
  for (int i = 0; i < count; ++i) {
    Layer& l = (*out)[i];
    std::string p = fmt::format("{}{}.", prefix, i);
    Need(p + "layer_norm1.weight", {H}, &l.ln1_w, false);
    Need(p + "layer_norm1.bias", {H}, &l.ln1_b, false);
    Need(p + "layer_norm2.weight", {H}, &l.ln2_w, false);
    Need(p + "layer_norm2.bias", {H}, &l.ln2_b, false);
    struct P {
      const char* n;
      ggml_tensor** w;
      ggml_tensor** b;
    } projs[] = {{"q_proj", &l.q_w, &l.q_b},
                 {"k_proj", &l.k_w, &l.k_b},
                 {"v_proj", &l.v_w, &l.v_b},
                 {"out_proj", &l.o_w, &l.o_b}};
    for (const P& pr : projs) {
      Need(p + "self_attn." + pr.n + ".weight", {H, H}, pr.w, true);
      Need(p + "self_attn." + pr.n + ".bias", {H}, pr.b, false);
    }
    Need(p + "mlp.fc1.weight", {I, H}, &l.fc1_w, true);
    Need(p + "mlp.fc1.bias", {I}, &l.fc1_b, false);
    Need(p + "mlp.fc2.weight", {H, I}, &l.fc2_w, true);
    Need(p + "mlp.fc2.bias", {H}, &l.fc2_b, false);
  }
}

namespace {
int64_t Product(const std::vector<int64_t>& v, size_t from) {
  int64_t p = 1;
  for (size_t i = from; i < v.size(); ++i) p *= v[i];
  return p;
}

std::vector<int64_t> StripLeadingOnes(std::vector<int64_t> v) {
  while (v.size() > 1 && v.front() == 1) v.erase(v.begin());
  return v;
}

// ggml's AMX buffer type when this CPU can use it (AMX-INT8 and the kernel's permission) and
// LUMEN_NO_AMX is not set; null otherwise.
ggml_backend_buffer_type_t AmxBufferType(ggml_backend_t backend) {
  if (!ggml_cpu_has_amx_int8() || std::getenv("LUMEN_NO_AMX")) return nullptr;
  ggml_backend_dev_t dev = ggml_backend_get_device(backend);
  if (!dev) return nullptr;
  auto get = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(ggml_backend_reg_get_proc_address(
      ggml_backend_dev_backend_reg(dev), "ggml_backend_dev_get_extra_bufts"));
  if (!get) return nullptr;
  for (ggml_backend_buffer_type_t* b = get(dev); b && *b; ++b)
    if (std::string_view(ggml_backend_buft_name(*b)) == "AMX") return *b;
  return nullptr;
}

// ggml's own messages (buffer sizes, repacking notes) go through lumen's log: its debug and info
// lines at debug level, warnings and errors as such.
void RouteGgmlLog() {
  static std::once_flag once;
  std::call_once(once, [] {
    ::ggml_log_set(
        [](ggml_log_level level, const char* text, void*) {
          std::string_view line(text ? text : "");
          while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
          if (line.empty() || level == GGML_LOG_LEVEL_CONT) return;
          const lumen::log::Level l = level == GGML_LOG_LEVEL_ERROR  ? lumen::log::Level::kError
                                      : level == GGML_LOG_LEVEL_WARN ? lumen::log::Level::kWarn
                                                                     : lumen::log::Level::kDebug;
          lumen::log::Write(l, fmt::format("ggml: {}", line));
        },
        nullptr);
  });
}

ggml_type MatrixType(WeightType w, const TensorView& src, int64_t row) {
  const DType stored = src.dtype;
  if (w == WeightType::kStored && stored == DType::kGgml)
    return static_cast<ggml_type>(src.ggml_type);
  switch (w) {
    case WeightType::kF32:
      return GGML_TYPE_F32;
    case WeightType::kF16:
      return GGML_TYPE_F16;
    case WeightType::kBF16:
      return GGML_TYPE_BF16;
    case WeightType::kQ8_0:
      return row % 32 == 0 ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
    case WeightType::kStored:
      break;
  }
  return stored == DType::kF32 ? GGML_TYPE_F32 : GGML_TYPE_F16;
}
}  // namespace

Status Weights::Load(ggml_backend_t backend) {
  LUMEN_RETURN_IF_ERROR(error_);
  // Shapes. Matrices: the same output rows and the same number of inputs per row (GGUF stores
  // them 2-D); a slice takes its rows from a larger tensor. Others: equal up to leading 1s.
  for (const auto& it : items_) {
    const auto& have = it.src->shape;
    const auto& want = it.shape;
    bool ok;
    if (it.matrix || it.slice) {
      ok = !have.empty() && Product(have, 1) == Product(want, 1) &&
           (it.slice ? have[0] >= it.row_offset + want[0] : have[0] == want[0]);
    } else {
      ok = StripLeadingOnes(have) == StripLeadingOnes(want);
    }
    if (!ok)
      return Status::Invalid(fmt::format(
          "{}: tensor {} has shape [{}], the config implies [{}]{}", file_.path(), it.src->name,
          fmt::join(have, ", "), fmt::join(want, ", "), it.slice ? " (a slice of it)" : ""));
  }
  // Two contexts: matrices that ggml's AMX kernels can multiply go to the AMX buffer type (their
  // rows repacked into tiles) when this CPU has AMX-INT8; everything else to the plain CPU buffer.
  RouteGgmlLog();
  ggml_backend_buffer_type_t amx = amx_ ? AmxBufferType(backend) : nullptr;
  ggml_init_params params{ggml_tensor_overhead() * (items_.size() + 8), nullptr, true};
  ctx_.reset(ggml_init(params));
  amx_ctx_.reset(ggml_init(params));
  if (!ctx_ || !amx_ctx_) return Status::Internal("ggml_init failed");
  int on_amx = 0;
  for (auto& it : items_) {
    ggml_tensor* t;
    if (it.matrix) {
      int64_t in = 1;
      for (size_t d = 1; d < it.shape.size(); ++d) in *= it.shape[d];
      const ggml_type type = MatrixType(type_, *it.src, in);
      // The AMX kernels need 32-row output blocks and whole 32-value input blocks.
      const bool tiled = amx && (type == GGML_TYPE_Q8_0 || type == GGML_TYPE_Q4_0) &&
                         it.shape[0] % 32 == 0 && in % 32 == 0;
      t = ggml_new_tensor_2d(tiled ? amx_ctx_.get() : ctx_.get(), type, in, it.shape[0]);
      on_amx += tiled;
    } else {
      // f32 with PyTorch's dims reversed (position embeddings stay [hidden, tokens]).
      int64_t ne[4] = {1, 1, 1, 1};
      int nd = 0;
      for (auto d = it.shape.rbegin(); d != it.shape.rend() && nd < 4; ++d) ne[nd++] = *d;
      t = ggml_new_tensor(ctx_.get(), GGML_TYPE_F32, std::max(1, nd), ne);
    }
    ggml_set_name(t, it.name.substr(0, GGML_MAX_NAME - 1).c_str());
    *it.dst = t;
  }
  buffer_.reset(ggml_backend_alloc_ctx_tensors(ctx_.get(), backend));
  if (!buffer_) return Status::Internal("cannot allocate the model weights");
  if (on_amx) {
    amx_buffer_.reset(ggml_backend_alloc_ctx_tensors_from_buft(amx_ctx_.get(), amx));
    if (!amx_buffer_) return Status::Internal("cannot allocate the AMX weight buffer");
  }
  amx_matrices_ = on_amx;
  std::vector<float> f32;
  std::vector<uint8_t> conv;
  for (auto& it : items_) {
    ggml_tensor* t = *it.dst;
    const int64_t n = ggml_nelements(t), row = t->ne[0];
    if (it.src->dtype == DType::kGgml && static_cast<int>(t->type) == it.src->ggml_type) {
      // Already in the wanted block type (a quantized GGUF): copy the rows as they are.
      const size_t row_bytes = ggml_row_size(t->type, row);
      ggml_backend_tensor_set(t, it.src->data + it.row_offset * row_bytes, 0, ggml_nbytes(t));
      continue;
    }
    f32.resize(size_t(it.src->elements()));
    ToFloat32(*it.src, f32.data());
    const float* src = f32.data() + it.row_offset * (it.matrix ? row : 1);
    if (t->type == GGML_TYPE_F32) {
      ggml_backend_tensor_set(t, src, 0, size_t(n) * 4);
    } else if (t->type == GGML_TYPE_F16) {
      conv.resize(size_t(n) * 2);
      ggml_fp32_to_fp16_row(src, reinterpret_cast<ggml_fp16_t*>(conv.data()), n);
      ggml_backend_tensor_set(t, conv.data(), 0, conv.size());
    } else {
      conv.resize(ggml_nbytes(t));
      ggml_quantize_chunk(t->type, src, conv.data(), 0, t->ne[1], row, nullptr);
      ggml_backend_tensor_set(t, conv.data(), 0, conv.size());
    }
  }
  return Status::Ok();
}

ggml_tensor* Blocks::Norm(ggml_context* c, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b) const {
  return ggml_add(c, ggml_mul(c, ggml_norm(c, x, eps), w), b);
}

ggml_tensor* Blocks::Linear(ggml_context* c, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b) {
  // One 2-D product over every token of every image: the widest GEMM, and the shape ggml's
  // AMX kernels require (they mis-address a 3-D right-hand side).
  const int64_t t = x->ne[1], n = x->ne[2];
  if (ggml_is_contiguous(x) && x->ne[3] == 1) {
    x = ggml_mul_mat(c, w, ggml_reshape_2d(c, x, x->ne[0], t * n));
    x = ggml_reshape_3d(c, x, w->ne[1], t, n);
  } else {
    x = ggml_mul_mat(c, w, x);
  }
  return b ? ggml_add(c, x, b) : x;
}

ggml_tensor* Blocks::Act(ggml_context* c, ggml_tensor* x) const {
  switch (act) {
    case Activation::kGeluTanh:
      return ggml_gelu(c, x);
    case Activation::kGeluErf:
      return ggml_gelu_erf(c, x);
    case Activation::kQuickGelu:
      return ggml_gelu_quick(c, x);
  }
  return x;
}

ggml_tensor* Blocks::Attention(ggml_context* c, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v,
                               bool causal) const {
  const int64_t hidden = q->ne[0], d = hidden / heads;
  const int64_t tq = q->ne[1], tk = k->ne[1], b = q->ne[2];
  q = ggml_permute(c, ggml_reshape_4d(c, q, d, heads, tq, b), 0, 2, 1, 3);
  k = ggml_permute(c, ggml_reshape_4d(c, k, d, heads, tk, b), 0, 2, 1, 3);
  ggml_tensor* kq = ggml_mul_mat(c, k, q);  // [tk, tq, heads, b]
  if (causal) {
    kq = ggml_diag_mask_inf(c, ggml_scale(c, kq, 1.0f / std::sqrt(float(d))), 0);
    kq = ggml_soft_max(c, kq);
  } else {
    kq = ggml_soft_max_ext(c, kq, nullptr, 1.0f / std::sqrt(float(d)), 0.0f);
  }
  v = ggml_cont(c, ggml_permute(c, ggml_reshape_4d(c, v, d, heads, tk, b), 1, 2, 0, 3));
  ggml_tensor* o = ggml_mul_mat(c, v, kq);  // [d, tq, heads, b]
  o = ggml_cont(c, ggml_permute(c, o, 0, 2, 1, 3));
  return ggml_reshape_3d(c, o, hidden, tq, b);
}

ggml_tensor* Blocks::Layer(ggml_context* c, ggml_tensor* x, const detail::Layer& l,
                           bool causal) const {
  ggml_tensor* h = Norm(c, x, l.ln1_w, l.ln1_b);
  ggml_tensor* a = Attention(c, Linear(c, h, l.q_w, l.q_b), Linear(c, h, l.k_w, l.k_b),
                             Linear(c, h, l.v_w, l.v_b), causal);
  x = ggml_add(c, x, Linear(c, a, l.o_w, l.o_b));
  h = Norm(c, x, l.ln2_w, l.ln2_b);
  h = Linear(c, Act(c, Linear(c, h, l.fc1_w, l.fc1_b)), l.fc2_w, l.fc2_b);
  return ggml_add(c, x, h);
}

}  // namespace lumen::ml::detail
