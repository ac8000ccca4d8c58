#include "lumen/ml/image_encoder.h"

#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>

#include <cmath>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "lumen/image/derive.h"
#include "lumen/ml/safetensors.h"

namespace lumen::ml {

const char* WeightTypeName(WeightType t) {
  switch (t) {
    case WeightType::kStored:
      return "stored";
    case WeightType::kF32:
      return "f32";
    case WeightType::kF16:
      return "f16";
    case WeightType::kQ8_0:
      return "q8_0";
  }
  return "?";
}

namespace {
struct CtxFree {
  void operator()(ggml_context* c) const { ggml_free(c); }
};
struct BackendFree {
  void operator()(ggml_backend* b) const { ggml_backend_free(b); }
};
struct BufferFree {
  void operator()(ggml_backend_buffer* b) const { ggml_backend_buffer_free(b); }
};
struct GallocFree {
  void operator()(ggml_gallocr* g) const { ggml_gallocr_free(g); }
};

struct Layer {
  ggml_tensor *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
  ggml_tensor *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
};
}  // namespace

struct ImageEncoder::Impl {
  ModelConfig cfg;
  EncoderOptions opt;
  int threads = 1;
  std::unique_ptr<ggml_context, CtxFree> wctx;
  std::unique_ptr<ggml_backend, BackendFree> backend;
  std::unique_ptr<ggml_backend_buffer, BufferFree> wbuf;
  std::unique_ptr<ggml_gallocr, GallocFree> galloc;
  // weights
  ggml_tensor *patch_w = nullptr, *patch_b = nullptr, *pos = nullptr, *cls = nullptr;
  ggml_tensor *pre_ln_w = nullptr, *pre_ln_b = nullptr, *post_ln_w = nullptr, *post_ln_b = nullptr;
  ggml_tensor* proj = nullptr;
  std::vector<Layer> layers;
  // SigLIP attention-pooling head
  ggml_tensor *probe = nullptr, *hq_w = nullptr, *hq_b = nullptr, *hk_w = nullptr, *hk_b = nullptr;
  ggml_tensor *hv_w = nullptr, *hv_b = nullptr, *ho_w = nullptr, *ho_b = nullptr;
  ggml_tensor *hln_w = nullptr, *hln_b = nullptr, *hfc1_w = nullptr, *hfc1_b = nullptr;
  ggml_tensor *hfc2_w = nullptr, *hfc2_b = nullptr;

  ggml_tensor* Norm(ggml_context* c, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b) const {
    x = ggml_norm(c, x, cfg.vision.eps);
    return ggml_add(c, ggml_mul(c, x, w), b);
  }
  static ggml_tensor* Linear(ggml_context* c, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b) {
    x = ggml_mul_mat(c, w, x);
    return b ? ggml_add(c, x, b) : x;
  }
  ggml_tensor* Act(ggml_context* c, ggml_tensor* x) const {
    switch (cfg.vision.act) {
      case Activation::kGeluTanh:
        return ggml_gelu(c, x);
      case Activation::kGeluErf:
        return ggml_gelu_erf(c, x);
      case Activation::kQuickGelu:
        return ggml_gelu_quick(c, x);
    }
    return x;
  }
  // q: [hidden, Tq, B], k/v: [hidden, Tk, B] -> [hidden, Tq, B]
  ggml_tensor* Attention(ggml_context* c, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v) const {
    const int64_t hidden = q->ne[0], heads = cfg.vision.heads, d = hidden / heads;
    const int64_t tq = q->ne[1], tk = k->ne[1], b = q->ne[2];
    q = ggml_permute(c, ggml_reshape_4d(c, q, d, heads, tq, b), 0, 2, 1, 3);
    k = ggml_permute(c, ggml_reshape_4d(c, k, d, heads, tk, b), 0, 2, 1, 3);
    ggml_tensor* kq = ggml_mul_mat(c, k, q);  // [tk, tq, heads, b]
    kq = ggml_soft_max_ext(c, kq, nullptr, 1.0f / std::sqrt(float(d)), 0.0f);
    v = ggml_cont(c, ggml_permute(c, ggml_reshape_4d(c, v, d, heads, tk, b), 1, 2, 0, 3));
    ggml_tensor* o = ggml_mul_mat(c, v, kq);  // [d, tq, heads, b]
    o = ggml_cont(c, ggml_permute(c, o, 0, 2, 1, 3));
    return ggml_reshape_3d(c, o, hidden, tq, b);
  }

