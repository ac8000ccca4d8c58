#include "lumen/ml/model_config.h"

#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace lumen::ml {
namespace {

Status GetInt(const nlohmann::json& j, const char* key, int* out, const std::string& where) {
  if (!j.contains(key)) return Status::Ok();
  if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0 ||
      j[key].get<int64_t>() > (1 << 20))
    return Status::Invalid(fmt::format("{}: {} must be a positive integer", where, key));
  *out = j[key].get<int>();
  return Status::Ok();
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
// The fields every transformer tower has (vision_config and text_config alike), validated.
Status ReadTransformer(const nlohmann::json& c, const std::string& where, int* hidden, int* inter,
                       int* heads, int* layers, float* eps, Activation* act) {
  LUMEN_RETURN_IF_ERROR(GetInt(c, "hidden_size", hidden, where));
  LUMEN_RETURN_IF_ERROR(GetInt(c, "intermediate_size", inter, where));
  LUMEN_RETURN_IF_ERROR(GetInt(c, "num_attention_heads", heads, where));
  LUMEN_RETURN_IF_ERROR(GetInt(c, "num_hidden_layers", layers, where));
  if (c.contains("layer_norm_eps") && c["layer_norm_eps"].is_number())
    *eps = c["layer_norm_eps"].get<float>();
  if (c.contains("hidden_act")) {
    std::string a = c["hidden_act"].is_string() ? c["hidden_act"].get<std::string>() : "";
    if (a == "gelu_pytorch_tanh" || a == "gelu_new")
      *act = Activation::kGeluTanh;
    else if (a == "gelu")
      *act = Activation::kGeluErf;
    else if (a == "quick_gelu")
      *act = Activation::kQuickGelu;
    else
      return Status::Unsupported(fmt::format("{}: unsupported hidden_act \"{}\"", where, a));
  }
  if (*hidden % *heads != 0)
    return Status::Invalid(fmt::format(
        "{}: hidden_size {} is not divisible by num_attention_heads {}", where, *hidden, *heads));
  return Status::Ok();
}

}  // namespace

Result<ModelConfig> LoadModelConfig(const std::string& dir) {
  std::string cfg_path = dir + "/config.json";
  std::ifstream probe(cfg_path);
  if (!probe) return Status::NotFound(fmt::format("{}: not found", cfg_path));
  return ParseModelConfig(ReadText(cfg_path), ReadText(dir + "/preprocessor_config.json"), dir);
}

Result<ModelConfig> ParseModelConfig(const std::string& config_json,
                                     const std::string& preprocessor_json,
                                     const std::string& where) {
  const std::string cfg_path = where + "/config.json";
  auto j = nlohmann::json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Status::Corrupt(fmt::format("{}: not a JSON object", cfg_path));
  ModelConfig m;
  std::string type = j.value("model_type", "");
  if (type == "siglip" || type == "siglip_vision_model") {
    m.family = Family::kSiglip;
  } else if (type == "clip" || type == "clip_vision_model") {
    m.family = Family::kClip;
    m.vision.patch_size = 32;
    m.vision.eps = 1e-5f;
    m.vision.act = Activation::kQuickGelu;
    m.projection_dim = 512;
    m.preprocess.resize = PreprocessConfig::Resize::kShortEdgeCrop;
    m.preprocess.mean = {0.48145466f, 0.4578275f, 0.40821073f};
    m.preprocess.std = {0.26862954f, 0.26130258f, 0.27577711f};
  } else {
    return Status::Unsupported(
        fmt::format("{}: unknown architecture model_type \"{}\" (lumen knows siglip and clip)",
                    cfg_path, type));
  }
  const nlohmann::json& v = j.contains("vision_config") ? j["vision_config"] : j;
  std::string vwhere = cfg_path + " vision_config";
  LUMEN_RETURN_IF_ERROR(ReadTransformer(v, vwhere, &m.vision.hidden, &m.vision.intermediate,
                                        &m.vision.heads, &m.vision.layers, &m.vision.eps,
                                        &m.vision.act));
  LUMEN_RETURN_IF_ERROR(GetInt(v, "image_size", &m.vision.image_size, vwhere));
  LUMEN_RETURN_IF_ERROR(GetInt(v, "patch_size", &m.vision.patch_size, vwhere));
  if (m.family == Family::kClip)
    LUMEN_RETURN_IF_ERROR(GetInt(j, "projection_dim", &m.projection_dim, cfg_path));
  if (m.vision.image_size % m.vision.patch_size != 0)
    return Status::Invalid(fmt::format("{}: image_size {} is not a multiple of patch_size {}",
                                       vwhere, m.vision.image_size, m.vision.patch_size));

  if (j.contains("text_config") && j["text_config"].is_object()) {
    const nlohmann::json& t = j["text_config"];
    TextConfig& tc = m.text;
    tc.present = true;
    if (m.family == Family::kClip) {
      tc = TextConfig{true, 49408, 512,   2048, 8, 12, 77, 1e-5f, Activation::kQuickGelu,
                      0,    49407, 49406, 0};
    }
    std::string tw = cfg_path + " text_config";
    LUMEN_RETURN_IF_ERROR(GetInt(t, "vocab_size", &tc.vocab, tw));
    LUMEN_RETURN_IF_ERROR(ReadTransformer(t, tw, &tc.hidden, &tc.intermediate, &tc.heads,
                                          &tc.layers, &tc.eps, &tc.act));
    LUMEN_RETURN_IF_ERROR(GetInt(t, "max_position_embeddings", &tc.max_positions, tw));
    if (m.family == Family::kSiglip) tc.projection = tc.hidden;
    LUMEN_RETURN_IF_ERROR(GetInt(t, "projection_size", &tc.projection, tw));
    for (auto [key, out] :
         {std::pair{"eos_token_id", &tc.eos_id}, std::pair{"bos_token_id", &tc.bos_id},
          std::pair{"pad_token_id", &tc.pad_id}})
      if (t.contains(key) && t[key].is_number_integer()) *out = t[key].get<int>();
    if (tc.eos_id < 0 || tc.eos_id >= tc.vocab)
      return Status::Invalid(
          fmt::format("{}: eos_token_id {} outside the vocabulary", tw, tc.eos_id));
  }

  nlohmann::json pre_j = nlohmann::json::object();
  if (!preprocessor_json.empty()) {
    pre_j = nlohmann::json::parse(preprocessor_json, nullptr, false);
    if (pre_j.is_discarded() || !pre_j.is_object())
      return Status::Corrupt(fmt::format("{}/preprocessor_config.json: not a JSON object", where));
  }
  const nlohmann::json* pre = &pre_j;
  const std::string dir = where;
  auto read3 = [&](const char* key, std::array<float, 3>* out) -> Status {
    if (!pre->contains(key)) return Status::Ok();
    const auto& a = (*pre)[key];
    if (!a.is_array() || a.size() != 3)
      return Status::Invalid(
          fmt::format("{}/preprocessor_config.json: {} must have 3 numbers", dir, key));
    for (int i = 0; i < 3; ++i) (*out)[i] = a[i].get<float>();
    return Status::Ok();
  };
  LUMEN_RETURN_IF_ERROR(read3("image_mean", &m.preprocess.mean));
  LUMEN_RETURN_IF_ERROR(read3("image_std", &m.preprocess.std));
  if (pre->contains("do_center_crop") && (*pre)["do_center_crop"].is_boolean())
    m.preprocess.resize = (*pre)["do_center_crop"].get<bool>()
                              ? PreprocessConfig::Resize::kShortEdgeCrop
                              : PreprocessConfig::Resize::kSquash;
  return m;
}

}  // namespace lumen::ml
