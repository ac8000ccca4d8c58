"""Exports an image encoder (Hugging Face layout: config.json + model.safetensors) to ONNX, for the
ONNX Runtime anchor (bench/ort_encoder.js, bench/encoder_anchor.sh). The graph is the test
reference's own forward pass (tests/ml/reference.py: forward), traced with the weights as
initializers, so ONNX Runtime, PyTorch (bench/torch_encoder.py) and lumen run the same model.

usage: /usr/bin/python3 bench/onnx_export.py MODEL_DIR OUT.onnx [--check-out PREFIX]

Input "pixels": float32 [batch, 3, S, S] (preprocessed, CHW); output "embedding": float32
[batch, D], L2-normalised. The batch axis is dynamic; opset 17 (LayerNormalization is one op).
The model is checked with onnx.checker. --check-out PREFIX also writes PREFIX.in.f32 (a random
batch of 3, not the traced batch size) and PREFIX.ref.f32 (reference.forward's embeddings of it)
for `node bench/ort_encoder.js OUT.onnx --check PREFIX.in.f32 PREFIX.ref.f32`.
"""
import os
import re
import sys
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ml"))
import reference  # noqa: E402

OPSET = 17


class Encoder(torch.nn.Module):
    """reference.forward with the weights registered as buffers (exported as initializers)."""

    def __init__(self, family, cfg, w):
        super().__init__()
        self.family, self.cfg, self.names = family, cfg, {}
        for i, (name, t) in enumerate(w.items()):
            key = f"w{i}_" + re.sub(r"[^0-9A-Za-z_]", "_", name)
            self.register_buffer(key, t.contiguous())
            self.names[name] = key

    def forward(self, pixels):
        w = {name: getattr(self, key) for name, key in self.names.items()}
        return reference.forward(self.family, self.cfg, w, pixels)


def main():
    args = sys.argv[1:]
    check_out = None
    if "--check-out" in args:
        i = args.index("--check-out")
        check_out = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    d, out = args
    torch.set_num_threads(int(os.environ.get("LUMEN_EXPORT_THREADS", "1")))
    family, cfg, w = reference.load_model(d)
    s = cfg["image_size"]
    model = Encoder(family, cfg, w).eval()
    tmp = out + ".tmp"
    with torch.no_grad(), warnings.catch_warnings():
        # TracerWarning: math.sqrt(head size) in reference.mha becomes a constant, as it is.
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 3, s, s),), tmp, export_params=True, opset_version=OPSET,
                          do_constant_folding=True, input_names=["pixels"], output_names=["embedding"],
                          dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}})
    import onnx  # after the export: torch.onnx does not need it, the checker does
    onnx.checker.check_model(tmp, full_check=True)
    m = onnx.load(tmp, load_external_data=False)
    ops = sorted({n.op_type for n in m.graph.node})
    dims = lambda v: [x.dim_param or x.dim_value for x in v.type.tensor_type.shape.dim]
    os.replace(tmp, out)
    print(f"{out}: {family} opset {OPSET}, {os.path.getsize(out) / 1e6:.0f} MB, "
          f"{m.graph.input[0].name} {dims(m.graph.input[0])} -> {m.graph.output[0].name} {dims(m.graph.output[0])}, "
          f"{len(m.graph.node)} nodes: {' '.join(ops)}")
    if check_out:
        x = torch.randn(3, 3, s, s, generator=torch.Generator().manual_seed(7))
        with torch.inference_mode():
            ref = reference.forward(family, cfg, w, x)
        x.numpy().tofile(check_out + ".in.f32")
        ref.numpy().tofile(check_out + ".ref.f32")
        print(f"check data: {check_out}.in.f32 {list(x.shape)}, {check_out}.ref.f32 {list(ref.shape)}")


if __name__ == "__main__":
    main()
