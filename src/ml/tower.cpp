#include "tower.h"

#include <ggml-cpu.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
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

const TensorView* Weights::Find(const std::string& name) {
  if (!error_.ok()) return nullptr;
  const TensorView* t = file_.Find(name);
  if (!t) {
    error_ = Status::Invalid(fmt::format("{}: tensor {} is missing", file_.path(), name));
    return nullptr;
  }
  if (t->dtype != DType::kF32 && t->dtype != DType::kF16 && t->dtype != DType::kBF16 &&
      t->dtype != DType::kGgml) {
    error_ = Status::Invalid(fmt::format("{}: tensor {} has dtype {}, expected F32, F16 or BF16",
                                         file_.path(), name, DTypeName(t->dtype)));
    return nullptr;
  }
  return t;
}

void Weights::Need(const std::string& name, std::vector<int64_t> shape, ggml_tensor** dst) {
  if (const TensorView* t = Find(name)) items_.push_back({name, std::move(shape), t, dst});
}

void Weights::NeedLinear(std::vector<LinearPart> parts, int64_t out, std::vector<int64_t> in,
                         Linear* dst) {
  if (!error_.ok()) return;
  LinearItem it{std::move(parts), {}, {}, out, std::move(in), dst};
  for (const LinearPart& p : it.parts) {
    const TensorView* w = Find(p.weight);
    const TensorView* b = p.bias.empty() ? nullptr : Find(p.bias);
    if (!error_.ok()) return;
    it.w.push_back(w);
    it.b.push_back(b);
  }
  dst->out = out * static_cast<int64_t>(it.parts.size());
  linears_.push_back(std::move(it));
}

void Weights::NeedLayers(const std::string& prefix, int count, int64_t H, int64_t I,
                         std::vector<Layer>* out) {
  out->resize(count);
  for (int i = 0; i < count; ++i) {
    Layer& l = (*out)[i];
    std::string p = fmt::format("{}{}.", prefix, i);
    Need(p + "layer_norm1.weight", {H}, &l.ln1_w);
    Need(p + "layer_norm1.bias", {H}, &l.ln1_b);
    Need(p + "layer_norm2.weight", {H}, &l.ln2_w);
    Need(p + "layer_norm2.bias", {H}, &l.ln2_b);
    auto part = [&](const std::string& n) {
      return LinearPart{p + n + ".weight", p + n + ".bias", 0, false};
    };
    NeedLinear({part("self_attn.q_proj"), part("self_attn.k_proj"), part("self_attn.v_proj")}, H,
               {H}, &l.qkv);
    NeedLinear({part("self_attn.out_proj")}, H, {H}, &l.o);
    NeedLinear({part("mlp.fc1")}, I, {H}, &l.fc1);
    NeedLinear({part("mlp.fc2")}, H, {I}, &l.fc2);
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
    case WeightType::kInt8:  // ggml's nearest where lumen's int8 kernels do not run
      return row % 32 == 0 ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
    case WeightType::kStored:
      break;
  }
  return stored == DType::kF32 ? GGML_TYPE_F32 : GGML_TYPE_F16;
}

}  // namespace

