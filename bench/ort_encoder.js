// ONNX Runtime CPU baseline for the image encoder: the model exported by bench/onnx_export.py (the
// test reference's forward pass with the same weights), run by onnxruntime-node at the same thread
// count and on the same input as lumen's build/bench/encoder_bench.
//
//   node bench/ort_encoder.js MODEL.onnx [threads=2] [batches=1,8,32] [seconds=10]
//   node bench/ort_encoder.js MODEL.onnx --check IN.f32 REF.f32 [threads=1]
//
// The first form prints `| runtime | batch | ms/image | images/s |` (each batch: one warm-up run,
// then runs until `seconds` have passed). The second runs IN.f32 (float32 [B,3,S,S]) once and
// compares with REF.f32 (float32 [B,D], written by onnx_export.py --check-out); it exits 1 when a
// row's cosine is below 0.9999.
//
// onnxruntime-node is loaded from $LUMEN_ORT_DIR (a folder with node_modules/onnxruntime-node, or
// the package folder itself), default ${LUMEN_CACHE:-~/.cache/lumen-build}/ort, where
// bench/encoder_anchor.sh installs it.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

function loadOrt() {
  const dir = process.env.LUMEN_ORT_DIR ||
      path.join(process.env.LUMEN_CACHE || path.join(os.homedir(), '.cache', 'lumen-build'), 'ort');
  for (const p of [path.join(dir, 'node_modules', 'onnxruntime-node'), dir]) {
    if (fs.existsSync(path.join(p, 'package.json')) &&
        JSON.parse(fs.readFileSync(path.join(p, 'package.json'), 'utf8')).name === 'onnxruntime-node') {
      return require(p);
    }
  }
  console.error(`onnxruntime-node not found under ${dir} (set LUMEN_ORT_DIR, or run bench/encoder_anchor.sh)`);
  process.exit(2);
}

function readF32(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv.length < 1) {
    console.error('usage: node ort_encoder.js MODEL.onnx [threads] [batches] [seconds]\n' +
                  '       node ort_encoder.js MODEL.onnx --check IN.f32 REF.f32 [threads]');
    process.exit(2);
  }
  const ort = loadOrt();
  const check = argv[1] === '--check';
  const threads = parseInt((check ? argv[4] : argv[1]) || (check ? '1' : '2'), 10);
  const session = await ort.InferenceSession.create(argv[0], {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const input = session.inputNames[0], output = session.outputNames[0];
  const meta = session.inputMetadata && session.inputMetadata[0];
  const size = meta && meta.shape && typeof meta.shape[3] === 'number' ? meta.shape[3] : 224;
  const perImage = 3 * size * size;

  if (check) {
    const x = readF32(argv[2]), ref = readF32(argv[3]);
    const b = x.length / perImage, dim = ref.length / b;
    const y = (await session.run({[input]: new ort.Tensor('float32', x, [b, 3, size, size])}))[output];
    if (y.dims[0] !== b || y.dims[1] !== dim) {
      console.error(`output shape [${y.dims}] != reference [${b}, ${dim}]`);
      process.exit(1);
    }
    let worst = 1, maxDiff = 0;
    for (let i = 0; i < b; ++i) {
      let dot = 0, na = 0, nb = 0;
      for (let j = 0; j < dim; ++j) {
        const p = y.data[i * dim + j], q = ref[i * dim + j];
        dot += p * q; na += p * p; nb += q * q;
        maxDiff = Math.max(maxDiff, Math.abs(p - q));
      }
      worst = Math.min(worst, dot / Math.sqrt(na * nb));
    }
    console.log(`onnxruntime ${ort.env.versions.node} vs reference.forward: batch ${b}, dim ${dim}, ` +
                `min cosine ${worst.toFixed(7)}, max |diff| ${maxDiff.toExponential(2)}`);
    process.exit(worst > 0.9999 ? 0 : 1);
  }

  const batches = (argv[2] || '1,8,32').split(',').map(Number);
  const seconds = parseFloat(argv[3] || '10');
  console.log('| runtime | batch | ms/image | images/s |\n|---|---|---|---|');
  for (const batch of batches) {
    // encoder_bench's input: in[i] = float((i * 2654435761) % 1000) / 500 - 1, in 64-bit
    // arithmetic (so the product's residue mod 1000 is (i mod 1000) * 761 mod 1000).
    const data = new Float32Array(perImage * batch);
    for (let i = 0; i < data.length; ++i) data[i] = Math.fround(Math.fround((((i % 1000) * 761) % 1000) / 500) - 1);
    const feeds = {[input]: new ort.Tensor('float32', data, [batch, 3, size, size])};
    await session.run(feeds);  // warm-up
    let images = 0, el = 0;
    const t0 = process.hrtime.bigint();
    do {
      await session.run(feeds);
      images += batch;
      el = Number(process.hrtime.bigint() - t0) / 1e9;
    } while (el < seconds);
    console.log(`| onnxruntime f32 | ${batch} | ${(1000 * el / images).toFixed(1)} | ${(images / el).toFixed(2)} |`);
  }
  console.log(`\nonnxruntime-node ${ort.env.versions.node}, ${threads} threads; ` +
              `peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`);
}

main().catch((e) => {
  console.error(e && e.stack || e);
  process.exit(1);
});
