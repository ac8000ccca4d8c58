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
#include "lumen/ml/model_files.h"
#include "lumen/ml/safetensors.h"
#include "tower.h"

namespace lumen::ml {

const char* WeightTypeName(WeightType t) {
  switch (t) {
    case WeightType::kStored:
      return "stored";
    case WeightType::kF32:
      return "f32";
    case WeightType::kF16:
      return "f16";
    case WeightType::kBF16:
      return "bf16";
    case WeightType::kQ8_0:
      return "q8_0";
    case WeightType::kInt8:
      return "int8";
  }
  return "?";
}

struct ImageEncoder::Impl {
  ModelConfig cfg;
  EncoderOptions opt;
  int threads = 1;
  detail::BackendPtr backend;
  std::unique_ptr<detail::Weights> weights;
  detail::GallocPtr galloc;
  detail::Blocks blocks;
  detail::Linear patch, proj;
  ggml_tensor *pos = nullptr, *cls = nullptr;
  ggml_tensor *pre_ln_w = nullptr, *pre_ln_b = nullptr, *post_ln_w = nullptr, *post_ln_b = nullptr;
  std::vector<detail::Layer> layers;
  // SigLIP attention-pooling head (MAP): its k and v projections stacked in one product.
  ggml_tensor* probe = nullptr;
  detail::Linear hq, hkv, ho, hfc1, hfc2;
  ggml_tensor *hln_w = nullptr, *hln_b = nullptr;
  // The built graph of the last Encode() (its batch size; 0: none).
  int graph_batch = 0;
  std::vector<uint8_t> graph_buf;
  detail::CtxPtr gctx;
  ggml_cgraph* graph = nullptr;
  ggml_tensor *input = nullptr, *output = nullptr;
  std::vector<float> patches;