Status Weights::Load(ggml_backend_t backend) {
  LUMEN_RETURN_IF_ERROR(error_);
  // Shapes, linear layers first (the patch embedding, then the layers, in order). Matrices: the
  // same output rows and the same number of inputs per row (GGUF stores them 2-D); a slice takes
  // its rows from a larger tensor. Others: equal up to leading 1s.
  for (const auto& it : linears_) {
    for (size_t i = 0; i < it.parts.size(); ++i) {
      const LinearPart& part = it.parts[i];
      const int64_t rows = part.row_offset + it.out;
      const auto& have = it.w[i]->shape;
      std::vector<int64_t> want{it.out};
      want.insert(want.end(), it.in.begin(), it.in.end());
      const bool ok = !have.empty() && Product(have, 1) == Product(it.in, 0) &&
                      (part.slice ? have[0] >= rows : have[0] == rows);
      if (!ok)
        return Status::Invalid(fmt::format(
            "{}: tensor {} has shape [{}], the config implies [{}]{}", file_.path(), it.w[i]->name,
            fmt::join(have, ", "), fmt::join(want, ", "), part.slice ? " (a slice of it)" : ""));
      if (!it.b[i]) continue;
      const auto bias = StripLeadingOnes(it.b[i]->shape);
      if (bias.size() != 1 || (part.slice ? bias[0] < rows : bias[0] != rows))
        return Status::Invalid(fmt::format(
            "{}: tensor {} has shape [{}], the config implies [{}]{}", file_.path(), it.b[i]->name,
            fmt::join(bias, ", "), it.out, part.slice ? " (a slice of it)" : ""));
    }
  }
  for (const auto& it : items_) {
    const auto& have = it.src->shape;
    if (StripLeadingOnes(have) != StripLeadingOnes(it.shape))
      return Status::Invalid(fmt::format("{}: tensor {} has shape [{}], the config implies [{}]",
                                         file_.path(), it.src->name, fmt::join(have, ", "),
                                         fmt::join(it.shape, ", ")));
  }
  // Two contexts: matrices that ggml's AMX kernels can multiply go to the AMX buffer type (their
  // rows repacked into tiles) when this CPU has AMX-INT8; everything else to the plain CPU buffer.
  // f32 and int8 matrices go to lumen's own kernels instead where this CPU runs them.
  RouteGgmlLog();
  ggml_backend_buffer_type_t amx = amx_ ? AmxBufferType(backend) : nullptr;
  const std::optional<gemm::Isa> isa = own_ ? gemm::BestIsa() : std::nullopt;
  ggml_init_params params{ggml_tensor_overhead() * (items_.size() + 2 * linears_.size() + 8),
                          nullptr, true};
  ctx_.reset(ggml_init(params));
  amx_ctx_.reset(ggml_init(params));
  if (!ctx_ || !amx_ctx_) return Status::Internal("ggml_init failed");
  int on_amx = 0;
  std::vector<std::optional<gemm::Precision>> own(linears_.size());
  for (size_t li = 0; li < linears_.size(); ++li) {
    LinearItem& it = linears_[li];
    const int64_t in = Product(it.in, 0), rows = it.dst->out;
    const ggml_type type = MatrixType(type_, *it.w[0], in);
    if (isa && type_ == WeightType::kInt8)
      own[li] = gemm::Precision::kInt8;
    else if (isa && type == GGML_TYPE_F32)
      own[li] = gemm::Precision::kF32;
    if (own[li]) continue;
    // The AMX kernels need 32-row output blocks and whole 32-value input blocks.
    const bool tiled =
        amx && (type == GGML_TYPE_Q8_0 || type == GGML_TYPE_Q4_0) && rows % 32 == 0 && in % 32 == 0;
    it.dst->w = ggml_new_tensor_2d(tiled ? amx_ctx_.get() : ctx_.get(), type, in, rows);
    ggml_set_name(it.dst->w, it.parts[0].weight.substr(0, GGML_MAX_NAME - 1).c_str());
    if (it.b[0]) it.dst->b = ggml_new_tensor_1d(ctx_.get(), GGML_TYPE_F32, rows);
    on_amx += tiled;
  }
  for (auto& it : items_) {
    // f32 with PyTorch's dims reversed (position embeddings stay [hidden, tokens]).
    int64_t ne[4] = {1, 1, 1, 1};
    int nd = 0;
    for (auto d = it.shape.rbegin(); d != it.shape.rend() && nd < 4; ++d) ne[nd++] = *d;
    ggml_tensor* t = ggml_new_tensor(ctx_.get(), GGML_TYPE_F32, std::max(1, nd), ne);
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
  for (auto& it : items_) {
    f32.resize(size_t(it.src->elements()));
    ToFloat32(*it.src, f32.data());
    ggml_backend_tensor_set(*it.dst, f32.data(), 0, f32.size() * 4);
  }
  for (size_t li = 0; li < linears_.size(); ++li)
    LUMEN_RETURN_IF_ERROR(FillLinear(linears_[li], own[li], isa));
  return Status::Ok();
}

Status Weights::FillLinear(const LinearItem& it, std::optional<gemm::Precision> own,
                           std::optional<gemm::Isa> isa) {
  const int64_t in = Product(it.in, 0), out = it.out, rows = it.dst->out;
  const bool has_bias = it.b[0] != nullptr;
  ggml_tensor* t = it.dst->w;
  // Every part's rows stacked: f32 for lumen's kernels, else the tensor's own type (set whole:
  // the AMX buffer repacks a tensor only in one piece).
  const size_t row_bytes = own ? size_t(in) * 4 : ggml_row_size(t->type, in);
  std::vector<uint8_t> whole(row_bytes * size_t(rows));
  std::vector<float> f32, bias(has_bias ? size_t(rows) : 0);
  for (size_t i = 0; i < it.parts.size(); ++i) {
    const TensorView& src = *it.w[i];
    const int64_t off = it.parts[i].row_offset;
    uint8_t* dst = whole.data() + row_bytes * size_t(out) * i;
    if (!own && src.dtype == DType::kGgml && static_cast<int>(t->type) == src.ggml_type) {
      std::memcpy(dst, src.data + off * row_bytes, out * row_bytes);
    } else {
      f32.resize(size_t(src.elements()));
      ToFloat32(src, f32.data());
      const float* p = f32.data() + off * in;
      if (own || t->type == GGML_TYPE_F32)
        std::memcpy(dst, p, size_t(out * in) * 4);
      else if (t->type == GGML_TYPE_F16)
        ggml_fp32_to_fp16_row(p, reinterpret_cast<ggml_fp16_t*>(dst), out * in);
      else
        ggml_quantize_chunk(t->type, p, dst, 0, out, in, nullptr);
    }
    if (!has_bias) continue;
    if (!it.b[i])
      return Status::Invalid(fmt::format("{}: tensor {} has no bias beside the others",
                                         file_.path(), it.parts[i].weight));
    f32.resize(size_t(it.b[i]->elements()));
    ToFloat32(*it.b[i], f32.data());
    std::copy(f32.begin() + off, f32.begin() + off + out, bias.begin() + int64_t(i) * out);
  }
  if (!own) {
    ggml_backend_tensor_set(t, whole.data(), 0, whole.size());
    if (has_bias) ggml_backend_tensor_set(it.dst->b, bias.data(), 0, bias.size() * 4);
    return Status::Ok();
  }
  auto packed = gemm::Matrix::Pack(reinterpret_cast<const float*>(whole.data()),
                                   has_bias ? bias.data() : nullptr, rows, in, *own, *isa);
  if (!packed)
    return Status::Internal(fmt::format("cannot pack {} for lumen's kernels", it.parts[0].weight));
  ++own_matrices_;
  own_kernel_ = packed->kernel();
  it.dst->packed = std::move(packed);
  return Status::Ok();
}

ggml_tensor* Blocks::Norm(ggml_context* c, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b) const {
  return ggml_add(c, ggml_mul(c, ggml_norm(c, x, eps), w), b);
}

namespace {
// ggml custom ops on lumen's kernels, each thread its share: the rows of src[0] packed (int8:
// quantized) once for all threads, then dst = them · Wᵀ + bias.
void PrepareRows(ggml_tensor* dst, int ith, int nth, void* userdata) {
  const auto* m = static_cast<const gemm::Matrix*>(userdata);
  const ggml_tensor* x = dst->src[0];
  m->Prepare(static_cast<const float*>(x->data), ggml_nrows(x), x->nb[1] / 4,
             static_cast<uint8_t*>(dst->data), ith, nth);
}
void PreparedLinear(ggml_tensor* dst, int ith, int nth, void* userdata) {
  const auto* m = static_cast<const gemm::Matrix*>(userdata);
  m->MultiplyPrepared(static_cast<const uint8_t*>(dst->src[0]->data), ggml_nrows(dst),
                      static_cast<float*>(dst->data), dst->nb[1] / 4, ith, nth);
}

int GemmActivation(Activation act) {
  switch (act) {
    case Activation::kGeluTanh:
      return gemm::kGeluTanh;
    case Activation::kGeluErf:
      return gemm::kGeluErf;
    case Activation::kQuickGelu:
      return gemm::kQuickGelu;
  }
  return gemm::kNoActivation;
}
}  // namespace

void Blocks::Use(const EncoderOptions& opt, std::vector<detail::Layer>* layers,
                 std::vector<detail::Linear*> extra) {
  isa = opt.own_kernels ? gemm::BestIsa() : std::nullopt;
  if (isa) ops[0] = {*isa, heads, false}, ops[1] = {*isa, heads, true};
  for (auto& l : *layers) extra.push_back(&l.fc1);
  for (detail::Linear* l : extra)
    if (l->packed) l->packed->set_activation(GemmActivation(act));
}

ggml_tensor* Blocks::Apply(ggml_context* c, ggml_tensor* x, const detail::Linear& l) {
  if (l.empty()) return x;
  if (!ggml_is_contiguous(x)) x = ggml_cont(c, x);
  if (l.packed) {
    ggml_tensor* args[] = {x};
    const int64_t bytes = int64_t(l.packed->PreparedBytes(ggml_nrows(x)));
    ggml_tensor* prepared[] = {ggml_custom_4d(c, GGML_TYPE_I8, bytes, 1, 1, 1, args, 1, PrepareRows,
                                              GGML_N_TASKS_MAX, l.packed.get())};
    return ggml_custom_4d(c, GGML_TYPE_F32, l.out, x->ne[1], x->ne[2], x->ne[3], prepared, 1,
                          PreparedLinear, GGML_N_TASKS_MAX, l.packed.get());
  }
  // One 2-D product over every token of every image: the widest GEMM, and the shape ggml's
  // AMX kernels require (they mis-address a 3-D right-hand side).
  const int64_t t = x->ne[1], n = x->ne[2];
  if (x->ne[3] == 1) {
    x = ggml_mul_mat(c, l.w, ggml_reshape_2d(c, x, x->ne[0], t * n));
    x = ggml_reshape_3d(c, x, l.w->ne[1], t, n);
  } else {
    x = ggml_mul_mat(c, l.w, x);
  }
  return l.b ? ggml_add(c, x, l.b) : x;
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

namespace {
// [hidden, T, B] (rows possibly wider than hidden) -> a view [d, heads, T, B].
ggml_tensor* Heads(ggml_context* c, ggml_tensor* x, int64_t d, int64_t heads) {
  return ggml_view_4d(c, x, d, heads, x->ne[1], x->ne[2], x->nb[0] * d, x->nb[1], x->nb[2], 0);
}
// Columns [from, from + n) of every row of x: [n, T, B].
ggml_tensor* Columns(ggml_context* c, ggml_tensor* x, int64_t from, int64_t n) {
  return ggml_view_3d(c, x, n, x->ne[1], x->ne[2], x->nb[1], x->nb[2], x->nb[0] * from);
}
}  // namespace

namespace {
// dst [hidden, Tq, B] = attention of src q, k, v (views: rows of any stride) on lumen's kernels.
void OwnAttention(ggml_tensor* dst, int ith, int nth, void* userdata) {
  const auto* op = static_cast<const AttentionOp*>(userdata);
  const ggml_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2];
  gemm::AttentionArgs a;
  a.q = static_cast<const float*>(q->data);
  a.k = static_cast<const float*>(k->data);
  a.v = static_cast<const float*>(v->data);
  a.out = static_cast<float*>(dst->data);
  a.q_row = q->nb[1] / 4, a.q_batch = q->nb[2] / 4;
  a.k_row = k->nb[1] / 4, a.k_batch = k->nb[2] / 4;
  a.v_row = v->nb[1] / 4, a.v_batch = v->nb[2] / 4;
  a.out_row = dst->nb[1] / 4, a.out_batch = dst->nb[2] / 4;
  a.tq = q->ne[1], a.tk = k->ne[1], a.heads = op->heads, a.d = q->ne[0] / a.heads;
  a.batch = q->ne[2];
  a.scale = 1.0f / std::sqrt(float(a.d));
  a.causal = op->causal;
  gemm::Attention(a, op->isa, ith, nth);
}
}  // namespace

ggml_tensor* Blocks::Attention(ggml_context* c, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v,
                               bool causal) const {
  const int64_t hidden = q->ne[0], d = hidden / heads;
  if (isa && d <= gemm::kMaxHeadDim && hidden % heads == 0 && q->ne[3] == 1) {
    ggml_tensor* args[] = {q, k, v};
    return ggml_custom_4d(c, GGML_TYPE_F32, hidden, q->ne[1], q->ne[2], 1, args, 3, OwnAttention,
                          GGML_N_TASKS_MAX, const_cast<AttentionOp*>(&ops[causal ? 1 : 0]));
  }
  const int64_t tq = q->ne[1], b = q->ne[2];
  q = ggml_permute(c, Heads(c, q, d, heads), 0, 2, 1, 3);
  k = ggml_permute(c, Heads(c, k, d, heads), 0, 2, 1, 3);
  ggml_tensor* kq = ggml_mul_mat(c, k, q);  // [tk, tq, heads, b]
  if (causal) {
    kq = ggml_diag_mask_inf(c, ggml_scale(c, kq, 1.0f / std::sqrt(float(d))), 0);
    kq = ggml_soft_max(c, kq);
  } else {
    kq = ggml_soft_max_ext(c, kq, nullptr, 1.0f / std::sqrt(float(d)), 0.0f);
  }
  v = ggml_cont(c, ggml_permute(c, Heads(c, v, d, heads), 1, 2, 0, 3));
  ggml_tensor* o = ggml_mul_mat(c, v, kq);  // [d, tq, heads, b]
  o = ggml_cont(c, ggml_permute(c, o, 0, 2, 1, 3));
  return ggml_reshape_3d(c, o, hidden, tq, b);
}

ggml_tensor* Blocks::Layer(ggml_context* c, ggml_tensor* x, const detail::Layer& l,
                           bool causal) const {
  const int64_t hidden = x->ne[0];
  ggml_tensor* h = Norm(c, x, l.ln1_w, l.ln1_b);
  ggml_tensor* qkv = Apply(c, h, l.qkv);  // [3 * hidden, T, B]
  ggml_tensor* a = Attention(c, Columns(c, qkv, 0, hidden), Columns(c, qkv, hidden, hidden),
                             Columns(c, qkv, 2 * hidden, hidden), causal);
  x = ggml_add(c, x, Apply(c, a, l.o));
  h = Norm(c, x, l.ln2_w, l.ln2_b);
  h = Apply(c, h, l.fc1);
  if (!l.fc1.fused_act()) h = Act(c, h);
  h = Apply(c, h, l.fc2);
  return ggml_add(c, x, h);
}

}  // namespace lumen::ml::detail
