"""Generates a small random-weight SigLIP or CLIP vision model in Hugging Face's layout
(config.json, preprocessor_config.json, model.safetensors) and the reference results of an
independent PyTorch forward pass written here (no transformers library): preprocessed inputs
and L2-normalised image embeddings for a few test images.

usage: /usr/bin/python3 reference.py OUT_DIR siglip|clip [SEED] [tiny|b16|b32]
(b16/b32: the real ViT-B sizes, for benchmarks; the reference results are then skipped)

Files written besides the model: images.bin (count, then per image: width, height, RGB bytes),
pre.bin (float32 preprocessed inputs, CHW), emb.bin (float32 embeddings), meta.json.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().to(torch.float32).contiguous().numpy()
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def layer_weights(w, prefix, count, H, I, r, one):
    """Random pre-LN encoder layers under `prefix` (HF names). Matrix scales shrink with the
    fan-in past the tiny test size (64 wide, 128 inner), so that every size has the same gain per
    layer: at the real ViT-B sizes (768/3072) the tiny scales would make attention one-hot and the
    network chaotic (a 1e-3 change of any weight flips the embedding), which no trained model is."""
    gh, gi = math.sqrt(64 / max(H, 64)), math.sqrt(128 / max(I, 128))
    for i in range(count):
        p = f"{prefix}{i}."
        for ln in ("layer_norm1", "layer_norm2"):
            w[p + ln + ".weight"] = one(H)
            w[p + ln + ".bias"] = r(H)
        for m in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[p + "self_attn." + m + ".weight"] = r(H, H, scale=0.15 * gh)
            w[p + "self_attn." + m + ".bias"] = r(H)
        w[p + "mlp.fc1.weight"] = r(I, H, scale=0.15 * gh)
        w[p + "mlp.fc1.bias"] = r(I)
        w[p + "mlp.fc2.weight"] = r(H, I, scale=0.1 * gi)
        w[p + "mlp.fc2.bias"] = r(H)


def load_safetensors(path):
    """name -> float32 tensor, from an F32/F16 safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        dt = {"F32": np.float32, "F16": np.float16}[t["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(data[b:e], dtype=dt).reshape(t["shape"]).astype(np.float32))
    return out


def load_model(d):
    """(family, cfg, weights) of a model folder (config.json + model.safetensors), as forward()
    takes them: for the benchmarks (bench/torch_encoder.py, bench/onnx_export.py)."""
    config = json.load(open(os.path.join(d, "config.json")))
    family = config["model_type"]
    cfg = dict(config["vision_config"])
    cfg.setdefault("layer_norm_eps", 1e-6 if family == "siglip" else 1e-5)
    cfg["projection_dim"] = config.get("projection_dim", 0)
    return family, cfg, load_safetensors(os.path.join(d, "model.safetensors"))


def make_weights(family, cfg, gen):
    H, I, P, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["patch_size"], cfg["num_hidden_layers"]
    n = (cfg["image_size"] // P) ** 2
    r = lambda *s, scale=0.08: torch.randn(*s, generator=gen) * scale
    one = lambda *s: 1.0 + r(*s, scale=0.1)
    w, vm = {}, "vision_model."
    gh, gi = math.sqrt(64 / max(H, 64)), math.sqrt(128 / max(I, 128))  # as in layer_weights
    w[vm + "embeddings.patch_embedding.weight"] = r(H, 3, P, P, scale=0.08 * math.sqrt(192 / max(3 * P * P, 192)))
    if family == "siglip":
        w[vm + "embeddings.patch_embedding.bias"] = r(H)
        w[vm + "embeddings.position_embedding.weight"] = r(n, H)
    else:
        w[vm + "embeddings.class_embedding"] = r(H, scale=0.5)
        w[vm + "embeddings.position_embedding.weight"] = r(n + 1, H)
        w[vm + "pre_layrnorm.weight"] = one(H)
        w[vm + "pre_layrnorm.bias"] = r(H)
    layer_weights(w, vm + "encoder.layers.", L, H, I, r, one)
    w[vm + "post_layernorm.weight"] = one(H)
    w[vm + "post_layernorm.bias"] = r(H)
    if family == "siglip":
        h = vm + "head."
        w[h + "probe"] = r(1, 1, H, scale=0.5)
        w[h + "attention.in_proj_weight"] = r(3 * H, H, scale=0.15 * gh)
        w[h + "attention.in_proj_bias"] = r(3 * H)
        w[h + "attention.out_proj.weight"] = r(H, H, scale=0.15 * gh)
        w[h + "attention.out_proj.bias"] = r(H)
        w[h + "layernorm.weight"] = one(H)
        w[h + "layernorm.bias"] = r(H)
        w[h + "mlp.fc1.weight"] = r(I, H, scale=0.15 * gh)
        w[h + "mlp.fc1.bias"] = r(I)
        w[h + "mlp.fc2.weight"] = r(H, I, scale=0.1 * gi)
        w[h + "mlp.fc2.bias"] = r(H)
        w["logit_scale"] = torch.tensor([math.log(10.0)])
        w["logit_bias"] = torch.tensor([-10.0])
    else:
        w["visual_projection.weight"] = r(cfg["projection_dim"], H, scale=0.15 * gh)
        w["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    return w


def act(family, x):
    if family == "siglip":
        return F.gelu(x, approximate="tanh")
    return x * torch.sigmoid(1.702 * x)


def mha(q, k, v, heads):
    B, Tq, H = q.shape
    d = H // heads
    q = q.view(B, Tq, heads, d).transpose(1, 2)
    k = k.view(B, -1, heads, d).transpose(1, 2)
    v = v.view(B, -1, heads, d).transpose(1, 2)
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (a @ v).transpose(1, 2).reshape(B, Tq, H)


def forward(family, cfg, w, x):
    """x: [B, 3, S, S] float32 -> L2-normalised embeddings."""
    vm, H, eps, heads = "vision_model.", cfg["hidden_size"], cfg["layer_norm_eps"], cfg["num_attention_heads"]
    ln = lambda t, p: F.layer_norm(t, (H,), w[p + ".weight"], w[p + ".bias"], eps)
    lin = lambda t, p, bias=True: F.linear(t, w[p + ".weight"], w.get(p + ".bias") if bias else None)
    h = F.conv2d(x, w[vm + "embeddings.patch_embedding.weight"], w.get(vm + "embeddings.patch_embedding.bias"),
                 stride=cfg["patch_size"])
    h = h.flatten(2).transpose(1, 2)
    if family == "clip":
        cls = w[vm + "embeddings.class_embedding"].expand(h.shape[0], 1, H)
        h = torch.cat([cls, h], dim=1)
    h = h + w[vm + "embeddings.position_embedding.weight"]
    if family == "clip":
        h = ln(h, vm + "pre_layrnorm")
    for i in range(cfg["num_hidden_layers"]):
        p = f"{vm}encoder.layers.{i}."
        t = ln(h, p + "layer_norm1")
        a = mha(lin(t, p + "self_attn.q_proj"), lin(t, p + "self_attn.k_proj"), lin(t, p + "self_attn.v_proj"), heads)
        h = h + lin(a, p + "self_attn.out_proj")
        t = ln(h, p + "layer_norm2")
        h = h + lin(act(family, lin(t, p + "mlp.fc1")), p + "mlp.fc2")
    if family == "clip":
        pooled = ln(h[:, 0], vm + "post_layernorm")
        out = F.linear(pooled, w["visual_projection.weight"])
    else:
        h = ln(h, vm + "post_layernorm")
        hp = vm + "head."
        wi, bi = w[hp + "attention.in_proj_weight"], w[hp + "attention.in_proj_bias"]
        probe = w[hp + "probe"].expand(h.shape[0], 1, H)
        q = F.linear(probe, wi[:H], bi[:H])
        k = F.linear(h, wi[H:2 * H], bi[H:2 * H])
        v = F.linear(h, wi[2 * H:], bi[2 * H:])
        o = F.linear(mha(q, k, v, heads), w[hp + "attention.out_proj.weight"], w[hp + "attention.out_proj.bias"])
        t = ln(o, hp + "layernorm")
        o = o + lin(act(family, lin(t, hp + "mlp.fc1")), hp + "mlp.fc2")
        out = o[:, 0]
    return F.normalize(out, dim=-1)


def preprocess(family, img, size):
    """Upright uint8 RGB PIL image -> CHW float32, as each model family was trained."""
    if family == "siglip":
        img = img.resize((size, size), Image.BICUBIC)
        mean, std = [0.5] * 3, [0.5] * 3
    else:
        w, h = img.size
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = img.size
        x0, y0 = (w - size) // 2, (h - size) // 2
        img = img.crop((x0, y0, x0 + size, y0 + size))
        mean, std = CLIP_MEAN, CLIP_STD
    a = np.asarray(img, dtype=np.float32) / 255.0
    a = (a - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return torch.from_numpy(a.transpose(2, 0, 1).copy())


def test_images(gen_np):
    imgs = []
    for (w, h) in ((96, 72), (61, 87), (40, 40)):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 128 / (w + h) + 60], axis=-1)
        noise = gen_np.normal(0, 18, size=base.shape)
        imgs.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return imgs


def main():
    out, family = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    size = sys.argv[4] if len(sys.argv) > 4 else "tiny"
    vision = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
              "image_size": 32, "patch_size": 8}
    if size in ("b16", "b32"):
        vision = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                  "num_hidden_layers": 12, "image_size": 224, "patch_size": 16 if size == "b16" else 32}
    if family == "siglip":
        vision.update(layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh")
        config = {"model_type": "siglip", "vision_config": vision}
        pre = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "do_resize": True,
               "size": {"height": vision["image_size"], "width": vision["image_size"]}, "resample": 3}
    else:
        vision.update(layer_norm_eps=1e-5, hidden_act="quick_gelu")
        config = {"model_type": "clip", "projection_dim": 48 if size == "tiny" else 512, "vision_config": vision}
        pre = {"image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_center_crop": True,
               "crop_size": vision["image_size"], "size": {"shortest_edge": vision["image_size"]}, "resample": 3}
    cfg = dict(vision)
    cfg["projection_dim"] = config.get("projection_dim", 0)
    w = make_weights(family, cfg, gen)
    write_safetensors(os.path.join(out, "model.safetensors"), w)
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
    json.dump(pre, open(os.path.join(out, "preprocessor_config.json"), "w"), indent=1)
    if size != "tiny":
        return

    imgs = test_images(np.random.default_rng(seed))
    with open(os.path.join(out, "images.bin"), "wb") as f:
        f.write(struct.pack("<i", len(imgs)))
        for a in imgs:
            f.write(struct.pack("<ii", a.shape[1], a.shape[0]))
            f.write(a.tobytes())
    x = torch.stack([preprocess(family, Image.fromarray(a), vision["image_size"]) for a in imgs])
    x.numpy().astype(np.float32).tofile(os.path.join(out, "pre.bin"))
    with torch.no_grad():
        e = forward(family, cfg, w, x)
    e.numpy().astype(np.float32).tofile(os.path.join(out, "emb.bin"))
    json.dump({"count": len(imgs), "dim": int(e.shape[1]), "size": vision["image_size"]},
              open(os.path.join(out, "meta.json"), "w"))


if __name__ == "__main__":
    main()