  ggml_cgraph* Build(ggml_context* c, int batch, ggml_tensor** input, ggml_tensor** output) const {
    const VisionConfig& v = cfg.vision;
    const detail::Blocks& B = blocks;
    const int64_t n = v.patches(), k = int64_t(3) * v.patch_size * v.patch_size;
    ggml_tensor* patches = ggml_new_tensor_3d(c, GGML_TYPE_F32, k, n, batch);
    ggml_set_name(patches, "patches");
    ggml_set_input(patches);
    *input = patches;
    ggml_tensor* x = B.Apply(c, patches, patch);  // [hidden, n, batch]
    if (cls) {
      ggml_tensor* cls_b = ggml_repeat(c, ggml_reshape_3d(c, cls, v.hidden, 1, 1),
                                       ggml_new_tensor_3d(c, GGML_TYPE_F32, v.hidden, 1, batch));
      x = ggml_concat(c, cls_b, x, 1);  // [hidden, n + 1, batch]
    }
    x = ggml_add(c, x, pos);
    if (pre_ln_w) x = B.Norm(c, x, pre_ln_w, pre_ln_b);
    for (const detail::Layer& l : layers) x = B.Layer(c, x, l, false);
    ggml_tensor* pooled;
    if (cfg.family == Family::kClip) {
      ggml_tensor* first =
          ggml_view_2d(c, x, v.hidden, batch, x->nb[2], 0);  // token 0 of each image
      pooled = B.Norm(c, ggml_cont(c, first), post_ln_w, post_ln_b);
      pooled = B.Apply(c, pooled, proj);
    } else {
      x = B.Norm(c, x, post_ln_w, post_ln_b);
      ggml_tensor* q = B.Apply(c, ggml_reshape_3d(c, probe, v.hidden, 1, 1), hq);  // [hidden, 1]
      q = ggml_repeat(c, q, ggml_new_tensor_3d(c, GGML_TYPE_F32, v.hidden, 1, batch));
      ggml_tensor* kv = B.Apply(c, x, hkv);  // [2 * hidden, n, batch]
      ggml_tensor* k = ggml_view_3d(c, kv, v.hidden, kv->ne[1], kv->ne[2], kv->nb[1], kv->nb[2], 0);
      ggml_tensor* val = ggml_view_3d(c, kv, v.hidden, kv->ne[1], kv->ne[2], kv->nb[1], kv->nb[2],
                                      kv->nb[0] * v.hidden);
      ggml_tensor* a = B.Attention(c, q, k, val, false);
      ggml_tensor* o = B.Apply(c, a, ho);  // [hidden, 1, batch]
      ggml_tensor* h = B.Norm(c, o, hln_w, hln_b);
      h = B.Apply(c, h, hfc1);
      if (!hfc1.fused_act()) h = B.Act(c, h);
      h = B.Apply(c, h, hfc2);
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

ImageEncoder::ImageEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ImageEncoder::~ImageEncoder() = default;
const ModelConfig& ImageEncoder::config() const {
  return impl_->cfg;
}
int ImageEncoder::dim() const {
  return impl_->cfg.embed_dim();
}
int ImageEncoder::amx_matrices() const {
  return impl_->weights->amx_matrices();
}
int ImageEncoder::own_matrices() const {
  return impl_->weights->own_matrices();
}
std::string ImageEncoder::own_kernel() const {
  return impl_->weights->own_kernel();
}
int ImageEncoder::input_size() const {
  return impl_->cfg.vision.image_size;
}

Result<std::unique_ptr<ImageEncoder>> ImageEncoder::Load(const std::string& dir,
                                                         const EncoderOptions& opt) {
  auto model = OpenModel(dir);
  if (!model.ok()) return model.status();
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.cfg = (*model)->config;
  m.opt = opt;
  m.threads = detail::DefaultThreads(opt.threads);
  const VisionConfig& v = m.cfg.vision;
  m.blocks = {v.eps, v.heads, v.act};
  const bool clip = m.cfg.family == Family::kClip;
  const int64_t H = v.hidden, I = v.intermediate, P = v.patch_size;
  m.weights = std::make_unique<detail::Weights>(*(*model)->tensors, opt);
  detail::Weights& w = *m.weights;
  const std::string vm = "vision_model.";
  const std::string pe = vm + "embeddings.patch_embedding.";
  w.NeedLinear({{pe + "weight", clip ? std::string() : pe + "bias"}}, H, {3, P, P}, &m.patch);
  w.Need(vm + "embeddings.position_embedding.weight", {v.patches() + (clip ? 1 : 0), H}, &m.pos);
  if (clip) {
    w.Need(vm + "embeddings.class_embedding", {H}, &m.cls);
    w.Need(vm + "pre_layrnorm.weight", {H}, &m.pre_ln_w);
    w.Need(vm + "pre_layrnorm.bias", {H}, &m.pre_ln_b);
  }
  w.NeedLayers(vm + "encoder.layers.", v.layers, H, I, &m.layers);
  w.Need(vm + "post_layernorm.weight", {H}, &m.post_ln_w);
  w.Need(vm + "post_layernorm.bias", {H}, &m.post_ln_b);
  if (clip) {
    if (m.cfg.projection_dim > 0)
      w.NeedLinear({{"visual_projection.weight", ""}}, m.cfg.projection_dim, {H}, &m.proj);
  } else {
    const std::string h = vm + "head.";
    const std::string in_w = h + "attention.in_proj_weight", in_b = h + "attention.in_proj_bias";
    w.Need(h + "probe", {1, 1, H}, &m.probe);
    // in_proj packs the q, k and v row blocks.
    w.NeedLinear({{in_w, in_b, 0, true}}, H, {H}, &m.hq);
    w.NeedLinear({{in_w, in_b, H, true}, {in_w, in_b, 2 * H, true}}, H, {H}, &m.hkv);
    auto part = [&](const std::string& n) {
      return detail::LinearPart{h + n + ".weight", h + n + ".bias"};
    };
    w.NeedLinear({part("attention.out_proj")}, H, {H}, &m.ho);
    w.Need(h + "layernorm.weight", {H}, &m.hln_w);
    w.Need(h + "layernorm.bias", {H}, &m.hln_b);
    w.NeedLinear({part("mlp.fc1")}, I, {H}, &m.hfc1);
    w.NeedLinear({part("mlp.fc2")}, H, {I}, &m.hfc2);
  }
  m.backend.reset(ggml_backend_cpu_init());
  if (!m.backend) return Status::Internal("cannot start the ggml CPU backend");
  ggml_backend_cpu_set_n_threads(m.backend.get(), m.threads);
  LUMEN_RETURN_IF_ERROR(w.Load(m.backend.get()));
  m.blocks.Use(opt, &m.layers, {&m.hfc1});
  m.galloc.reset(ggml_gallocr_new(ggml_backend_get_default_buffer_type(m.backend.get())));
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

Image ImageEncoder::Square(const Image& reduced, int orientation) const {
  ModelInputSpec spec;
  spec.size = input_size();
  spec.mode = impl_->cfg.preprocess.resize == PreprocessConfig::Resize::kSquash
                  ? ModelResize::kSquash
                  : ModelResize::kCenterCrop;
  auto sq = MakeModelInput(reduced, orientation, spec);
  return sq.ok() ? std::move(*sq) : Image(input_size(), input_size(), 3);
}

std::vector<float> ImageEncoder::Preprocess(const Image& reduced, int orientation) const {
  return Normalize(Square(reduced, orientation));
}

Status ImageEncoder::Encode(const float* inputs, int batch, float* out) {
  if (batch <= 0) return Status::Invalid("empty batch");
  Impl& m = *impl_;
  const VisionConfig& v = m.cfg.vision;
  // The graph of the last batch size stays built and allocated: the pipeline sends full batches.
  if (m.graph_batch != batch) {
    m.graph_batch = 0;
    const size_t graph_mem =
        ggml_tensor_overhead() * 8192 + ggml_graph_overhead_custom(8192, false);
    m.graph_buf.assign(graph_mem, 0);
    ggml_init_params params{graph_mem, m.graph_buf.data(), true};
    m.gctx.reset(ggml_init(params));
    m.graph = m.Build(m.gctx.get(), batch, &m.input, &m.output);
    if (!ggml_gallocr_alloc_graph(m.galloc.get(), m.graph))
      return Status::Internal("cannot allocate the compute graph");
    m.graph_batch = batch;
  }
  ggml_tensor *input = m.input, *output = m.output;
  ggml_cgraph* gf = m.graph;
  // CHW images -> patch rows: element (c, ky, kx) of patch (py, px) at c*P*P + ky*P + kx,
  // patches in row-major order (the layout of the Conv2d weight and of HF's flatten).
  const int s = v.image_size, p = v.patch_size, g = s / p;
  const size_t k = size_t(3) * p * p;
  std::vector<float>& patches = m.patches;
  patches.resize(k * g * g * batch);
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
