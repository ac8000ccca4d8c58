"""Text towers: a small random-weight SigLIP or CLIP text model in Hugging Face's layout, with the
tokenizer files (SigLIP: a SentencePiece model trained here; CLIP: vocab.json + merges.txt from
a byte-level BPE trained here), and reference results written independently of lumen:
token ids (texts.json) and L2-normalised text embeddings (text_emb.bin).

usage: /usr/bin/python3 text_reference.py OUT_DIR siglip|clip [SEED] [tiny|base]

The model folder also gets a vision tower (from reference.py) so that config.json is complete.
"""
import json
import math
import os
import sys

import numpy as np
import regex
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402

CORPUS = """a photo of a dog on the beach at sunset
a photo of a cat sleeping on a red sofa
two children playing football in the park
the mountains are covered with snow in winter
a bowl of fresh fruit on a wooden table
café crème and croissants in Paris
a yellow taxi in the streets of New York
an old lighthouse near the sea during a storm
birthday party with balloons and a chocolate cake
portrait of a smiling woman with glasses
Zürich, Genève, São Paulo, Kraków: cities of the world
a bicycle leaning against a brick wall
fireworks over the river on new year's eve
it's a beautiful day; we're going hiking!
""".strip().splitlines()

TEXTS = [
    "a photo of a dog",
    "A Photo   of a DOG!",
    "café crème at São Paulo",
    "emoji 🐶🌅 and ünïcödé",
    "it's 2024: we're at the beach, aren't we?",
    "",
    " ".join(["a very long caption about a dog on the beach at sunset"] * 12),
]


# ---- CLIP byte-level BPE (independent of lumen's C++ implementation) ----
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


CLIP_PAT = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                         regex.IGNORECASE)


def clip_words(text):
    text = regex.sub(r"\s+", " ", text).strip().lower()
    b2u = bytes_to_unicode()
    out = []
    for w in CLIP_PAT.findall(text):
        syms = [b2u[b] for b in w.encode("utf-8")]
        syms[-1] += "</w>"
        out.append(syms)
    return out


def train_clip_bpe(corpus, merges_wanted):
    words = {}
    for line in corpus:
        for syms in clip_words(line):
            words[tuple(syms)] = words.get(tuple(syms), 0) + 1
    merges = []
    for _ in range(merges_wanted):
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(sorted(pairs), key=lambda p: pairs[p])
        merges.append(best)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = c
        words = new
    b2u = bytes_to_unicode()
    vocab = list(b2u.values()) + [v + "</w>" for v in b2u.values()]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(vocab)}, merges


def clip_tokenize(text, vocab, merges, max_len):
    ranks = {m: i for i, m in enumerate(merges)}
    ids = [vocab["<|startoftext|>"]]
    for syms in clip_words(text):
        w = list(syms)
        while len(w) > 1:
            cand = [(ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(w, w[1:]))]
            r, i = min(cand)
            if r == 1 << 30:
                break
            a, b = w[i], w[i + 1]
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            w = out
        ids += [vocab[s] for s in w]
    ids = ids[: max_len - 1] + [vocab["<|endoftext|>"]]
    return ids


# ---- SigLIP: SentencePiece ----
PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def siglip_canonical(text):
    text = text.lower().translate(str.maketrans("", "", PUNCT))
    return regex.sub(r"\s+", " ", text).strip()


def train_spm(out, vocab_size):
    import sentencepiece as spm
    spm.SentencePieceTrainer.train(sentence_iterator=iter([siglip_canonical(l) for l in CORPUS] * 20),
                                   model_prefix=os.path.join(out, "spiece"), vocab_size=vocab_size,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   byte_fallback=True, character_coverage=1.0, minloglevel=2)
    return spm.SentencePieceProcessor(model_file=os.path.join(out, "spiece.model"))


def siglip_tokenize(sp, text, max_len):
    ids = sp.encode(siglip_canonical(text))[: max_len - 1] + [1]
    return ids + [0] * (max_len - len(ids))


# ---- text tower ----
def make_text_weights(family, cfg, gen):
    H, I, L, V, T = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"], \
        cfg["max_position_embeddings"]
    r = lambda *s, scale=0.08: torch.randn(*s, generator=gen) * scale
    one = lambda *s: 1.0 + r(*s, scale=0.1)
    w, tm = {}, "text_model."
    w[tm + "embeddings.token_embedding.weight"] = r(V, H, scale=0.5)
    w[tm + "embeddings.position_embedding.weight"] = r(T, H, scale=0.2)
    reference.layer_weights(w, tm + "encoder.layers.", L, H, I, r, one)
    w[tm + "final_layer_norm.weight"] = one(H)
    w[tm + "final_layer_norm.bias"] = r(H)
    if family == "siglip":
        w[tm + "head.weight"] = r(cfg["projection_size"], H, scale=0.15)
        w[tm + "head.bias"] = r(cfg["projection_size"])
    else:
        w["text_projection.weight"] = r(cfg["projection_dim"], H, scale=0.15)
    return w


