"""Writes a random-weight vision-language model for llama.cpp's libmtmd: a llama-architecture
text model GGUF and an idefics3 (SmolVLM) mmproj GGUF: a SigLIP vision tower, pixel shuffle and
a linear projector.

    /usr/bin/python3 tests/llm/tiny_vlm_gguf.py OUTDIR [tiny|smolvlm-256m] [f32|f16]

tiny: 2+2 layers, 64/96 wide, 64 px images (tests). smolvlm-256m: the real shape of
SmolVLM-256M-Instruct (SigLIP-B/16 at 512 px, 12 layers x 768; SmolLM2-135M, 30 layers x 576,
vocab 49,152; scale factor 4, 64 tokens per 512 px tile): random weights, real timings.
Writes OUTDIR/model.gguf and OUTDIR/mmproj.gguf. The vocabulary has the byte-fallback tokens, so
any text (and any JSON a grammar allows) can be produced.
"""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, ".deps", "share", "gguf-py"))
import numpy as np  # noqa: E402
import gguf  # noqa: E402

out = sys.argv[1]
shape = sys.argv[2] if len(sys.argv) > 2 else "tiny"
dtype = np.float16 if (len(sys.argv) > 3 and sys.argv[3] == "f16") else np.float32
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
if shape == "tiny":
    T = dict(n_embd=64, n_ff=128, n_layer=2, n_head=4, n_head_kv=4, vocab_pad=0)
    V = dict(image=64, patch=16, n_embd=96, n_ff=192, n_layer=2, n_head=4, scale=2)
else:  # SmolVLM-256M-Instruct
    T = dict(n_embd=576, n_ff=1536, n_layer=30, n_head=9, n_head_kv=3, vocab_pad=49152)
    V = dict(image=512, patch=16, n_embd=768, n_ff=3072, n_layer=12, n_head=12, scale=4)


def rand(*shape):
    return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(dtype)


def ones(n):
    return np.ones(n, dtype=np.float32)


def zeros(n):
    return np.zeros(n, dtype=np.float32)


# ---- text model ----
tokens, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [2, 3, 3]
for b in range(256):
    tokens.append(f"<0x{b:02X}>")
    scores.append(0.0)
    types.append(6)
for i, p in enumerate(["\u2581a", "\u2581photo", "\u2581of", "\u2581the", "\u2581", "image"]):
    tokens.append(p)
    scores.append(-float(i))
    types.append(1)
# idefics3's image delimiters, looked up by their text (user-defined tokens, as in SmolVLM).
for p in ["\n\n", "<fake_token_around_image>", "<global-img>", "<image>"]:
    tokens.append(p)
    scores.append(0.0)
    types.append(4)


