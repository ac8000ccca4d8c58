"""Writes a tiny random-weight llama-architecture GGUF model (for llama-server tests).

    /usr/bin/python3 tests/llm/tiny_llama_gguf.py OUT.gguf [seed]

SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte-fallback tokens <0x00>..<0xFF> (so
any text, and any JSON a grammar asks for, can be produced), and a few hundred word pieces.
A plain-text chat template. 2 layers, 64-wide: random text, fast on any CPU. Uses gguf-py from the
llama.cpp source that scripts/bootstrap.sh installs into .deps/share/gguf-py.
"""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, ".deps", "share", "gguf-py"))
import numpy as np  # noqa: E402
import gguf  # noqa: E402

out = sys.argv[1]
rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
n_embd, n_ff, n_layer, n_head, n_ctx = 64, 128, 2, 4, 2048

tokens, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [2, 3, 3]
for b in range(256):
    tokens.append(f"<0x{b:02X}>")
    scores.append(0.0)
    types.append(6)  # byte
words = ["\u2581" + w for w in ("a the photo of dog cat beach sun tree car house people sky water "
                                 "road city night light red blue green white black small big").split()]
pieces = words + ['{"', '"}', '":', '",', "\u2581\"", "description", "name", "text", "\u2581is", "\u2581and"]
pieces += [c for c in "abcdefghijklmnopqrstuvwxyz0123456789{}[]\":,.- "]
pieces += ["\u2581"]
for i, p in enumerate(dict.fromkeys(pieces)):
    tokens.append(p)
    scores.append(-float(i))
    types.append(1)
for extra in ["<|im_start|>", "<|im_end|>"]:
    tokens.append(extra)
    scores.append(0.0)
    types.append(3)
vocab = len(tokens)

w = gguf.GGUFWriter(out, "llama")
w.add_name("lumen-tiny-test")
w.add_context_length(n_ctx)
w.add_embedding_length(n_embd)
w.add_feed_forward_length(n_ff)
w.add_block_count(n_layer)
w.add_head_count(n_head)
w.add_head_count_kv(n_head)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_dimension_count(n_embd // n_head)
w.add_vocab_size(vocab)
w.add_file_type(gguf.LlamaFileType.ALL_F32)
w.add_tokenizer_model("llama")
w.add_token_list(tokens)
w.add_token_scores(scores)
w.add_token_types(types)
w.add_bos_token_id(1)
w.add_eos_token_id(tokens.index("<|im_end|>"))
w.add_unk_token_id(0)
w.add_add_bos_token(False)
# A template of plain text (llama-server's grammar for structured output begins with the
# generation prompt, which must be producible by ordinary tokens).
w.add_chat_template(
    "{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}### assistant:\n{% endif %}")


def t(name, *shape):
    w.add_tensor(name, (rng.standard_normal(shape) * 0.05).astype(np.float32))


t("token_embd.weight", vocab, n_embd)
w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
t("output.weight", vocab, n_embd)
for i in range(n_layer):
    w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
    for n in ("q", "k", "v", "output"):
        t(f"blk.{i}.attn_{n}.weight", n_embd, n_embd)
    w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
    t(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
    t(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
    t(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