def text_forward(family, cfg, w, ids):
    tm, H, eps, heads = "text_model.", cfg["hidden_size"], cfg["layer_norm_eps"], cfg["num_attention_heads"]
    ln = lambda t, p: F.layer_norm(t, (H,), w[p + ".weight"], w[p + ".bias"], eps)
    lin = lambda t, p: F.linear(t, w[p + ".weight"], w.get(p + ".bias"))
    ids = torch.tensor([ids])
    T = ids.shape[1]
    h = w[tm + "embeddings.token_embedding.weight"][ids] + w[tm + "embeddings.position_embedding.weight"][:T]
    mask = None
    if family == "clip":
        mask = torch.full((T, T), float("-inf")).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"{tm}encoder.layers.{i}."
        t = ln(h, p + "layer_norm1")
        q, k, v = lin(t, p + "self_attn.q_proj"), lin(t, p + "self_attn.k_proj"), lin(t, p + "self_attn.v_proj")
        d = H // heads
        q, k, v = (x.view(1, T, heads, d).transpose(1, 2) for x in (q, k, v))
        s = q @ k.transpose(-1, -2) / math.sqrt(d)
        if mask is not None:
            s = s + mask
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(1, T, H)
        h = h + lin(a, p + "self_attn.out_proj")
        t = ln(h, p + "layer_norm2")
        h = h + lin(reference.act(family, lin(t, p + "mlp.fc1")), p + "mlp.fc2")
    h = ln(h, tm + "final_layer_norm")
    if family == "siglip":
        out = lin(h[:, -1], tm + "head")
    else:
        eos = int((ids[0] == cfg["eos_token_id"]).nonzero()[0])
        out = F.linear(h[:, eos], w["text_projection.weight"])
    return F.normalize(out, dim=-1)[0]


def main():
    out, family = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    size = sys.argv[4] if len(sys.argv) > 4 else "tiny"
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(seed + 1000)
    if size == "tiny":
        text = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
                "max_position_embeddings": 16}
    else:
        text = {"hidden_size": 768 if family == "siglip" else 512, "intermediate_size": 3072 if family == "siglip" else 2048,
                "num_attention_heads": 12 if family == "siglip" else 8, "num_hidden_layers": 12,
                "max_position_embeddings": 64 if family == "siglip" else 77}
    if family == "siglip":
        sp = train_spm(out, 320)
        text.update(vocab_size=sp.get_piece_size(), layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh",
                    projection_size=text["hidden_size"], eos_token_id=1, pad_token_id=0)
        if size != "tiny":
            text["vocab_size"] = 32000
        tokens = [siglip_tokenize(sp, t, text["max_position_embeddings"]) for t in TEXTS]
    else:
        vocab, merges = train_clip_bpe(CORPUS, 150)
        with open(os.path.join(out, "vocab.json"), "w") as f:
            json.dump(vocab, f, ensure_ascii=False)
        with open(os.path.join(out, "merges.txt"), "w") as f:
            f.write("#version: 0.2\n")
            for a, b in merges:
                f.write(f"{a} {b}\n")
        text.update(vocab_size=len(vocab) if size == "tiny" else 49408, layer_norm_eps=1e-5, hidden_act="quick_gelu",
                    eos_token_id=vocab["<|endoftext|>"], bos_token_id=vocab["<|startoftext|>"])
        tokens = [clip_tokenize(t, vocab, merges, text["max_position_embeddings"]) for t in TEXTS]
    # The vision side and config.json come from reference.py; then add the text config and weights.
    argv = sys.argv
    sys.argv = ["reference.py", out, family, str(seed), "tiny" if size == "tiny" else ("b16" if family == "siglip" else "b32")]
    reference.main()
    sys.argv = argv
    config = json.load(open(os.path.join(out, "config.json")))
    config["text_config"] = text
    json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
    cfg = dict(text)
    cfg["projection_dim"] = config.get("projection_dim", 0)
    tw = make_text_weights(family, cfg, gen)
    # Merge with the vision weights into one model.safetensors.
    vision = reference.load_safetensors(os.path.join(out, "model.safetensors"))
    vision.update(tw)
    reference.write_safetensors(os.path.join(out, "model.safetensors"), vision)
    if size != "tiny":
        return
    with torch.no_grad():
        emb = torch.stack([text_forward(family, cfg, tw, ids) for ids in tokens])
    emb.numpy().astype(np.float32).tofile(os.path.join(out, "text_emb.bin"))
    json.dump({"texts": TEXTS, "tokens": tokens, "dim": int(emb.shape[1])},
              open(os.path.join(out, "texts.json"), "w"), ensure_ascii=False)


if __name__ == "__main__":
    main()