def english_bpe(budget):
    """Pieces of a BPE vocabulary trained on English, in merge order: the glosses and example
    sentences of WordNet (Debian wordnet-base, ~10 MB of definitions), split into words with the
    space before each as "\u2581" (as the SPM tokenizer sees text), then merged pair by most
    frequent pair until `budget` pieces. With each piece scored by its merge rank, llama.cpp's SPM
    tokenizer applies these merges in order: a real BPE vocabulary of real English, so that a
    prompt has about the length a trained tokenizer gives it (the licence texts of the benchmark
    are not in it)."""
    import collections
    import heapq
    import re
    text = []
    for part in ("noun", "verb", "adj", "adv"):
        try:
            with open(f"/usr/share/wordnet/data.{part}", encoding="latin-1") as f:
                for line in f:
                    if "|" in line and not line.startswith(" "):
                        gloss = line.split("|", 1)[1].strip()
                        text.append(gloss[:1].upper() + gloss[1:])
        except OSError:
            pass
    words = collections.Counter(
        m.replace(" ", "\u2581") for m in re.findall(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]", " ".join(text)))
    # Text in the wild also has Capitalised Titles and ALL-CAPS passages (a licence's warranty
    # disclaimer), which glosses lack: each word also counted so, at a fifth and a tenth.
    for word, n in list(words.items()):
        if word.lstrip("\u2581").isalpha():
            for form, share in ((word.title(), 5), (word.upper(), 10)):
                if form != word and n >= share:
                    words[form] += n // share
    chars = sorted({c for w in words for c in w})
    pieces = list(chars)
    seqs = [list(w) for w in words]
    counts = list(words.values())
    pairs = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(seqs):
        for a, b in zip(w, w[1:]):
            pairs[a, b] += counts[i]
            where[a, b].add(i)
    heap = [(-n, p) for p, n in pairs.items()]
    heapq.heapify(heap)
    have = set(pieces)
    while len(pieces) < budget and heap:
        n, pair = heapq.heappop(heap)
        if -n != pairs.get(pair, 0) or n == 0:
            continue  # stale: its count changed since it was pushed
        a, b = pair
        merged = a + b
        if merged not in have:
            have.add(merged)
            pieces.append(merged)
        for i in where.pop(pair, ()):
            w, c = seqs[i], counts[i]
            for x, y in zip(w, w[1:]):
                pairs[x, y] -= c
            out, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            seqs[i] = out
            for x, y in zip(out, out[1:]):
                pairs[x, y] += c
                where[x, y].add(i)
                heapq.heappush(heap, (-pairs[x, y], (x, y)))
        pairs.pop(pair, None)
    return pieces


if T["vocab_pad"]:
    # The real shape's vocabulary: a BPE vocabulary trained on English (english_bpe), so that
    # benchmarks see the prompt lengths of a real tokenizer.
    # Runs of spaces (indented text) and the newline are pieces of their own, as in the
    # vocabularies of Llama's and SmolLM2's tokenizers; WordNet's one-line glosses have neither.
    for k in range(16, 1, -1):
        tokens.append("\u2581" * k)
        scores.append(1.0)
        types.append(1)
    tokens.append("\n")
    scores.append(1.0)
    types.append(1)
    have = set(tokens)
    learned = english_bpe(T["vocab_pad"] - len(tokens) - 8)
    for rank, piece in enumerate(learned):
        if piece in have:
            continue
        have.add(piece)
        tokens.append(piece)
        scores.append(-float(rank) if len(piece) > 1 else -1e6)  # earlier merges first
        types.append(1)
while len(tokens) < T["vocab_pad"]:
    tokens.append(f"[unused{len(tokens)}]")
    scores.append(-1e4)
    types.append(5)
vocab = len(tokens)
w = gguf.GGUFWriter(os.path.join(out, "model.gguf"), "llama")
w.add_name(f"lumen-{shape}-vlm-text")
w.add_context_length(4096)
w.add_embedding_length(T["n_embd"])
w.add_feed_forward_length(T["n_ff"])
w.add_block_count(T["n_layer"])
w.add_head_count(T["n_head"])
w.add_head_count_kv(T["n_head_kv"])
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_dimension_count(T["n_embd"] // T["n_head"])
w.add_rope_freq_base(100000.0)
w.add_vocab_size(vocab)
w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == np.float16 else gguf.LlamaFileType.ALL_F32)
w.add_tokenizer_model("llama")
w.add_token_list(tokens)
w.add_token_scores(scores)
w.add_token_types(types)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_unk_token_id(0)
w.add_add_bos_token(False)
w.add_add_space_prefix(False)
w.add_chat_template("{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}\n{% endfor %}"
                    "{% if add_generation_prompt %}### assistant:\n{% endif %}")
d, f = T["n_embd"], T["n_ff"]
dkv = d // T["n_head"] * T["n_head_kv"]
w.add_tensor("token_embd.weight", rand(vocab, d))
w.add_tensor("output_norm.weight", ones(d))
w.add_tensor("output.weight", rand(vocab, d))
for i in range(T["n_layer"]):
    w.add_tensor(f"blk.{i}.attn_norm.weight", ones(d))
    w.add_tensor(f"blk.{i}.attn_q.weight", rand(d, d))
    w.add_tensor(f"blk.{i}.attn_k.weight", rand(dkv, d))
    w.add_tensor(f"blk.{i}.attn_v.weight", rand(dkv, d))
    w.add_tensor(f"blk.{i}.attn_output.weight", rand(d, d))
    w.add_tensor(f"blk.{i}.ffn_norm.weight", ones(d))
    w.add_tensor(f"blk.{i}.ffn_gate.weight", rand(f, d))
    w.add_tensor(f"blk.{i}.ffn_up.weight", rand(f, d))
    w.add_tensor(f"blk.{i}.ffn_down.weight", rand(d, f))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

# ---- mmproj (idefics3) ----
m = gguf.GGUFWriter(os.path.join(out, "mmproj.gguf"), "clip")
m.add_name(f"lumen-{shape}-vlm-mmproj")
m.add_string("clip.projector_type", "idefics3")
m.add_bool("clip.has_vision_encoder", True)
m.add_bool("clip.use_gelu", True)
m.add_uint32("clip.vision.image_size", V["image"])
m.add_uint32("clip.vision.preproc_image_size", V["image"])  # one tile per image
m.add_uint32("clip.vision.patch_size", V["patch"])
m.add_uint32("clip.vision.embedding_length", V["n_embd"])
m.add_uint32("clip.vision.feed_forward_length", V["n_ff"])
m.add_uint32("clip.vision.block_count", V["n_layer"])
m.add_uint32("clip.vision.attention.head_count", V["n_head"])
m.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
m.add_uint32("clip.vision.projection_dim", T["n_embd"])
m.add_uint32("clip.vision.projector.scale_factor", V["scale"])
m.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
m.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
m.add_file_type(1 if dtype == np.float16 else 0)
e, ff, p = V["n_embd"], V["n_ff"], V["patch"]
n_patches = (V["image"] // p) ** 2
m.add_tensor("v.patch_embd.weight", rand(e, 3, p, p))
m.add_tensor("v.patch_embd.bias", zeros(e))
m.add_tensor("v.position_embd.weight", rand(n_patches, e).astype(np.float32))
for i in range(V["n_layer"]):
    for n in ("attn_q", "attn_k", "attn_v", "attn_out"):
        m.add_tensor(f"v.blk.{i}.{n}.weight", rand(e, e))
        m.add_tensor(f"v.blk.{i}.{n}.bias", zeros(e))
    m.add_tensor(f"v.blk.{i}.ln1.weight", ones(e))
    m.add_tensor(f"v.blk.{i}.ln1.bias", zeros(e))
    m.add_tensor(f"v.blk.{i}.ln2.weight", ones(e))
    m.add_tensor(f"v.blk.{i}.ln2.bias", zeros(e))
    m.add_tensor(f"v.blk.{i}.ffn_up.weight", rand(ff, e))
    m.add_tensor(f"v.blk.{i}.ffn_up.bias", zeros(ff))
    m.add_tensor(f"v.blk.{i}.ffn_down.weight", rand(e, ff))
    m.add_tensor(f"v.blk.{i}.ffn_down.bias", zeros(e))
m.add_tensor("v.post_ln.weight", ones(e))
m.add_tensor("v.post_ln.bias", zeros(e))
m.add_tensor("mm.model.fc.weight", rand(T["n_embd"], e * V["scale"] ** 2))
m.write_header_to_file()
m.write_kv_data_to_file()
m.write_tensors_to_file()
m.close()