  ggml_cgraph* Build(ggml_context* c, int batch, ggml_tensor** input, ggml_tensor** output) const {
    const VisionConfig& v = cfg.vision;
    const int64_t n = v.patches(), k = int64_t(3) * v.patch_size * v.patch_size;
    ggml_tensor* patches = ggml_new_tensor_3d(c, GGML_TYPE_F32, k, n, batch);
    ggml_set_name(patches, "patches");
    ggml_set_input(patches);
    *input = patches;
    ggml_tensor* x = ggml_mul_mat(c, patch_w, patches);  // [hidden, n, batch]
    if (patch_b) x = ggml_add(c, x, patch_b);
    if (cls) {
      ggml_tensor* cls_b = ggml_repeat(c, ggml_reshape_3d(c, cls, v.hidden, 1, 1),
                                       ggml_new_tensor_3d(c, GGML_TYPE_F32, v.hidden, 1, batch));
      x = ggml_concat(c, cls_b, x, 1);  // [hidden, n + 1, batch]
    }
    x = ggml_add(c, x, pos);
    if (pre_ln_w) x = Norm(c, x, pre_ln_w, pre_ln_b);
    for (const Layer& l : layers) {
      ggml_tensor* h = Norm(c, x, l.ln1_w, l.ln1_b);
      ggml_tensor* a = Attention(c, Linear(c, h, l.q_w, l.q_b), Linear(c, h, l.k_w, l.k_b),
                                 Linear(c, h, l.v_w, l.v_b));
      x = ggml_add(c, x, Linear(c, a, l.o_w, l.o_b));
      h = Norm(c, x, l.ln2_w, l.ln2_b);
      h = Linear(c, Act(c, Linear(c, h, l.fc1_w, l.fc1_b)), l.fc2_w, l.fc2_b);
      x = ggml_add(c, x, h);
    }
    ggml_tensor* pooled;
    if (cfg.family == Family::kClip) {
      ggml_tensor* first =
          ggml_view_2d(c, x, v.hidden, batch, x->nb[2], 0);  // token 0 of each image
      pooled = Norm(c, ggml_cont(c, first), post_ln_w, post_ln_b);
      if (proj) pooled = ggml_mul_mat(c, proj, pooled);
    } else {
      x = Norm(c, x, post_ln_w, post_ln_b);
      ggml_tensor* q = Linear(c, probe, hq_w, hq_b);  // [hidden, 1]
      q = ggml_repeat(c, ggml_reshape_3d(c, q, v.hidden, 1, 1),
                      ggml_new_tensor_3d(c, GGML_TYPE_F32, v.hidden, 1, batch));
      ggml_tensor* a = Attention(c, q, Linear(c, x, hk_w, hk_b), Linear(c, x, hv_w, hv_b));
      ggml_tensor* o = Linear(c, a, ho_w, ho_b);  // [hidden, 1, batch]
      ggml_tensor* h = Norm(c, o, hln_w, hln_b);
      h = Linear(c, Act(c, Linear(c, h, hfc1_w, hfc1_b)), hfc2_w, hfc2_b);
      pooled = ggml_reshape_2d(c, ggml_add(c, o, h), v.hidden, batch);
    }
    pooled = ggml_l2_norm(c, pooled, 1e-12f);
    ggml_set_name(pooled, "embedding");
    ggml_set_output(pooled);
    *output = pooled;
    ggml_cgraph* gf = ggml_new_graph_custom(c, 8192, false);
    ggml_build_forward_expand(gf, pooled);
    return gf;
  }
};

namespace {

// Collects tensor requirements first (name, expected PyTorch shape, matrix or vector), then
// creates and fills them once all are validated.
struct WeightPlan {
  struct Item {
    std::string name;
    std::vector<int64_t> shape;
    const TensorView* src;
    ggml_tensor** dst;
    bool matrix;
    int64_t row_offset = 0;  // for slices of a fused tensor (in_proj): first row
  };
  std::vector<Item> items;
};

ggml_type MatrixType(WeightType w, DType stored, int64_t row) {
  switch (w) {
    case WeightType::kF32:
      return GGML_TYPE_F32;
    case WeightType::kF16:
      return GGML_TYPE_F16;
    case WeightType::kQ8_0:
      return row % 32 == 0 ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
    case WeightType::kStored:
      break;
  }
  return stored == DType::kF32 ? GGML_TYPE_F32 : GGML_TYPE_F16;
}

}  // namespace

ImageEncoder::ImageEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ImageEncoder::~ImageEncoder() = default;
const ModelConfig& ImageEncoder::config() const {
  return impl_->cfg;
}
int ImageEncoder::dim() const {
  return impl_->cfg.embed_dim();
}
int ImageEncoder::input_size() const {
  return impl_->cfg.vision.image_size;
}

Result<std::unique_ptr<ImageEncoder>> ImageEncoder::Load(const std::string& dir,
                                                         const EncoderOptions& opt) {
  auto cfg = LoadModelConfig(dir);
  if (!cfg.ok()) return cfg.status();
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  if (!file.ok()) return file.status();
  const SafetensorsFile& st = **file;
  auto impl = std::make_unique<Impl>();
  impl->cfg = *cfg;
  impl->opt = opt;
  impl->threads = opt.threads > 0
                      ? opt.threads
                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const VisionConfig& v = impl->cfg.vision;
  const bool clip = impl->cfg.family == Family::kClip;
  const int64_t H = v.hidden, I = v.intermediate, P = v.patch_size;

  WeightPlan plan;
  Status missing;
  auto need = [&](const std::string& name, std::vector<int64_t> shape, ggml_tensor** dst,
                  bool matrix, int64_t row_offset = 0, const std::string& source = "") {
    const std::string src_name = source.empty() ? name : source;
    const TensorView* t = st.Find(src_name);
    if (!missing.ok()) return;
    if (!t) {
      missing = Status::Invalid(fmt::format("{}: tensor {} is missing", st.path(), src_name));
      return;
    }
    if (t->dtype != DType::kF32 && t->dtype != DType::kF16 && t->dtype != DType::kBF16) {
      missing = Status::Invalid(fmt::format("{}: tensor {} has dtype {}, expected F32, F16 or BF16",
                                            st.path(), src_name, DTypeName(t->dtype)));
      return;
    }
    plan.items.push_back({name, std::move(shape), t, dst, matrix, row_offset});
  };
  const std::string vm = "vision_model.";
  need(vm + "embeddings.patch_embedding.weight", {H, 3, P, P}, &impl->patch_w, true);
  if (!clip) need(vm + "embeddings.patch_embedding.bias", {H}, &impl->patch_b, false);
  need(vm + "embeddings.position_embedding.weight", {v.patches() + (clip ? 1 : 0), H}, &impl->pos,
       false);
  if (clip) {
    need(vm + "embeddings.class_embedding", {H}, &impl->cls, false);
    need(vm + "pre_layrnorm.weight", {H}, &impl->pre_ln_w, false);
    need(vm + "pre_layrnorm.bias", {H}, &impl->pre_ln_b, false);
  }
  impl->layers.resize(v.layers);
  for (int i = 0; i < v.layers; ++i) {
    Layer& l = impl->layers[i];
    std::string p = fmt::format("{}encoder.layers.{}.", vm, i);
    need(p + "layer_norm1.weight", {H}, &l.ln1_w, false);
    need(p + "layer_norm1.bias", {H}, &l.ln1_b, false);
    need(p + "layer_norm2.weight", {H}, &l.ln2_w, false);
    need(p + "layer_norm2.bias", {H}, &l.ln2_b, false);
    for (auto [nm, w, b] :
         {std::tuple{"q_proj", &l.q_w, &l.q_b}, std::tuple{"k_proj", &l.k_w, &l.k_b},
          std::tuple{"v_proj", &l.v_w, &l.v_b}, std::tuple{"out_proj", &l.o_w, &l.o_b}}) {
      need(p + "self_attn." + nm + ".weight", {H, H}, w, true);
      need(p + "self_attn." + nm + ".bias", {H}, b, false);
    }
    need(p + "mlp.fc1.weight", {I, H}, &l.fc1_w, true);
    need(p + "mlp.fc1.bias", {I}, &l.fc1_b, false);
    need(p + "mlp.fc2.weight", {H, I}, &l.fc2_w, true);
    need(p + "mlp.fc2.bias", {H}, &l.fc2_b, false);
  }
  need(vm + "post_layernorm.weight", {H}, &impl->post_ln_w, false);
  need(vm + "post_layernorm.bias", {H}, &impl->post_ln_b, false);
  if (clip) {
    if (impl->cfg.projection_dim > 0)
      need("visual_projection.weight", {impl->cfg.projection_dim, H}, &impl->proj, true);
  } else {
    std::string h = vm + "head.";
    need(h + "probe", {1, 1, H}, &impl->probe, false);
    // in_proj packs q, k, v row blocks: three [H, H] slices.
    need(h + "attention.in_proj_weight#q", {H, H}, &impl->hq_w, true, 0,
         h + "attention.in_proj_weight");
    need(h + "attention.in_proj_weight#k", {H, H}, &impl->hk_w, true, H,
         h + "attention.in_proj_weight");
    need(h + "attention.in_proj_weight#v", {H, H}, &impl->hv_w, true, 2 * H,
         h + "attention.in_proj_weight");
    need(h + "attention.in_proj_bias#q", {H}, &impl->hq_b, false, 0, h + "attention.in_proj_bias");
    need(h + "attention.in_proj_bias#k", {H}, &impl->hk_b, false, H, h + "attention.in_proj_bias");
    need(h + "attention.in_proj_bias#v", {H}, &impl->hv_b, false, 2 * H,
         h + "attention.in_proj_bias");
    need(h + "attention.out_proj.weight", {H, H}, &impl->ho_w, true);
    need(h + "attention.out_proj.bias", {H}, &impl->ho_b, false);
    need(h + "layernorm.weight", {H}, &impl->hln_w, false);
    need(h + "layernorm.bias", {H}, &impl->hln_b, false);
    need(h + "mlp.fc1.weight", {I, H}, &impl->hfc1_w, true);
    need(h + "mlp.fc1.bias", {I}, &impl->hfc1_b, false);
    need(h + "mlp.fc2.weight", {H, I}, &impl->hfc2_w, true);
    need(h + "mlp.fc2.bias", {H}, &impl->hfc2_b, false);
  }
  LUMEN_RETURN_IF_ERROR(missing);
  // Shapes: a slice takes its rows from a larger tensor; everything else must match exactly.
  for (const auto& it : plan.items) {
    std::vector<int64_t> want = it.shape;
    bool ok;
    if (it.name.find('#') != std::string::npos) {
      ok = it.src->shape.size() == want.size() && it.src->shape[0] == 3 * want[0] &&
           (want.size() < 2 || it.src->shape[1] == want[1]);
      want[0] *= 3;
    } else {
      ok = it.src->shape == want;
    }
    if (!ok)
      return Status::Invalid(fmt::format("{}: tensor {} has shape [{}], the config implies [{}]",
                                         st.path(), it.src->name, fmt::join(it.src->shape, ", "),
                                         fmt::join(want, ", ")));
  }

  ggml_init_params params{ggml_tensor_overhead() * (plan.items.size() + 8), nullptr, true};
  impl->wctx.reset(ggml_init(params));
  if (!impl->wctx) return Status::Internal("ggml_init failed");
  for (auto& it : plan.items) {
    // ggml dims are PyTorch dims reversed; a matrix is [in, out] = ne0 x ne1.
    int64_t in = 1;
    for (size_t d = 1; d < it.shape.size(); ++d) in *= it.shape[d];
    ggml_tensor* t;
    if (it.matrix) {
      t = ggml_new_tensor_2d(impl->wctx.get(), MatrixType(opt.weights, it.src->dtype, in), in,
                             it.shape[0]);
    } else {
      // Kept in f32 with PyTorch's dims reversed (position embeddings stay [hidden, tokens]).
      int64_t ne[4] = {1, 1, 1, 1};
      int nd = 0;
      for (auto d = it.shape.rbegin(); d != it.shape.rend() && nd < 4; ++d) ne[nd++] = *d;
      t = ggml_new_tensor(impl->wctx.get(), GGML_TYPE_F32, std::max(1, nd), ne);
    }
    ggml_set_name(t, it.name.substr(0, GGML_MAX_NAME - 1).c_str());
    *it.dst = t;
  }
  impl->backend.reset(ggml_backend_cpu_init());
  if (!impl->backend) return Status::Internal("cannot start the ggml CPU backend");
  ggml_backend_cpu_set_n_threads(impl->backend.get(), impl->threads);
  impl->wbuf.reset(ggml_backend_alloc_ctx_tensors(impl->wctx.get(), impl->backend.get()));
  if (!impl->wbuf) return Status::Internal("cannot allocate the model weights");
  std::vector<float> f32;
  std::vector<uint8_t> conv;
  for (auto& it : plan.items) {
    ggml_tensor* t = *it.dst;
    int64_t n = ggml_nelements(t);
    int64_t row = t->ne[0];
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
  impl->galloc.reset(ggml_gallocr_new(ggml_backend_get_default_buffer_type(impl->backend.get())));
  return std::unique_ptr<ImageEncoder>(new ImageEncoder(std::move(impl)));
}

std::vector<float> ImageEncoder::Normalize(const Image& sq) const {
  const int s = input_size();
  const auto& pre = impl_->cfg.preprocess;
  std::vector<float> out(input_floats());
  for (int c = 0; c < 3; ++c) {
    const float scale = 1.0f / (255.0f * pre.std[c]), shift = pre.mean[c] / pre.std[c];
    float* plane = out.data() + size_t(c) * s * s;
    for (int y = 0; y < s; ++y) {
      const uint8_t* row = sq.row(std::min(y, sq.height - 1));
      for (int x = 0; x < s; ++x)
        plane[y * s + x] = row[std::min(x, sq.width - 1) * 3 + c] * scale - shift;
    }
  }
  return out;
}

std::vector<float> ImageEncoder::Preprocess(const Image& reduced, int orientation) const {
  ModelInputSpec spec;
  spec.size = input_size();
  spec.mode = impl_->cfg.preprocess.resize == PreprocessConfig::Resize::kSquash
                  ? ModelResize::kSquash
                  : ModelResize::kCenterCrop;
  auto sq = MakeModelInput(reduced, orientation, spec);
  if (!sq.ok()) return std::vector<float>(input_floats(), 0.f);
  return Normalize(*sq);
}

Status ImageEncoder::Encode(const float* inputs, int batch, float* out) {
  if (batch <= 0) return Status::Invalid("empty batch");
  Impl& m = *impl_;
  const VisionConfig& v = m.cfg.vision;
  const size_t graph_mem = ggml_tensor_overhead() * 8192 + ggml_graph_overhead_custom(8192, false);
  std::vector<uint8_t> graph_buf(graph_mem);
  ggml_init_params params{graph_mem, graph_buf.data(), true};
  std::unique_ptr<ggml_context, CtxFree> gctx(ggml_init(params));
  ggml_tensor *input = nullptr, *output = nullptr;
  ggml_cgraph* gf = m.Build(gctx.get(), batch, &input, &output);
  if (!ggml_gallocr_alloc_graph(m.galloc.get(), gf))
    return Status::Internal("cannot allocate the compute graph");
  // CHW images -> patch rows: element (c, ky, kx) of patch (py, px) at c*P*P + ky*P + kx,
  // patches in row-major order (the layout of the Conv2d weight and of HF's flatten).
  const int s = v.image_size, p = v.patch_size, g = s / p;
  const size_t k = size_t(3) * p * p;
  std::vector<float> patches(k * g * g * batch);
  for (int b = 0; b < batch; ++b) {
    const float* img = inputs + size_t(b) * 3 * s * s;
    for (int py = 0; py < g; ++py)
      for (int px = 0; px < g; ++px) {
        float* dst = patches.data() + (size_t(b) * g * g + size_t(py) * g + px) * k;
        for (int c = 0; c < 3; ++c)
          for (int ky = 0; ky < p; ++ky)
            std::memcpy(dst + (size_t(c) * p + ky) * p,
                        img + (size_t(c) * s + py * p + ky) * s + px * p, size_t(p) * 4);
      }
  }
  ggml_backend_tensor_set(input, patches.data(), 0, patches.size() * 4);
  ggml_backend_cpu_set_n_threads(m.backend.get(), m.threads);
  if (ggml_backend_graph_compute(m.backend.get(), gf) != GGML_STATUS_SUCCESS)
    return Status::Internal("ggml graph computation failed");
  ggml_backend_tensor_get(output, out, 0, size_t(dim()) * batch * 4);
  return Status::Ok();
}

}  // namespace lumen::ml
