// export_reference.mjs — checks steerclear's llama.cpp control-vector GGUF with a parser we did
// not write (@huggingface/gguf, installed by scripts/setup.sh) plus raw byte reads.
// usage: node export_reference.mjs <gguf-package-dir> <control_vector.gguf> <expected.f32> L C
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [pkgDir, ggufPath, expPath, Ls, Cs] = process.argv.slice(2);
const L = Number(Ls), C = Number(Cs);
const { gguf } = await import(pathToFileURL(join(pkgDir, "dist/index.mjs")).href);

let failures = 0;
function check(cond, what) {
  if (!cond) { failures++; console.error("FAIL:", what); }
}

const bytes = readFileSync(ggufPath);
const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
check(bytes.subarray(0, 4).toString("latin1") === "GGUF", "magic is GGUF");
check(dv.getUint32(4, true) === 3, "version u32 at byte 4 is 3");

const { metadata, typedMetadata, tensorInfos, tensorDataOffset } =
  await gguf(ggufPath, { allowLocalFile: true, typedMetadata: true });
// GGUFValueType numbers from the GGUF spec
const UINT32 = 4, INT32 = 5, STRING = 8;
check(metadata.version === 3, `metadata.version ${metadata.version}`);
check(metadata.tensor_count === BigInt(L - 1), `tensor_count ${metadata.tensor_count}`);
const tm = (k) => typedMetadata[k] ?? {};
check(tm("general.architecture").value === "controlvector" && tm("general.architecture").type === STRING, "general.architecture");
check(tm("controlvector.model_hint").value === "qwen2" && tm("controlvector.model_hint").type === STRING, "model_hint");
check(tm("controlvector.layer_count").value === L - 1 && tm("controlvector.layer_count").type === INT32,
  `layer_count ${JSON.stringify(tm("controlvector.layer_count"), (k, v) => typeof v === "bigint" ? String(v) : v)}`);
check(tm("general.alignment").value === 32 && tm("general.alignment").type === UINT32, "general.alignment u32 32");
check(metadata["steerclear.model"] === "Qwen/Qwen2.5-0.5B-Instruct", "steerclear.model");
check(metadata["steerclear.search"] === "3", "steerclear.search");
check(metadata["steerclear.mode"] === "per-block", "steerclear.mode");
check(metadata["steerclear.omitted_blocks"] === "0", "steerclear.omitted_blocks");
check(String(metadata["steerclear.scale_convention"]).includes("h_l += scale * direction.<l>"), "scale_convention");
check(metadata.kv_count === BigInt(Object.keys(metadata).length - 3), "kv_count matches the keys parsed");

// Tensors: direction.1..L-1, F32 (ggml type 0), shape [C], offsets as llama.cpp's gguf loader
// requires them (each the running sum of 32-byte-padded sizes), data section 32-byte aligned.
const expBytes = readFileSync(expPath);   // may be a view into a shared pool: copy its own bytes
const expected = new Float32Array(expBytes.buffer.slice(expBytes.byteOffset, expBytes.byteOffset + expBytes.byteLength));
check(expected.length === L * C, "expected.f32 size");
check(tensorInfos.length === L - 1, `${tensorInfos.length} tensors`);
check(Number(tensorDataOffset) % 32 === 0, "data section aligned to 32");
let running = 0;
for (let i = 0; i < tensorInfos.length; i++) {
  const t = tensorInfos[i];
  const k = i + 1;
  check(t.name === `direction.${k}`, `tensor ${i} name ${t.name}`);
  check(t.n_dims === 1 && t.shape.length === 1 && t.shape[0] === BigInt(C), `${t.name} shape ${t.shape}`);
  check(t.dtype === 0, `${t.name} dtype ${t.dtype}`);
  check(Number(t.offset) === running, `${t.name} offset ${t.offset} != ${running}`);
  const start = Number(tensorDataOffset) + Number(t.offset);
  for (let c = 0; c < C; c++) {
    const got = dv.getFloat32(start + 4 * c, true);
    // llama.cpp adds direction.k to the output of block k: it must hold our block k's row
    const want = expected[k * C + c];
    if (!Object.is(got, want)) { check(false, `${t.name}[${c}] = ${got}, want ${want}`); break; }
  }
  running += Math.ceil((4 * C) / 32) * 32;
}
check(bytes.length >= Number(tensorDataOffset) + running, "file holds the padded data section");

if (failures) { console.error(`export_reference.mjs: ${failures} failures`); process.exit(1); }
console.log(`export_reference.mjs: GGUF ok (${tensorInfos.length} tensors, ${Object.keys(metadata).length} metadata entries)`);
